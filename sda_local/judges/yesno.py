"""``yesno``: P(True)-style judging (Kadavath et al. 2022).  The judge is asked whether the response meets the
rubric's standard of a good response, and its reply is started for it: "Answer: ".  The score is read from the
next token's probabilities: 1 + 99·P(Yes) / (P(Yes) + P(No)), summing the single-token spellings of each word
(" Yes", "Yes", " yes", "yes"; ``choice_tokens.find_choices``).  One prompt evaluation per score, no decoding.
"""
from __future__ import annotations

import os

from ..runtime.backend import LoadedModel
from .base import EvaluatorError, judge_case
from .choice_tokens import find_choices
from .reading import READING_SYSTEM, ReadingJudge
from .scales import LOW_MASS, yes_no_score

ANSWER_PREFIX = "Answer: "
YESNO_REQUEST = ("Question: does the response meet the rubric's standard of a good response (75 or better on its "
                 "1-100 scale)? Answer Yes or No.")


def yesno_messages(query: str, response: str, rubric: str, criterion: str) -> list[dict]:
    return [{"role": "system", "content": READING_SYSTEM},
            {"role": "user", "content": judge_case(query, response, rubric, criterion) + YESNO_REQUEST}]


def _spellings(word: str) -> tuple[str, ...]:
    return word, " " + word, word.lower(), " " + word.lower()


class YesNoEvaluator(ReadingJudge):
    """1 + 99·P(Yes | Yes or No) after "Answer: " (see the module docstring)."""

    kind = "yesno"

    def __init__(self, model: LoadedModel | str | os.PathLike | None = None, **kw):
        super().__init__(model, **kw)
        try:
            self.choices = find_choices(self.judge.tokenize, ANSWER_PREFIX, ["Yes", "No"], _spellings)
        except Exception:
            self.close()
            raise

    def rate(self, query, response, rubric, criterion):
        toks, warnings = self.prompt(yesno_messages(query, response, rubric, criterion),
                                     len(self.choices.prefix) + 1)
        p_yes, p_no = self.choices.probabilities(self.judge.logprobs(toks + list(self.choices.prefix)))
        try:
            score = yes_no_score(p_yes, p_no)
        except ValueError:
            raise EvaluatorError("the judge put no probability on Yes or No") from None
        if p_yes + p_no < LOW_MASS:
            warnings.append(f"the judge put only {p_yes + p_no:.0%} of its next-token probability on Yes or No")
        word = "Yes" if p_yes >= p_no else "No"
        return score, f"{ANSWER_PREFIX}{word} (P(yes) {p_yes:.3f}, P(no) {p_no:.3f})", warnings
