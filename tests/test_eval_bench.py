"""`sda-local bench` on the tiny GGUF: the sections are there, and the optional ones say how to enable them."""
from __future__ import annotations

import json
import subprocess
import sys

from sda_local import bench, bench_peer


def test_bench_runs_on_the_tiny_model_without_the_optional_parts(tiny_gguf):
    r = subprocess.run([sys.executable, "-m", "sda_local.cli", "bench", "--model", str(tiny_gguf), "--tokens", "4",
                        "--repeats", "1", "--n-ctx", "1024", "--core-vocab", "1000", "--skip", "gemma", "peer"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for variant in ("batched", "contexts"):
        v = out["variants"][variant]
        assert v["plain_tokens_per_second"] > 0 and v["sda_tokens_per_second"] > 0
        assert set(v["prompt_processing"]) >= {"with_prefix_copy_ms", "without_prefix_copy_ms"}
    assert [c["n_vocab"] for c in out["core"]] == sorted({1000, out["n_vocab"]})
    assert out["gemma"] == {"skipped": "--skip gemma"} and out["peer"] == {"skipped": "--skip peer"}
    turn = out["time_to_first_aligned_token"]  # a real turn with the local judge on the tiny model
    assert 0 < turn["first_base_token_s"] <= turn["base_done_s"] <= turn["judge_done_s"] \
        < turn["first_aligned_token_s"] <= turn["turn_s"]
    assert all(1 <= s <= 100 for s in turn["scores"]) and "warnings" not in turn
    assert len(out["machine"]["load_average_at_start"]) == 3


def test_peer_section_explains_how_to_enable_it_when_torch_is_missing(monkeypatch):
    monkeypatch.setattr(bench_peer, "missing", lambda: ["torch", "transformers"])
    sec = bench._peer_section({}, 8, 10.0)
    assert sec == {"skipped": "install sda-local[bench] (missing: torch, transformers)"}
