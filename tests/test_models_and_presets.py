"""Model resolution, GGUF checks and presets: bad input gives clear errors."""
from __future__ import annotations

import json

import pytest

from sda_local import presets
from sda_local.backend import LoadedModel
from sda_local.errors import ModelFileError, PresetError
from sda_local.models import check_gguf, load_registry, resolve_model


def test_registry_lists_the_embedded_model_and_download_hints():
    reg = load_registry()
    assert reg["smollm2-135m"].source == "embedded"
    for rid in ("qwen2.5-1.5b-instruct", "llama-3.2-3b-instruct", "deepseek-r1-distill-qwen-1.5b",
                "deepseek-r1-distill-qwen-7b"):
        assert reg[rid].repo and reg[rid].file.endswith(".gguf") and reg[rid].n_ctx >= 2048
    assert reg["deepseek-r1-distill-qwen-7b"].strip_think


def test_default_model_is_the_embedded_smollm2_file():
    choice = resolve_model(None)
    assert choice.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and choice.path.is_file()
    assert choice.entry.id == "smollm2-135m"


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
