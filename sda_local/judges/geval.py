"""``geval``: a G-Eval-style expected score (Liu et al. 2023) from the judge's next-token probabilities.

The judge is asked for a 1–10 rating and its reply is started for it: "Rating: ".  Instead of decoding the most
likely digit, the probabilities of all ratings are read at that position and the score is their expectation,
E = Σ r·P(r) (normalised over the ratings), mapped linearly to 1–100: 1 + 99·(E − 1)/9.  An expectation is
smoother than an argmax (two answers the judge rates "7" still differ) and cannot copy a rubric's anchor numbers.

Why 1–10 read this way is well defined: in every vocabulary we ship (SmolLM2, Qwen2.5, Gemma 3) the digits 0–9
are single tokens and "Rating: 7" ends [":", " ", "7"] (checked at construction from the model's tokenizer by
``choice_tokens.DigitScale``, which refuses a vocabulary where it does not hold).  "10" is two tokens there,
"1" then "0", so P("1") is split by one extra one-token decode: P(10) = P("1")·P("0" | "1"), P(1) = P("1")·(1 −
P("0" | "1")).  (A vocabulary with a single "10" token would have it read directly.)  Spellings of a digit
that are single tokens with or without a leading space are summed.
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

GEVAL_REQUEST = f"Rate the response {SCALE_NOTE}. Reply with \"Rating: N\", N an integer from 1 to 10."


def geval_messages(query: str, response: str, rubric: str, criterion: str) -> list[dict]:
    return [{"role": "system", "content": READING_SYSTEM},
            {"role": "user", "content": judge_case(query, response, rubric, criterion) + GEVAL_REQUEST}]


class GEvalEvaluator(ReadingJudge):
    """Expected 1–10 rating from the digit tokens' probabilities, mapped to 1–100 (see the module docstring)."""

    kind = "geval"

    def __init__(self, model: LoadedModel | str | os.PathLike | None = None, **kw):
        super().__init__(model, **kw)
        try:
            self.scale = DigitScale.build(self.judge.tokenize, RATING_PREFIX)
        except Exception:
            self.close()
            raise

    def rate(self, query, response, rubric, criterion):
        toks, warnings = self.prompt(geval_messages(query, response, rubric, criterion), len(self.scale.prefix) + 2)
        score, raw, more = read_rating(self.judge, self.scale, toks + list(self.scale.prefix))
        return score, raw, warnings + more
