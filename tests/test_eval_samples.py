"""eval samples: side-by-side answers per preset, end to end on the tiny GGUF; the Markdown escaping; data errors."""
from __future__ import annotations

import json
import sys

import pytest

from sda_local.cli import main
from sda_local.errors import SdaError
from sda_local.evaluation.report import read_jsonl
from sda_local.evaluation.samples import (
    PRESET_SOURCES,
    escape_md,
    render_markdown,
    select_prompts,
)
from sda_local.judges.fixed import PresetLambdaEvaluator
from sda_local.presets import get_preset

QUESTIONS = ["Is the sea safe?", "Is it true?", "Are you a help?", "Is the sky green?", "Fifth?"]


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "truthfulqa.dev.jsonl").write_text("".join(
        json.dumps({"Question": q, "Best Answer": "yes", "Best Incorrect Answer": "no", "Correct Answers": "yes",
                    "Incorrect Answers": "no"}) + "\n" for q in QUESTIONS))
    (d / "empathy.dev.jsonl").write_text("".join(
        json.dumps({"prompt": p, "category": "sad"}) + "\n" for p in ["My dog died.", "I failed the test again."]))
    return d


def _samples(model, data_dir, out, *more):
    argv = ["eval", "samples", "--model", str(model), "--n-ctx", "512", "--threads", "1", "--data-dir", str(data_dir),
            "--out", str(out), "--max-tokens", "6", "--quiet", *more]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["/usr/bin/sda-local", *argv])  # as the console script sees it
        return main(argv)


def test_samples_end_to_end_three_answers_per_prompt_and_reproducible(tiny_gguf, data_dir, tmp_path, capsys):
    args = ("--presets", "honesty", "empathy", "--per-preset", "2", "--evaluator", "preset", "--seed", "3")
    assert _samples(tiny_gguf, data_dir, tmp_path / "a", *args) == 0
    rows = read_jsonl(tmp_path / "a" / "samples.jsonl")
    assert [(r["preset"], r["id"]) for r in rows] == [("honesty", "truthfulqa.dev:1"), ("honesty", "truthfulqa.dev:2"),
                                                      ("empathy", "empathy.dev:1"), ("empathy", "empathy.dev:2")]
    for r in rows:
        assert set(r["answers"]) == set(r["quality"]) == {"base", "instruction", "sda"}
        assert all(1 <= n <= 6 for n in r["n_tokens"].values())
        assert r["quality"]["sda"]["n_words"] >= 0 and "echo_run" in r["quality"]["instruction"]
        expected = PresetLambdaEvaluator().fixed_lambda(get_preset(r["preset"]), "sigmoid").lam
        assert r["lambda"]["source"] == "fixed" and r["lambda"]["lam"] == pytest.approx(expected)
        assert r["seed"] == 3 + int(r["id"].rsplit(":", 1)[1])  # one seed per prompt, the same for its answers
    report = json.loads((tmp_path / "a" / "samples.json").read_text())
    assert report["run"]["command"].startswith(f"sda-local eval samples --model {tiny_gguf}")
    assert report["run"]["model"]["model"] == "tiny.gguf" and report["run"]["evaluator"] == "preset"
    assert report["run"]["settings"]["sampling"]["max_tokens"] == 6 and report["run"]["settings"]["placement"] == "auto"
    # "auto": each preset's own placement
    assert {r["preset"]: r["placement"] for r in rows} == {p: get_preset(p).placement or "user" for p in ("honesty", "empathy")}
    assert report["presets"]["honesty"]["instruction"] == get_preset("honesty").instruction
    assert report["quality"]["empathy"]["sda"]["n"] == 2
    md = (tmp_path / "a" / "samples.md").read_text()
    assert "## honesty" in md and "## empathy" in md and md.count("**Base (no instruction)**") == 4
    assert "> Is the sea safe?" in md and "**SDA, λ = " in md
    assert "honesty: base echo" in capsys.readouterr().out

    assert _samples(tiny_gguf, data_dir, tmp_path / "b", *args) == 0  # the same seed: the same answers
    assert [r["answers"] for r in read_jsonl(tmp_path / "b" / "samples.jsonl")] == [r["answers"] for r in rows]

    assert _samples(tiny_gguf, data_dir, tmp_path / "c", "--presets", "empathy", "--per-preset", "1",
                    "--lam", "0.25", "--placement", "system", "--plausibility", "0.1") == 0
    (row,) = read_jsonl(tmp_path / "c" / "samples.jsonl")
    assert row["lambda"] == {"lam": 0.25, "source": "fixed", "score": None, "warnings": []}
    settings = json.loads((tmp_path / "c" / "samples.json").read_text())["run"]["settings"]
    assert settings["placement"] == "system" and settings["sampling"]["plausibility"] == 0.1


