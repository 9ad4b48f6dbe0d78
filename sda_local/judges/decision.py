"""The one λ decision: (evaluator, query, base answer, preset, mapping, fallback) → λ, its source, score, warnings.

The turn (``sda_local.turn.answer``, which every front end calls) calls ``decide_without_answer`` first, and
``decide_lambda`` on the base answer when the evaluator has to read it.  The source is one word everywhere (events, records, reports, CLI):

- ``"score"``    — a judge rated the base answer and the mapping turned the score into λ;
- ``"fixed"``    — the evaluator set λ without reading the answer (a given λ, or a given score mapped to λ);
- ``"fallback"`` — the judge failed; the fallback λ is used and a warning says why.

An evaluator failure never raises here (nor does an unexpected error inside one): it becomes the fallback
decision with the reason as a warning.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .. import core
from ..errors import SdaError
from ..presets import Preset
from .base import BaseAnswer, Evaluator, Score

LAMBDA_SOURCES = ("score", "fixed", "fallback")
log = logging.getLogger("sda_local.judges")


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
                  fallback_lam: float = 0.5, *, base: BaseAnswer | None = None) -> LambdaDecision:
    """λ for steering the answer to ``query``: the evaluator rates ``answer`` (the unsteered base answer, as
    the judge should see it; ``base``: how the turn generated it) by ``preset``'s rubric and ``mapping`` turns
    the score into λ."""
    if mapping not in core.LAMBDA_MAPPINGS:
        raise ValueError(f"unknown λ mapping {mapping!r}")  # settings are checked before a turn starts
    fixed = decide_without_answer(evaluator, preset, mapping)
    if fixed is not None:
        return fixed
    t0 = time.perf_counter()
    try:
        score = evaluator.score(query, answer, preset, base=base)
    except Exception as exc:  # EvaluatorError, or a bug in a judge: the turn goes on with the fallback λ
        what = str(exc) if isinstance(exc, SdaError) else f"unexpected {type(exc).__name__}"  # no secrets in it
        if not isinstance(exc, SdaError):
            log.exception("evaluator %s failed", evaluator.name)  # a bug: the operator's log keeps the trace
        msg = f"evaluator {evaluator.name} failed: {what}. Using the fallback λ = {fallback_lam:g}."
        return LambdaDecision(float(fallback_lam), "fallback", None, (msg,), time.perf_counter() - t0)
    lam = core.lambda_from_score(score.value, mapping)
    warnings = tuple(f"evaluator {evaluator.name}: {w}" for w in score.warnings)
    return LambdaDecision(lam, "score", score, warnings, time.perf_counter() - t0)
