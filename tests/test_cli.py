"""The sda-local command line, run as a user would (a real process)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sda_local.cli import app, catalog
from sda_local.presets import DEFAULT_PRESET


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "sda_local.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_generate_streams_an_answer_with_the_base_first():
    r = run("generate", "Give me one tip for sleeping well.", "--seed", "1", "--max-tokens", "24", "--base",
            "--score", "30")
    assert r.returncode == 0, r.stderr
    assert "base answer" in r.stderr and "SDA answer" in r.stderr and "λ = 0.8" in r.stderr
    assert len(r.stdout.strip()) > 10


def test_generate_json_has_one_object_per_token():
    r = run("generate", "Say hello.", "--seed", "4", "--max-tokens", "8", "--json", "--lam", "0.5",
            "--preset", "empathy")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    # a fixed λ needs no base answer: the λ, the aligned answer's tokens, its end, the turn's timings
    lam, *toks, done, end = rows
    assert lam == {"event": "lambda", "lam": 0.5, "source": "fixed", "score": None, "mapping": "sigmoid"}
    assert done["stream"] == "sda" and done["kind"] == "finished" and done["token_ids"] == [t["token_id"] for t in toks]
    assert end["event"] == "done" and end["finish_reason"] == done["finish_reason"]
    for t in toks:
        assert t["stream"] == "sda" and set(t) >= {"token_id", "text", "prob", "js", "temperature"}


def test_generate_is_reproducible_with_a_seed():
    a = run("generate", "Name a colour.", "--seed", "9", "--max-tokens", "12", "--lam", "0.4")
    b = run("generate", "Name a colour.", "--seed", "9", "--max-tokens", "12", "--lam", "0.4")
    assert a.returncode == 0 and a.stdout == b.stdout


@pytest.mark.parametrize("args,needle", [
    (["--model", "/no/such/file.gguf"], "not found"),
    (["--preset", "kindness"], "unknown preset"),
    (["--score", "250"], "[1, 100]"),
    (["--temperature-mode", "cold"], "invalid choice"),
])
def test_bad_input_gives_a_clear_error(args, needle):
    r = run("generate", "hi", *args)
    assert r.returncode == 2
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


def test_models_lists_registry_and_files():
    r = run("models", "--json")
    data = json.loads(r.stdout)
    ids = {m["id"]: m for m in data["registry"]}
    assert ids["smollm2-135m"]["available"] is True
    assert ids["qwen2.5-1.5b-instruct"]["available"] is False


@pytest.mark.parametrize("question", ["", "   \n "])
def test_an_empty_question_is_refused_before_the_model_loads(question):
    r = run("generate", question)
    assert r.returncode == 2 and "the question is empty" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("lam", ["-3", "1.5", "nan"])
def test_lambda_outside_0_1_is_refused_and_the_message_says_why(lam):
    r = run("generate", "hi", "--lam", lam)
    assert r.returncode == 2 and "[0, 1]" in r.stderr and "steer away from the instruction" in r.stderr


def test_help_names_the_default_preset():
    r = run("generate", "--help")
    assert r.returncode == 0 and f"default {DEFAULT_PRESET}" in r.stdout


def test_every_eval_and_generate_take_the_plausibility_option():
    for cmd in (["generate"], ["eval", "truthfulqa"], ["eval", "refusal"], ["eval", "winrate"], ["palrs", "sweep"],
                ["palrs", "generate"], ["bench"]):
        r = run(*cmd, "--help")
        assert r.returncode == 0 and "--plausibility" in r.stdout, cmd


def test_a_fixed_score_says_fixed_in_the_json_events(tiny_gguf):
    r = run("generate", "Say hi.", "--model", str(tiny_gguf), "--score", "30", "--base", "--json", "--seed", "2",
            "--max-tokens", "4")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    lam = next(x for x in rows if x.get("event") == "lambda")
    assert lam["source"] == "fixed" and lam["score"] == 30


def test_a_programming_error_is_not_reported_as_a_user_error(monkeypatch):
    def broken():
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(catalog, "all_presets", broken)
    with pytest.raises(ValueError, match="a bug"):
        app.main(["presets"])
