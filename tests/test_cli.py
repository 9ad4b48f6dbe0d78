"""The sda-local command line, run as a user would (a real process)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


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
    toks, done = rows[:-1], rows[-1]
    assert done["stream"] == "sda" and done["kind"] == "finished" and done["token_ids"] == [t["token_id"] for t in toks]
    for t in toks:
        assert set(t) >= {"token_id", "text", "prob", "js", "temperature"}


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
