"""A whole turn in one batch (part of ``sda-local bench``, section ``paired_turn``).

One child process (``run._spawn``, mode "pair") loads the model once and, for each question (after one warm-up
question), on an empty KV cache each time, with a fixed λ (the preset's: no judge reads the base answer):

- ``together``: ``turn.answer(base="always")`` — the base answer and both SDA streams decoded in one batch;
- ``apart``: the same with ``together=False`` — the base answer first, then the aligned answer (the old turn);
- ``aligned_alone``: ``turn.answer(base="auto")`` — the aligned answer without any base answer.

It reports medians of the whole turn's wall time, the time to the first aligned token, each answer's tok/s, and
the ratios the goal is written in: turn (together) ÷ aligned alone, first aligned token (together) ÷ the
aligned answer's own prompt time.  Token counts are reported, because the ratios depend on how long each
answer runs (when one answer ends first, the batch shrinks to the other).
"""
from __future__ import annotations

import statistics

from ..core import SamplingParams
from .turn import TURN_PRESET, TURN_PROMPTS

PAIR_LAM = 0.25  # the presets' λ (presets.toml)


def _timed_turn(engine, settings, msgs, together: bool) -> dict:
    from ..judges import FixedEvaluator
    from ..turn import TurnTrace, answer

    engine.reset_cache()
    t = TurnTrace.run(answer(engine, FixedEvaluator(lam=PAIR_LAM), msgs, settings, base="always",
                             together=together))
    m: dict = {"first_aligned_token_s": t.t_first_aligned, "turn_s": t.now()}
    for phase, f, done_s in (("base", t.base, t.t_base), ("aligned", t.aligned, t.t_aligned)):
        m.update({f"{phase}_tokens": f.n_tokens, f"{phase}_tokens_per_second": f.tokens_per_second,
                  f"{phase}_done_s": done_s})
    return m


def _timed_alone(engine, settings, msgs) -> dict:
    """The aligned answer alone, through the same seam (a fixed λ reads no base answer, so none is made)."""
    from ..judges import FixedEvaluator
    from ..turn import TurnTrace, answer

    engine.reset_cache()
    t = TurnTrace.run(answer(engine, FixedEvaluator(lam=PAIR_LAM), msgs, settings, base="auto"))
    fin = t.aligned
    return {"turn_s": t.now(), "first_aligned_token_s": t.t_first_aligned, "prompt_s": fin.prompt_seconds,
            "aligned_tokens": fin.n_tokens, "aligned_tokens_per_second": fin.tokens_per_second}


def pair_worker(opts: dict) -> dict:
    """Child process: the three ways of answering, ``repeats`` questions each after a warm-up."""
    from ..presets import get_preset
    from ..runtime.engine import Engine
    from ..turn import TurnSettings

    eng = Engine(opts["model"], n_ctx=opts["n_ctx"], n_threads=opts["threads"])
    settings = TurnSettings(preset=get_preset(opts.get("preset") or TURN_PRESET),
                            sampling=SamplingParams.from_dict({**opts["sampling"], "seed": opts["seed"],
                                                               "max_tokens": opts["tokens"]}))
    runs: dict[str, list[dict]] = {"together": [], "apart": [], "aligned_alone": []}
    for i in range(opts["repeats"] + 1):
        msgs = [{"role": "user", "content": TURN_PROMPTS[i % len(TURN_PROMPTS)]}]
        got = {"together": _timed_turn(eng, settings, msgs, True), "apart": _timed_turn(eng, settings, msgs, False),
               "aligned_alone": _timed_alone(eng, settings, msgs)}
        if i:  # the first question warms up and is not counted
            for k, v in got.items():
                runs[k].append(v)
    eng.close()
    return summarize_pairs(runs)


def summarize_pairs(runs: dict[str, list[dict]]) -> dict:
    def med(rows: list[dict], key: str):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return round(statistics.median(vals), 3) if vals else None

    out: dict = {k: {key: med(rows, key) for key in sorted({x for r in rows for x in r})} for k, rows in runs.items()}
    for k, rows in runs.items():
        out[k]["tokens"] = [(r.get("base_tokens"), r.get("aligned_tokens")) for r in rows]
    pairs = list(zip(runs["together"], runs["aligned_alone"], runs["apart"]))
    ratio = {"turn_together_over_aligned_alone": [t["turn_s"] / a["turn_s"] for t, a, _ in pairs],
             "turn_apart_over_aligned_alone": [p["turn_s"] / a["turn_s"] for _, a, p in pairs],
             "first_aligned_token_together_over_prompt": [t["first_aligned_token_s"] / a["prompt_s"]
                                                          for t, a, _ in pairs if t.get("first_aligned_token_s")],
             "first_aligned_token_apart_over_together": [p["first_aligned_token_s"] / t["first_aligned_token_s"]
                                                         for t, _, p in pairs if t.get("first_aligned_token_s")]}
    out["ratios"] = {k: round(statistics.median(v), 3) if v else None for k, v in ratio.items()}
    out["how"] = __doc__.split("\n\n", 1)[1].strip().replace("\n", " ")
    return out
