"""Pure math of the probability-reading judges: from next-token probabilities (or the two streams' log-prob gap)
to a 1–100 score.  No llama.cpp here; every function has hand-computed tests (tests/test_judges.py).

- ``rating_distribution``: P(rating = 1 … 10) from the digit probabilities after "Rating: ", where "10" is the
  token "1" followed by "0" (digits are single tokens in every vocabulary we ship, "10" is two);
- ``expected_rating`` / ``rating_to_score``: the G-Eval expectation Σ r·P(r) and its linear map 1–10 → 1–100;
- ``yes_no_score``: 1 + 99·P(yes) / (P(yes) + P(no));
- ``self_score``: 1 + 99·sigmoid(r / τ) for the contrastive log-likelihood ratio r.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..core import target_logprobs

RATING_MAX = 10               # the digit judges ask for an integer rating 1 … RATING_MAX
# nats per token: r = +0.1 → score ≈ 73, r = −0.1 → ≈ 28, r = 0 → 50.5.  On SmolLM2 and TruthfulQA answers r
# mostly lies within ±0.3, which τ = 0.1 spreads over most of 1–100 (pairwise accuracy does not depend on τ; λ does).
SELF_SCORE_TAU = 0.1
LOW_MASS = 0.5                # below this share of the next token's probability on the answers, a warning


def rating_distribution(p_digits: Sequence[float], p_zero_after_one: float, p_ten: float = 0.0) -> np.ndarray:
    """P(rating = 1 … 10), not normalised, from the probabilities of the digit tokens "1" … "9" at the rating
    position (``p_digits``, 9 values), the probability ``p_zero_after_one`` of "0" right after a "1", and the
    probability ``p_ten`` of a single "10" token (0 where the vocabulary has none).

    A "1" is the rating 10 when a "0" follows and the rating 1 otherwise:
    P(1) = p("1")·(1 − p("0" | "1")), P(10) = p("1")·p("0" | "1") + p("10").
    """
    p = np.asarray(p_digits, dtype=np.float64)
    if p.shape != (RATING_MAX - 1,):
        raise ValueError(f"need the probabilities of the digits 1 … 9 (9 values), got shape {p.shape}")
    q = float(p_zero_after_one)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"p_zero_after_one must be a probability, got {q!r}")
    if (p < 0).any() or p_ten < 0:
        raise ValueError("probabilities must be ≥ 0")
    out = np.empty(RATING_MAX, dtype=np.float64)
    out[:RATING_MAX - 1] = p
    out[0] = p[0] * (1.0 - q)
    out[RATING_MAX - 1] = p[0] * q + float(p_ten)
    return out


def expected_rating(weights: Sequence[float], values: Sequence[float] | None = None) -> float:
    """Σ v·w / Σ w: the expectation of ``values`` (default 1, 2, …) under the weights, normalised here.

    Raises ``ValueError`` when the weights carry no probability (all zero, or not finite)."""
    w = np.asarray(weights, dtype=np.float64)
    v = np.arange(1, w.size + 1, dtype=np.float64) if values is None else np.asarray(values, dtype=np.float64)
    if v.shape != w.shape:
        raise ValueError(f"{w.size} weights for {v.size} values")
    total = float(w.sum())
    if not math.isfinite(total) or total <= 0.0:
        raise ValueError("the weights carry no probability")
    return float(np.dot(w, v) / total)


def rating_to_score(rating: float, top: int = RATING_MAX) -> float:
    """Linear map of a rating in [1, top] to the 1–100 score scale: 1 → 1, top → 100."""
    if not 1.0 <= rating <= top:
        raise ValueError(f"rating must be in [1, {top}], got {rating!r}")
    return 1.0 + 99.0 * (rating - 1.0) / (top - 1.0)


def yes_no_score(p_yes: float, p_no: float) -> float:
    """1 + 99·P(yes | yes or no): 1 when the judge says No for sure, 100 for Yes, 50.5 when undecided."""
    total = p_yes + p_no
    if not math.isfinite(total) or total <= 0.0 or p_yes < 0 or p_no < 0:
        raise ValueError(f"P(yes) = {p_yes!r} and P(no) = {p_no!r} carry no probability")
    return 1.0 + 99.0 * p_yes / total


def self_score(r: float, tau: float = SELF_SCORE_TAU) -> float:
    """1 + 99·sigmoid(r / τ): monotone in r, the mean per-token log p_with − log p_without of the answer.

    r > 0: the instruction makes the answer likelier, i.e. the answer already is what the instruction asks for
    → a high score (little steering); r < 0 → a low score (strong steering)."""
    if not math.isfinite(r):
        raise ValueError(f"r must be finite, got {r!r}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    x = r / tau
    sig = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
    return 1.0 + 99.0 * sig


def mean_logprob_gap(logits_with: np.ndarray, logits_without: np.ndarray, targets: Sequence[int]) -> float:
    """Mean over positions i of log softmax(logits_with[i])[y_i] − log softmax(logits_without[i])[y_i]
    (float64; rows are positions, columns the vocabulary)."""
    a = np.asarray(logits_with, dtype=np.float64)
    b = np.asarray(logits_without, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != y.size or y.size == 0:
        raise ValueError(f"logits {a.shape} / {b.shape} do not match {y.size} targets")
    return float(np.mean(target_logprobs(a, y) - target_logprobs(b, y)))
