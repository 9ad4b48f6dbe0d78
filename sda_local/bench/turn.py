"""Time to the first aligned token of a full chat turn, per evaluator (part of ``sda-local bench``).

One child process per evaluator (``bench._spawn``, mode "turn") runs ``ChatSession.send`` on a fresh session,
an empty KV cache and a new question each turn, and times each phase from the call: the first base token, the
base answer done (the time the base answer alone takes), the evaluator's score, and the first aligned token.
``ttfa_over_base`` = first aligned token ÷ base answer done: 1.0 would be a free evaluator and a free switch
to SDA.  With a λ that reads no base answer (fixed, preset) the turn decodes both answers together
(``turn.answer``'s ``together``): the λ comes first and the first aligned token comes with the first base token,
so the ratio is far below 1 (``bench.pair`` measures that turn against the aligned answer alone).
"""
from __future__ import annotations

import statistics

from ..core import SamplingParams

TURN_PROMPTS = ("How do I keep basil alive on a windowsill?", "What should I pack for a two-day hike?",
                "How can I get better at remembering names?", "Why does bread go stale?",
                "How do I write a polite complaint to my landlord?", "What is a good way to start running?")
TURN_PRESET = "helpfulness"
EVALUATORS = ("fixed", "preset", "local", "self")  # measured by default; plus a 1.5B judge when it is installed
JUDGE_MODEL = "qwen2.5-coder-1.5b"                 # the bigger local judge (``--judge-model``)
FIXED_LAM = 0.5                                    # the fixed evaluator's λ in this timing


def evaluator_label(kind: str, judge_model: str | None) -> str:
    return f"{kind}:{judge_model}" if judge_model else kind


def make_turn_evaluator(kind: str, engine, judge_model: str | None):
    from ..judges import make_evaluator

    if kind == "fixed":
        return make_evaluator("fixed", lam=FIXED_LAM)
    return make_evaluator(kind, engine=engine, judge_model=judge_model, n_threads=engine.n_threads)


def _one_turn(session, prompt: str) -> dict:
    """One timed turn's marks, from its ``TurnTrace`` (seconds from the call)."""
    from ..turn import TurnTrace

    trace = TurnTrace()
    for _ in trace.watch(session.send(prompt)):
        pass
    t, d = trace.timings(), trace.decision
    marks = {"first_base_token_s": t["first_base_token_s"], "base_done_s": trace.t_base,
             "judge_done_s": trace.t_lambda,  # (after the score, or at once for a fixed λ)
             "first_aligned_token_s": t["first_aligned_token_s"], "turn_s": trace.now(),
             "base_tokens": trace.base.n_tokens if trace.base else None, "lam": round(d.lam, 4),
             "score": d.score_value, "lam_source": d.source}
    if trace.warnings:
        marks["warnings"] = list(trace.warnings)
    return marks


def turn_worker(opts: dict) -> dict:
    """Child process: ``repeats`` timed turns (after one warm-up turn) with one evaluator."""
    from ..presets import get_preset
    from ..runtime.engine import Engine
    from ..session import ChatSession
    from ..turn import TurnSettings

    eng = Engine(opts["model"], n_ctx=opts["n_ctx"], n_threads=opts["threads"])
    judge = make_turn_evaluator(opts.get("evaluator", "local"), eng, opts.get("judge_model"))
    settings = TurnSettings(preset=get_preset(opts.get("preset") or TURN_PRESET),
                            sampling=SamplingParams.from_dict({**opts["sampling"], "seed": opts["seed"],
                                                               "max_tokens": opts["tokens"]}))
    runs = []
    for i in range(opts["repeats"] + 1):  # the first turn warms the caches and is not counted
        session = ChatSession(eng, judge, settings)
        eng.reset_cache()
        marks = _one_turn(session, TURN_PROMPTS[i % len(TURN_PROMPTS)])  # a new question each turn
        if i:
            runs.append(marks)
    shortcuts = getattr(judge, "shortcuts", None)
    judge.close()
    eng.close()
    return summarize(runs, shortcuts)


def summarize(runs: list[dict], shortcuts: int | None) -> dict:
    def med(key: str) -> float | None:
        vals = [r[key] for r in runs if r.get(key) is not None]
        return round(statistics.median(vals), 3) if vals else None

    out = {k: med(k) for k in ("first_base_token_s", "base_done_s", "judge_done_s", "first_aligned_token_s",
                               "turn_s")}
    if out["judge_done_s"] is not None and out["base_done_s"] is not None:
        out["judge_s"] = round(out["judge_done_s"] - out["base_done_s"], 3)
    ratios = [r["first_aligned_token_s"] / r["base_done_s"] for r in runs
              if r.get("first_aligned_token_s") and r.get("base_done_s")]
    out["ttfa_over_base"] = round(statistics.median(ratios), 3) if ratios else None
    out["base_tokens"] = [r.get("base_tokens") for r in runs]
    out["scores"] = [r.get("score") for r in runs]
    out["lams"] = [r.get("lam") for r in runs]
    out["lam_sources"] = sorted({r.get("lam_source") for r in runs if r.get("lam_source")})
    if shortcuts is not None:
        out["engine_shortcuts"] = shortcuts  # self-score: turns scored from the engine's own caches
    warnings = [w for r in runs for w in r.get("warnings", ())]
    if warnings:
        out["warnings"] = warnings
    return out
