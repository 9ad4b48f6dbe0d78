"""Fluency: an answer's mean log-probability per token under the *base* stream, by teacher forcing.

The base stream is the plain prompt: the user's request with no instruction (what ``base`` answers are sampled
from), scored at T = 1 (the model's own distribution, not the sampler's).  A fluent answer reads like something
the model would say; a degenerate one (loops, recited instructions, broken text) gets a low mean log-prob.  It
is a proxy: a short, generic answer scores high, so it is read next to the degeneration measures of ``quality``.

The answers of one prompt are teacher-forced together (``TeacherForcer.force``: one batch, the prompt evaluated
once), through a dedicated context over the engine's loaded weights.  An answer with no tokens, or one that does
not fit the forcer's context, gets None (shown as "—").
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core import target_logprobs
from ..errors import PromptTooLongError
from ..runtime.teacher_forcing import TeacherForcer


def mean_token_logprob(logits: np.ndarray, targets: Sequence[int]) -> float:
    """Mean over positions i of log softmax(logits[i])[targets[i]] (row i of ``logits`` predicts target i)."""
    z = np.asarray(logits, dtype=np.float64)
    t = np.asarray(targets, dtype=np.int64)
    if z.ndim != 2 or z.shape[0] != t.size or t.size == 0:
        raise ValueError(f"need one logits row per target and at least one target; got {z.shape} for {t.size}")
    return float(target_logprobs(z, t).mean())


class FluencyScorer:
    """Scores answers to a prompt by their mean per-token log-prob under the base stream (rounded to 4 places).

    >>> fs = FluencyScorer.for_engine(engine)
    >>> fs.score("How do I bake bread?", ["Mix flour and water …", ""])   # → [-1.83, None]
    """

    def __init__(self, forcer: TeacherForcer, *, owns: bool = False):
        self.forcer = forcer
        self._owns = owns

    @classmethod
    def for_engine(cls, engine) -> "FluencyScorer":
        return cls(TeacherForcer.for_engine(engine), owns=True)

    def close(self) -> None:
        if self._owns:
            self.forcer.close()

    def _has_tokens(self, text: str) -> bool:
        try:
            self.forcer.answer_tokens(text)
        except ValueError:
            return False
        return True

    def score(self, prompt: str, answers: Sequence[str]) -> list[float | None]:
        out: list[float | None] = [None] * len(answers)
        idx = [i for i, a in enumerate(answers) if (a or "").strip() and self._has_tokens(a)]
        if not idx:
            return out
        try:  # the plain prompt on both streams: "without" is the base stream
            forced = self.forcer.force([{"role": "user", "content": prompt}], "", [answers[i] for i in idx])
        except PromptTooLongError:
            return out
        for i, fa in zip(idx, forced):
            out[i] = round(mean_token_logprob(fa.logits_without, fa.targets), 4)
        return out
