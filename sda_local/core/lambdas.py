"""Evaluator score → amplifying factor λ: the seven mappings of arXiv 2511.16324 (poor answer → strong steering)."""
from __future__ import annotations

import math
from typing import Callable


def _sigmoid(s: float) -> float:
    return 2.0 * (1.0 / (1.0 + math.exp(1.0 - 100.0 / s)) - 0.5)


LAMBDA_MAPPINGS: dict[str, Callable[[float], float]] = {
    "exp_shifted": lambda s: math.exp(-s / 100.0 - 1.0),
    "exp": lambda s: math.exp(-s / 100.0),
    "inverse": lambda s: 100.0 / s,
    "linear_signed": lambda s: 1.0 - 2.0 * s / 100.0,
    "sigmoid": _sigmoid,
    "linear": lambda s: 1.0 - s / 100.0,
    "cosine": lambda s: math.cos(s * math.pi / 200.0),
}


def lambda_from_score(score: float, mapping: str = "sigmoid") -> float:
    """Map an evaluator score in [1, 100] to the amplifying factor λ (poor answer → strong steering)."""
    try:
        fn = LAMBDA_MAPPINGS[mapping]
    except KeyError:
        raise ValueError(f"unknown λ mapping {mapping!r}; choose one of {', '.join(LAMBDA_MAPPINGS)}") from None
    try:
        s = float(score)
    except (TypeError, ValueError):
        raise ValueError(f"score must be a number in [1, 100], got {score!r}") from None
    if not (1.0 <= s <= 100.0):  # also rejects NaN
        raise ValueError(f"score must be in [1, 100], got {score!r}")
    return float(fn(s))
