"""The one λ decision: (evaluator, query, base answer, preset, mapping, fallback) → λ, its source, score, warnings.

The chat pipeline, ``eval winrate`` and ``sda-local generate`` all call ``decide_lambda`` (or, before there is a
base answer, ``decide_without_answer``).  The source is one word everywhere (events, records, reports, CLI):

- ``"score"``    — a judge rated the base answer and the mapping turned the score into λ;
- ``"fixed"``    — the evaluator set λ without reading the answer (a given λ, or a given score mapped to λ);
- ``"fallback"`` — the judge failed; the fallback λ is used and a warning says why.

An evaluator failure never raises here: it becomes the fallback decision with the reason as a warning.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .. import core
from .base import Evaluator, EvaluatorError, Score
from ..presets import Preset

LAMBDA_SOURCES = ("score", "fixed", "fallback")


@dataclass(frozen=True)
class LambdaDecision:
    lam: float
    source: str                   # one of LAMBDA_SOURCES
    score: Score | None = None    # the judge's score, or the score a fixed evaluator was given
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0          # time spent deciding (the judge's latency)

    @property
    def score_value(self) -> int | None:
        return None if self.score is None else self.score.value


def decide_without_answer(evaluator: Evaluator, preset: Preset | str, mapping: str) -> LambdaDecision | None:
    """The decision of an evaluator that sets λ itself (the fixed one); None when λ needs the base answer."""
    t0 = time.perf_counter()
    fixed = evaluator.fixed_lambda(preset, mapping)
    if fixed is None:
        return None
    return LambdaDecision(float(fixed.lam), "fixed", fixed.score, (), time.perf_counter() - t0)


def decide_lambda(evaluator: Evaluator, query: str, answer: str, preset: Preset | str, mapping: str = "sigmoid",
                  fallback_lam: float = 0.5) -> LambdaDecision:
    """λ for steering the answer to ``query``: the evaluator rates ``answer`` (the unsteered base answer, as
    the judge should see it) by ``preset``'s rubric and ``mapping`` turns the score into λ."""
    if mapping not in core.LAMBDA_MAPPINGS:
        raise ValueError(f"unknown λ mapping {mapping!r}")  # settings are checked before a turn starts
    fixed = decide_without_answer(evaluator, preset, mapping)
    if fixed is not None:
        return fixed
    t0 = time.perf_counter()
    try:
        score = evaluator.score(query, answer, preset)
    except EvaluatorError as exc:
        msg = f"evaluator {evaluator.name} failed: {exc}. Using the fallback λ = {fallback_lam:g}."
        return LambdaDecision(float(fallback_lam), "fallback", None, (msg,), time.perf_counter() - t0)
    lam = core.lambda_from_score(score.value, mapping)
    warnings = tuple(f"evaluator {evaluator.name}: {w}" for w in score.warnings)
    return LambdaDecision(lam, "score", score, warnings, time.perf_counter() - t0)
