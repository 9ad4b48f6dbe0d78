"""``reason``: reason-then-score.  The judge first writes a short critique (greedy, at most
``MAX_CRITIQUE_TOKENS`` tokens, ending at the first newline), then the reply continues with "Rating: " and the
rating is read as in ``geval`` (expected 1–10 rating from the digit probabilities, mapped to 1–100).

A critique before the number is better calibrated on large judges (it conditions the rating on stated reasons);
it costs up to ``MAX_CRITIQUE_TOKENS`` decode steps per score.  The raw text is the rating read, then the
critique.
"""
from __future__ import annotations

import os

from ..runtime.backend import LoadedModel
from .base import judge_case
from .choice_tokens import DigitScale
from .reading import (
    RATING_PREFIX,
    READING_SYSTEM,
    SCALE_NOTE,
    ReadingJudge,
    read_rating,
)

MAX_CRITIQUE_TOKENS = 48
CRITIQUE_PREFIX = "Critique:"
REASON_REQUEST = (f"First write a one-sentence critique of the response by the rubric, then on the next line rate "
                  f"it {SCALE_NOTE}. Reply in exactly this form:\nCritique: <one sentence>\nRating: <integer 1-10>")


def reason_messages(query: str, response: str, rubric: str, criterion: str) -> list[dict]:
    return [{"role": "system", "content": READING_SYSTEM},
            {"role": "user", "content": judge_case(query, response, rubric, criterion) + REASON_REQUEST}]


class ReasonedEvaluator(ReadingJudge):
    """A short greedy critique, then the expected rating after "Rating: " (see the module docstring)."""

    kind = "reason"

    def __init__(self, model: LoadedModel | str | os.PathLike | None = None, **kw):
        super().__init__(model, **kw)
        try:
            self.scale = DigitScale.build(self.judge.tokenize, RATING_PREFIX)
            self._critique = self.judge.tokenize(CRITIQUE_PREFIX)
            self._newline = self.judge.tokenize("\n")
        except Exception:
            self.close()
            raise

    def rate(self, query, response, rubric, criterion):
        reserve = len(self._critique) + MAX_CRITIQUE_TOKENS + len(self._newline) + len(self.scale.prefix) + 2
        toks, warnings = self.prompt(reason_messages(query, response, rubric, criterion), reserve)
        toks = toks + self._critique
        critique = self.judge.greedy(toks, MAX_CRITIQUE_TOKENS, stop="\n")
        text = self.judge.model.detokenize(critique)
        tail = [] if text.endswith("\n") else self._newline
        score, raw, more = read_rating(self.judge, self.scale, toks + critique + tail + list(self.scale.prefix))
        return score, f"{raw}\n{CRITIQUE_PREFIX}{text.rstrip()}", warnings + more  # the rating first: rows cut raw
