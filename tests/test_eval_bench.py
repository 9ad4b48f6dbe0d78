"""`sda-local bench` on the tiny GGUF: the sections are there, and the optional ones say how to enable them."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sda_local.bench import peer as bench_peer
from sda_local.bench import run as bench


def test_bench_runs_on_the_tiny_model_without_the_optional_parts(tiny_gguf):
    r = subprocess.run([sys.executable, "-m", "sda_local.cli", "bench", "--model", str(tiny_gguf), "--tokens", "4",
                        "--repeats", "1", "--n-ctx", "1024", "--core-vocab", "1000", "--skip", "gemma", "peer", "tier",
                        "--judge-model", ""],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for layout in ("batched", "contexts"):
        v = out["layouts"][layout]
        assert v["plain_tokens_per_second"] > 0 and v["sda_tokens_per_second"] > 0
        assert set(v["prompt_processing"]) >= {"with_prefix_copy_ms", "without_prefix_copy_ms"}
    assert [c["n_vocab"] for c in out["core"]] == sorted({1000, out["n_vocab"]})
    d = out["decode_steps"]
    assert d["one_sequence_ms"] > 0 and d["two_sequences_ms"] > 0
    assert d["sda_over_plain_bound"] == pytest.approx(1 / d["two_over_one"], rel=0.01)
    assert out["inspector"]["n_vocab"] == out["n_vocab"] and 0 < out["inspector"]["fraction_of_sda_step"]
    assert out["gemma"] == {"skipped": "--skip gemma"} and out["peer"] == {"skipped": "--skip peer"}
    assert out["tiers"] == {}
    turns = out["time_to_first_aligned_token"]["evaluators"]  # real turns on the tiny model, per evaluator
    assert list(turns) == ["fixed", "preset", "local", "self"]
    for kind, turn in turns.items():
        assert 0 < turn["first_base_token_s"] <= turn["base_done_s"] <= turn["turn_s"], kind
        if kind in ("fixed", "preset"):  # λ known first: both answers decoded together, after the λ
            assert turn["judge_done_s"] <= turn["first_base_token_s"] and \
                turn["judge_done_s"] <= turn["first_aligned_token_s"] <= turn["turn_s"], kind
        else:  # a judge reads the base answer: it comes first
            assert turn["base_done_s"] <= turn["judge_done_s"] < turn["first_aligned_token_s"] <= turn["turn_s"], kind
            assert turn["ttfa_over_base"] > 1, kind
        assert turn["peak_rss_mb"] > 0 and "warnings" not in turn, kind
    assert turns["fixed"]["lam_sources"] == ["fixed"] and turns["preset"]["lam_sources"] == ["fixed"]
    assert all(1 <= s <= 100 for k in ("local", "self") for s in turns[k]["scores"])
    assert "engine_shortcuts" in turns["self"]
    assert len(out["machine"]["load_average_at_start"]) == 3
    rows = d["rows_ms"]
    assert set(rows) == {"1", "2", "3", "4"} and all(v > 0 for v in rows.values())
    assert d["rows_over_one"]["1"] == 1.0 and isinstance(d["extra_bufts"], bool)
    if "repack" in d:
        assert set(d["repack"]) == {"on", "off"} and all(set(v) == set(rows) for v in d["repack"].values())
    pair = out["paired_turn"]  # the same questions and seeds: the same answers whichever way they are decoded
    assert pair["together"]["tokens"] == pair["apart"]["tokens"]
    assert [a for _, a in pair["together"]["tokens"]] == [a for _, a in pair["aligned_alone"]["tokens"]]
    assert all(v is not None and v > 0 for v in pair["ratios"].values())
    assert pair["together"]["base_tokens_per_second"] > 0 and pair["aligned_alone"]["prompt_s"] > 0


def test_peer_section_explains_how_to_enable_it_when_torch_is_missing(monkeypatch):
    monkeypatch.setattr(bench_peer, "missing", lambda: ["torch", "transformers"])
    sec = bench._peer_section({}, 8, 10.0)
    assert sec == {"skipped": "install sda-local[bench] (missing: torch, transformers)"}
