"""sda-local eval ifeval: lm-eval's IFEval checkers wired in (known strings per instruction type, strict and
loose, the Punkt model offline), the systems' prompts, and a run on the tiny model (report, resume, flips)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sda_local.core import SamplingParams
from sda_local.errors import SdaError
from sda_local.evaluation import ifeval
from sda_local.evaluation.ifeval_checks import PUNKT_FILES, check

DEV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ifeval.dev.jsonl"


def row(ids, kwargs, prompt="Write something.", key=7):
    return {"key": key, "prompt": prompt, "request": "Write something.", "constraints": "Follow the rules.",
            "instruction_id_list": list(ids), "kwargs": list(kwargs)}


@pytest.mark.parametrize("iid, kwargs, passing, failing", [
    ("punctuation:no_comma", {}, "No commas at all here.", "Apples, pears."),
    ("change_case:english_lowercase", {}, "everything is lower case here.", "Not lower case."),
    ("change_case:english_capital", {}, "ALL CAPITALS HERE.", "Mixed Case here."),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "at least"},
     "A cat met another cat.", "A cat met a dog."),
    ("keywords:existence", {"keywords": ["river", "stone"]}, "A stone in the river.", "A stone alone."),
    ("keywords:forbidden_words", {"forbidden_words": ["rain"]}, "Sunny all day.", "Rain all day."),
    ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3},
     "Mr. Smith arrived. He sat down.", "One. Two. Three. Four."),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 5},
     "one two three four five six", "too short"),
    ("detectable_format:json_format", {}, '{"answer": 1}', "answer: 1"),
    ("detectable_format:title", {}, "<<A Title>>\nText.", "A Title\nText."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two", "* one"),
    ("startend:quotation", {}, '"All quoted."', "Not quoted."),
    ("startend:end_checker", {"end_phrase": "Any questions?"}, "That is all. Any questions?", "That is all."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello.\nP.S. Bye.", "Hello. Bye."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[name] at [address]", "[name] only"),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi."}, "Say hi. Hi!", "Hi!"),
    ("language:response_language", {"language": "en"},
     "This answer is written entirely in plain English, as the instruction asks.",
     "Cette réponse est écrite entièrement en français, comme personne ne le demande."),
])
def test_each_instruction_type_passes_and_fails_on_known_strings(iid, kwargs, passing, failing):
    r = row([iid], [kwargs])
    assert check(r, passing).strict == (True,)
    assert check(r, failing).strict == (False,)


def test_loose_scoring_forgives_a_first_line_and_asterisks_strict_does_not():
    r = row(["change_case:english_lowercase", "punctuation:no_comma"], [{}, {}])
    v = check(r, "Sure! Here it is:\nall lower case and no comma")
    assert v.strict == (False, True) and v.loose == (True, True)
    assert (v.prompt_strict, v.prompt_loose) == (False, True)
    assert not any(check(r, "").loose)  # an empty answer follows nothing
    with pytest.raises(SdaError, match="unknown instruction"):
        check(row(["no:such_check"], [{}]), "x")


def test_the_sentence_counter_needs_no_download(tmp_path):
    """A fresh cache folder and nltk.download made to fail: the Punkt data comes from the installed package."""
    code = ("import nltk\n"
            "def no(*a, **k): raise SystemExit('nltk tried to download')\n"
            "nltk.download = no\n"
            "from sda_local.evaluation.ifeval_checks import check\n"
            "r = {'key': 1, 'prompt': 'p', 'instruction_id_list': ['length_constraints:number_sentences'],\n"
            "     'kwargs': [{'relation': 'less than', 'num_sentences': 2}]}\n"
            "print(check(r, 'Dr. Who is here.').strict, check(r, 'One. Two.').strict)\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["(True,)", "(False,)"]  # "Dr." is an abbreviation, not a sentence end
    lang = tmp_path / "sda-local" / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
    assert all((lang / f).stat().st_size > 0 for f in PUNKT_FILES)


def test_stutter_and_points():
    assert ifeval.stutter("Associations, associations, associations are key.") == 3
    assert ifeval.stutter("a b a b") == 0
    assert ifeval.parse_point("lam=0.5,placement=system,guidance_clip=none") == (
        ("placement", "system"), ("lam", 0.5), ("guidance_clip", None))
    with pytest.raises(SdaError, match="KEY=VALUE"):
        ifeval.parse_point("gamma=3")
    cfg = ifeval.IfevalConfig(systems=["sda"], points=[ifeval.parse_point("lam=0.9,adaptive_guidance=jsd")],
                              grid={"placement": ["user", "system"]})
    assert [s.name for s in cfg.all_systems()] == ["sda", "sda placement=user", "sda placement=system",
                                                   "sda λ=0.9 adaptive=jsd"]
    with pytest.raises(SdaError):
        ifeval.IfevalConfig(points=[ifeval.parse_point("lam=2")]).all_systems()


def test_the_dev_split_loads_with_offset_and_limit():
    if not DEV.is_file():
        pytest.skip("the shared IFEval dev split is not beside the project")
    rows = ifeval.load_rows(DEV, offset=3, limit=5)
    first = ifeval.load_rows(DEV, limit=8)
    assert [r["key"] for r in rows] == [r["key"] for r in first[3:8]]


def _rows():
    return [row(["punctuation:no_comma"], [{}], key=1),
            row(["change_case:english_lowercase", "length_constraints:number_words"],
                [{}, {"relation": "at least", "num_words": 3}], prompt="Write in lower case, 3+ words.", key=2)]


def test_a_run_answers_every_system_and_resumes(tiny_engine, tmp_path):
    cfg = ifeval.IfevalConfig(sampling=SamplingParams(max_tokens=6, seed=3),
                              points=[ifeval.parse_point("lam=0.5,adaptive_guidance=jsd,placement=system")])
    out = tmp_path / "run"
    rep = ifeval.run_ifeval(tiny_engine, _rows(), cfg, out, progress=False, command="test")
    names = [*ifeval.SYSTEMS, "sda placement=system λ=0.5 adaptive=jsd"]
    assert list(rep["systems"]) == names
    items = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    assert len(items) == 2 * len(names)
    for d in rep["systems"].values():
        assert d["prompt_strict"]["n"] == 2 and d["instruction_strict"]["n"] == 3
        assert set(d["per_instruction"]) == {"punctuation:no_comma", "change_case:english_lowercase",
                                             "length_constraints:number_words"}
        assert sum(d["finish_reasons"].values()) == 2 and "degenerate" in d["quality"]
    assert set(rep["systems"]["sda"]["flips"]) == set(ifeval.BASELINES)
    sda = [x for x in items if x["system"] == "sda"]
    assert all(x["lam"] == 0.25 for x in sda)  # the shipped custom-instruction λ (presets.toml [custom])
    assert rep["best_instruction_only"] in ifeval.INSTRUCTION_ONLY
    report = json.loads((out / "report.json").read_text())
    assert report["systems"]["base"]["prompt_loose"]["mean"] >= report["systems"]["base"]["prompt_strict"]["mean"]
    assert "| sda |" in (out / "report.md").read_text()
    again = ifeval.run_ifeval(tiny_engine, _rows(), cfg, out, resume=True, progress=False)
    assert again["run"]["resumed_rows"] == len(items)
    assert len((out / "items.jsonl").read_text().splitlines()) == len(items)  # nothing answered twice
    assert again["systems"] == rep["systems"]


def test_the_systems_see_the_prompts_they_are_meant_to(tiny_engine):
    """base: the request; inline: IFEval's prompt; instruction-user / -system: the constraints in the user turn /
    as the system message; each is the same as decoding that conversation directly (same seed)."""
    from sda_local.runtime.engine import collect

    r = _rows()[1]
    p = SamplingParams(max_tokens=5, seed=11)
    direct = {
        "base": [{"role": "user", "content": r["request"]}],
        "inline": [{"role": "user", "content": r["prompt"]}],
        "instruction-user": [{"role": "user", "content": r["request"] + "\n" + r["constraints"]}],
        "instruction-system": [{"role": "system", "content": r["constraints"]},
                               {"role": "user", "content": r["request"]}],
    }
    for name, msgs in direct.items():
        got = ifeval.answer_row(tiny_engine, r, ifeval.System(name, name), p)
        assert got.token_ids == collect(tiny_engine.generate_plain(msgs, params=p)).token_ids, name
