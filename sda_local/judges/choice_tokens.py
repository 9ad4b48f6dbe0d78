"""Which tokens a probability-reading judge reads, found from the judge model's own tokenizer.

A judge's reply starts with a fixed prefix ("Rating: ", "Answer: ") and the next token is the answer.  How the
prefix and the answer split into tokens depends on the vocabulary, so both are found by tokenizing the whole
replies (prefix + each answer): the answer starts at the first token where the replies part, or earlier where
the prefix's own tokenization ends (" Yes" merges the prefix's space into the answer's token), as the model
would write it; the first token of each answer is read.  Checked with the vocabularies we ship (SmolLM2, Qwen2.5, Gemma 3) and the tiny test
model: "Rating: 7" is [... ":", " ", "7"] in all of them (the space is its own token and every digit 0–9 is a
single token), "10" is the two tokens "1" "0", and "Answer: Yes" ends in one token " Yes" (the tiny model
spells it letter by letter; there the first letter decides).

Besides that canonical token, single-token spellings of the same answer (without / with a leading space,
lower case) are summed, so probability the model puts on "Yes" rather than " Yes" is not lost.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..runtime.kvprefix import common_prefix
from .base import EvaluatorError
from .scales import RATING_MAX, rating_distribution

Tokenize = Callable[[str], list[int]]  # text → token ids, no BOS, special tokens not parsed


@dataclass(frozen=True)
class Choices:
    """The reply ``prefix`` (token ids) and, per answer, the token ids whose probabilities count for it."""

    prefix: tuple[int, ...]
    tokens: tuple[tuple[int, ...], ...]
    first: tuple[int, ...]           # the canonical first token of each answer after the prefix
    whole: tuple[bool, ...]          # whether that token is the whole answer

    def probabilities(self, logprobs: np.ndarray) -> np.ndarray:
        """P(answer) for each answer: the summed probabilities of its tokens (``logprobs``: one vocabulary row)."""
        return np.array([float(np.exp(logprobs[list(t)].astype(np.float64)).sum()) for t in self.tokens])


def find_choices(tokenize: Tokenize, prefix: str, answers: Sequence[str],
                 spellings: Callable[[str], Sequence[str]] | None = None) -> Choices:
    """The tokens of ``answers`` after ``prefix`` (see the module docstring).  ``spellings(answer)`` lists
    extra spellings whose single tokens also count (default: the answer with and without a leading space).

    Raises ``EvaluatorError`` when two answers start with the same token (they cannot be told apart)."""
    full = [tokenize(prefix + a) for a in answers]
    # the answer starts where the replies part, or earlier where the prefix's own last token merges with it
    n = min(common_prefix(tokenize(prefix), full[0]), *(common_prefix(full[0], f) for f in full),
            *(len(f) - 1 for f in full))
    first = [f[n] for f in full]
    if len(set(first)) != len(first):
        raise EvaluatorError(f"the judge model's tokenizer starts several of {list(answers)} with the same token; "
                             "this judge cannot read its answer")
    spellings = spellings or (lambda a: (a, " " + a))
    taken = set(first)
    sets = []
    for a, tok in zip(answers, first):
        ids = [tok]
        for s in spellings(a):
            t = tokenize(s)
            if len(t) == 1 and t[0] not in taken:
                ids.append(t[0])
                taken.add(t[0])
        sets.append(tuple(ids))
    return Choices(tuple(full[0][:n]), tuple(sets), tuple(first), tuple(len(f) == n + 1 for f in full))


@dataclass(frozen=True)
class DigitScale:
    """The tokens of a 1–10 rating after ``prefix``: digits 1–9 (single tokens, checked), and "10" either as
    the token "1" followed by the token ``zero`` (one extra decode reads P("0" | "1")) or as one token ``ten``."""

    choices: Choices                 # answers "1" … "9"
    zero: int | None                 # the "0" token after "1", where "10" is two tokens
    ten: int | None                  # the "10" token, where it is one

    @property
    def prefix(self) -> tuple[int, ...]:
        return self.choices.prefix

    @property
    def one(self) -> int:
        return self.choices.first[0]

    @classmethod
    def build(cls, tokenize: Tokenize, prefix: str = "Rating: ") -> "DigitScale":
        digits = [str(d) for d in range(1, RATING_MAX)]
        ch = find_choices(tokenize, prefix, digits)
        if not all(ch.whole):
            bad = [d for d, w in zip(digits, ch.whole) if not w]
            raise EvaluatorError(f"the digits {', '.join(bad)} are not single tokens after {prefix!r} in the judge "
                                 "model's vocabulary; use the grammar judge (--evaluator local) with this model")
        rest = tokenize(prefix + "10")
        if tuple(rest[:len(ch.prefix)]) != ch.prefix:
            raise EvaluatorError(f"{prefix + '10'!r} does not start like {prefix + '1'!r} in the judge's vocabulary")
        rest = rest[len(ch.prefix):]
        if len(rest) == 1:
            return cls(ch, None, rest[0])
        if len(rest) == 2 and rest[0] == ch.first[0]:
            return cls(ch, rest[1], None)
        raise EvaluatorError("'10' is neither one token nor '1' + '0' in the judge model's vocabulary")

    def distribution(self, logprobs: np.ndarray, logprobs_after_one: np.ndarray | None) -> np.ndarray:
        """P(rating = 1 … 10), not normalised: ``logprobs`` at the rating position, ``logprobs_after_one`` after
        the "1" token (needed when "10" is two tokens)."""
        p = self.choices.probabilities(logprobs)
        q = 0.0
        if self.zero is not None:
            if logprobs_after_one is None:
                raise ValueError("the probability of '0' after '1' is needed for this vocabulary")
            q = min(1.0, float(np.exp(np.float64(logprobs_after_one[self.zero]))))
        ten = 0.0 if self.ten is None else float(np.exp(np.float64(logprobs[self.ten])))
        return rating_distribution(p, q, ten)
