"""``sda-local bench``: decode speed of plain vs SDA sampling, core cost, prompt time and memory, as JSON.

Each measurement that reports peak memory runs in its own child process (peak RSS only grows), on the same
model, prompt, seed and thread count, so plain and SDA numbers are directly comparable.
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

import numpy as np

LONG_PROMPT = ("Write a long, detailed story about a lighthouse keeper who finds a message in a bottle. "
               "Describe the island, the weather and the people in the village.")
INSTRUCTION = ("Give a useful, complete and well-organised answer: address exactly what was asked and keep it "
               "clear.")


def peak_rss_mb() -> float:
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
    """Runs in a child process: one mode (plain or sda) on one engine variant."""
    from .engine import Engine, SamplingParams, collect

    eng = Engine(opts["model"], n_ctx=opts["n_ctx"], n_threads=opts["threads"], variant=opts["variant"])
    msgs = [{"role": "user", "content": LONG_PROMPT}]
    params = SamplingParams(seed=opts["seed"], max_tokens=opts["tokens"])
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
    r = subprocess.run([sys.executable, "-m", "sda_local.bench", json.dumps(opts)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"bench worker failed ({opts['mode']}, {opts['variant']}): {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_bench(args) -> dict:
    from .backend import default_threads
    from .models import resolve_model

    choice = resolve_model(args.model)
    threads = args.threads or default_threads()
    base = {"model": str(choice.path), "n_ctx": args.n_ctx, "threads": threads, "seed": 0,
            "tokens": args.tokens, "repeats": args.repeats}
    result: dict = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "model": choice.name, "tokens_per_run": args.tokens, "repeats": args.repeats, "threads": threads,
        "variants": {},
    }
    for variant in ("batched", "contexts"):
        plain = _spawn({**base, "variant": variant, "mode": "plain"})
        sda = _spawn({**base, "variant": variant, "mode": "sda"})
        result["variants"][variant] = {
            "plain_tokens_per_second": plain["tokens_per_second"],
            "sda_tokens_per_second": sda["tokens_per_second"],
            "sda_over_plain": round(sda["tokens_per_second"] / plain["tokens_per_second"], 3),
            "tokens": {"plain": plain["tokens"], "sda": sda["tokens"]},
            "core_us_per_step_real_logits": {"plain": plain["core_us_per_step"], "sda": sda["core_us_per_step"]},
            "prompt_processing": sda["prompt_processing"],
            "peak_rss_mb": {"plain": plain["peak_rss_mb"], "sda": sda["peak_rss_mb"]},
        }
        result["n_vocab"] = sda["n_vocab"]
    v = result["variants"]
    result["faster_variant"] = max(v, key=lambda k: v[k]["sda_tokens_per_second"])
    vocabs = sorted(set(args.core_vocab) | {result["n_vocab"]})
    result["core"] = [core_us_per_step(n) for n in vocabs]
    return result


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
