"""The common shape of the local judges that read probabilities instead of parsing a reply.

``ReadingJudge.score`` resolves the criterion, clips the response, holds the judge context's lock and times the
work; a subclass implements ``rate`` (prompt → value, raw text, warnings).  ``read_rating`` is the G-Eval read
shared by ``geval`` and ``reason``: the probabilities of the rating digits after "Rating: " (plus one extra
one-token decode after "1" where "10" is two tokens), their expectation, and the linear map to 1–100.
"""
from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np

from ..errors import SdaError
from ..runtime.backend import LoadedModel
from .base import (
    SCORE_DECIMALS,
    Evaluator,
    EvaluatorError,
    Score,
    clip_response,
    resolve_criterion,
)
from .choice_tokens import DigitScale
from .judge_context import JudgeContext
from .scales import LOW_MASS, RATING_MAX, expected_rating, rating_to_score

READING_SYSTEM = ("You are a careful, impartial evaluator. You read a user's request and an assistant's response "
                  "and judge the response strictly by the rubric you are given.")
SCALE_NOTE = ("on a scale from 1 (worst) to 10 (best); the rubric's 100 is 10, its 50 is 5 and its 1 is 1")
RATING_PREFIX = "Rating: "


class ReadingJudge(Evaluator):
    """A local judge that reads the judge model's next-token probabilities (``kind``: its evaluator name)."""

    kind = "reading"

    def __init__(self, model: LoadedModel | str | os.PathLike | None = None, *, n_ctx: int = 2048,
                 n_threads: int | None = None, label: str | None = None):
        self.judge = JudgeContext(model, n_ctx=n_ctx, n_threads=n_threads, label=label)
        self.name = f"{self.kind}:{self.judge.label}"

    def ask(self, messages, fields):
        raise EvaluatorError(f"the {self.kind} judge reads probabilities; it does not answer free-form prompts "
                             "(use the grammar judge, --evaluator local, for that)")

    def rate(self, query: str, response: str, rubric: str, criterion: str) -> tuple[float, str, list[str]]:
        raise NotImplementedError

    def score(self, query: str, response: str, criterion, base=None) -> Score:
        crit, rubric = resolve_criterion(criterion)
        response, warnings = clip_response(response)
        t0 = time.perf_counter()
        with self.judge.lock:
            try:
                value, raw, more = self.rate(query, response, rubric, crit)
            except EvaluatorError:
                raise
            except SdaError as exc:  # the chat template, a decode: the λ decision expects an EvaluatorError
                raise EvaluatorError(f"the {self.kind} judge failed: {exc}") from None
        return Score(round(float(value), SCORE_DECIMALS), raw, self.name, time.perf_counter() - t0, crit,
                     warnings + more)

    def prompt(self, messages: list[dict], reserve: int) -> tuple[list[int], list[str]]:
        """The judge prompt's tokens (response cut to leave ``reserve`` tokens free), with warnings."""
        return self.judge.fit(messages, self.judge.n_ctx - reserve)

    def close(self) -> None:
        self.judge.close()


def rating_summary(dist: np.ndarray) -> str:
    """``7 (expected 6.83; P(rating) 0.97; 7:0.52 6:0.31 8:0.10)`` from an unnormalised P(rating = 1 … 10)."""
    mass = float(dist.sum())
    top = np.argsort(-dist, kind="stable")[:3]
    tops = " ".join(f"{i + 1}:{dist[i] / mass:.2f}" for i in top)
    return f"{int(top[0]) + 1} (expected {expected_rating(dist):.2f}; P(rating) {mass:.2f}; {tops})"


def read_rating(judge: JudgeContext, scale: DigitScale, toks: Sequence[int]) -> tuple[float, str, list[str]]:
    """(score 1–100, raw text, warnings) from the rating position after ``toks`` (which end with the scale's
    prefix): P(rating = r) over 1 … 10, E = Σ r·P(r) normalised, score = 1 + 99·(E − 1)/9."""
    toks = list(toks)
    lp = judge.logprobs(toks)
    lp_one = judge.logprobs(toks + [scale.one]) if scale.zero is not None else None
    dist = scale.distribution(lp, lp_one)
    mass = float(dist.sum())
    if not np.isfinite(mass) or mass <= 0.0:
        raise EvaluatorError("the judge put no probability on any rating 1–10")
    warnings = []
    if mass < LOW_MASS:
        warnings.append(f"the judge put only {mass:.0%} of its next-token probability on a rating 1–{RATING_MAX}")
    score = rating_to_score(min(max(expected_rating(dist), 1.0), float(RATING_MAX)))
    return score, f"{RATING_PREFIX}{rating_summary(dist)}", warnings