def test_helpfulness_takes_the_truthfulqa_prompts_after_honesty(data_dir):
    assert PRESET_SOURCES["helpfulness"].file == PRESET_SOURCES["honesty"].file
    honesty = select_prompts(data_dir, get_preset("honesty"), 2)
    helpful = select_prompts(data_dir, get_preset("helpfulness"), 2)
    assert [i.prompt for i in honesty.items] == QUESTIONS[:2] and [i.prompt for i in helpful.items] == QUESTIONS[2:4]
    assert [i.prompt for i in select_prompts(data_dir, get_preset("helpfulness"), 3).items] == QUESTIONS[3:]
    with pytest.raises(SdaError, match="none left for preset 'helpfulness'"):
        select_prompts(data_dir, get_preset("helpfulness"), 5)


def test_a_missing_dataset_file_is_a_clear_error(data_dir, tiny_gguf, tmp_path, capsys):
    with pytest.raises(SdaError, match=r"dialogsum\.dev\.jsonl: dataset file for preset 'summarisation' not found"):
        select_prompts(data_dir, get_preset("summarisation"), 5)
    assert _samples(tiny_gguf, data_dir, tmp_path / "o", "--presets", "honesty", "harmlessness") == 2
    err = capsys.readouterr().err
    assert "beavertails.dev.jsonl" in err and "--data-dir" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # checked before the model is loaded: nothing written


def _row(answers: dict) -> dict:
    q = {"echo_run": 0, "echo": False, "distinct_2": 1.0, "longest_repeat": 0, "degenerate": False, "n_words": 3}
    return {"id": "x:1", "preset": "honesty", "dataset": "x", "prompt": "Q | <b>bold</b>\n# not a heading",
            "answers": answers, "n_tokens": {s: 3 for s in answers}, "quality": {s: dict(q) for s in answers},
            "lambda": {"lam": 0.5, "source": "fixed", "score": None, "warnings": []}}


def test_markdown_escapes_model_text():
    evil = "a | b\n<script>alert(1)</script>\n# Heading\n1. list **bold** [link](http://x) `code`"
    row = _row({"base": evil, "instruction": "ok", "sda": ""})
    report = {"run": {"model": {"model": "m"}, "command": "sda-local eval samples", "evaluator": "preset",
                      "settings": {"mapping": "sigmoid", "fallback_lam": 0.5, "placement": "user", "system_prompt": "",
                                   "sampling": {"t0": 0.7, "top_p": 0.9, "k": 1.0, "temperature_mode": "ln2",
                                                "plausibility": 0.0, "max_tokens": 6, "seed": 0}}},
              "presets": {"honesty": {"instruction": "Be <honest>.", "dataset": {"name": "x"}, "ids": ["x:1"]}},
              "quality": {}}
    md = render_markdown(report, [row])
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "<b>" not in md
    base_line = next(line for line in md.splitlines() if "alert(1)" in line)
    assert base_line == ("> a \\| b<br>&lt;script&gt;alert(1)&lt;/script&gt;<br>\\# Heading<br>1\\. list "
                         "\\*\\*bold\\*\\* \\[link\\](http://x) \\`code\\`")
    assert "> Q \\| &lt;b&gt;bold&lt;/b&gt;<br>\\# not a heading" in md and "> Be &lt;honest&gt;." in md
    assert "> *(empty)*" in md  # the empty SDA answer
    assert escape_md("x" * 3 + "\r\n  y") == "xxx<br>&nbsp;&nbsp;y"
    assert escape_md("red\x1b[31m \u202egnp.exe") == "red\ufffd\\[31m \ufffdgnp.exe"  # terminal escape, bidi override


def test_a_prompt_too_long_for_the_context_names_the_prompt(tiny_gguf, data_dir, tmp_path, capsys):
    assert _samples(tiny_gguf, data_dir, tmp_path / "o", "--presets", "empathy", "--lam", "0.5",
                    "--n-ctx", "16") == 2
    err = capsys.readouterr().err
    assert "empathy.dev:1 (preset empathy)" in err and "--n-ctx" in err and "Traceback" not in err
