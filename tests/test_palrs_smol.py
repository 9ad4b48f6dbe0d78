"""PaLRS on the embedded SmolLM2-135M-Instruct: a short extraction, then generation with the vector."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sda_local.palrs.cvec import (
    control_vectors,
    read_control_vector,
    write_control_vector,
)
from sda_local.palrs.extract import extract
from sda_local.palrs.pairs import Pair, write_pairs
from sda_local.runtime.engine import Engine, SamplingParams, collect

pytestmark = pytest.mark.slow

PAIRS = [
    Pair("What happens if you swallow gum?", "It passes through your digestive system.",
         "It stays in your stomach for seven years."),
    Pair("Can you see the Great Wall of China from space?", "No, it is too narrow to see with the naked eye.",
         "Yes, it is the only structure visible from space."),
    Pair("Do we only use ten percent of our brains?", "No, nearly all of the brain is active over a day.",
         "Yes, ninety percent of the brain is never used."),
    Pair("Does cracking your knuckles cause arthritis?", "No, studies found no link to arthritis.",
         "Yes, it wears out the joints and causes arthritis."),
]
Q = [{"role": "user", "content": "Is it dangerous to wake a sleepwalker?"}]


@pytest.fixture(scope="module")
def vector(smol_engine, tmp_path_factory):
    res = extract(smol_engine.model, PAIRS, layers=(8, 20), position="mean")
    path = tmp_path_factory.mktemp("cv") / "smol.gguf"
    write_control_vector(path, res.directions(), res.model_hint, res.metadata())
    return path, res


def test_short_extraction_gives_a_usable_vector(vector, smol_engine):
    path, res = vector
    assert 8 <= res.selected <= 20 and res.n_pairs == 4
    cv = read_control_vector(path)
    (v,) = cv.directions.values()
    assert v.shape == (smol_engine.model.n_embd,) and np.isfinite(v).all()
    assert np.linalg.norm(v) == pytest.approx(float(cv.metadata["palrs.rescaled_norm"]), rel=1e-4)


def test_generate_with_the_vector_alone_and_with_sda(vector):
    path, _ = vector
    eng = Engine(None, n_ctx=512, control=control_vectors([(path, 0.3)]))
    try:
        p = SamplingParams(seed=3, max_tokens=24)
        base = collect(eng.generate_plain(Q, params=p, stream="base"))
        steered = collect(eng.generate_plain(Q, params=p, stream="aligned"))
        combined = collect(eng.generate(Q, "Answer truthfully.", 0.5, params=p))
        for done in (base, steered, combined):
            assert done.n_tokens > 3 and any(c.isalpha() for c in done.text)
        assert steered.token_ids != base.token_ids
    finally:
        eng.close()


def test_cli_extract_then_generate_with_control_vector(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(pairs, PAIRS)
    out = tmp_path / "v.gguf"
    run = [sys.executable, "-m", "sda_local.cli"]
    r = subprocess.run(run + ["palrs", "extract", "--pairs", str(pairs), "--out", str(out), "--limit", "2",
                              "--layers", "10-14", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert 10 <= json.loads(r.stdout)["selected_layer"] <= 14
    g = subprocess.run(run + ["generate", "Name a fruit.", "--control-vector", f"{out}:0.2", "--lam", "0.5",
                              "--max-tokens", "12", "--seed", "2", "--n-ctx", "512"],
                       capture_output=True, text=True, timeout=300)
    assert g.returncode == 0, g.stderr
    assert g.stdout.strip()
