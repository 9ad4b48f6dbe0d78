"""Nucleus (top-p) sampling with a deterministic order: the draw depends only on the probabilities, top-p and
the generator state."""
from __future__ import annotations

import math

import numpy as np


def _ranked(probs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """idx ordered by probability (descending), ties by token id (ascending): deterministic."""
    return idx[np.lexsort((idx, -probs[idx]))]


def sample_top_p(probs, top_p: float, rng: np.random.Generator) -> int:
    """Nucleus sampling: draw from the smallest set of most-probable tokens whose mass reaches ``top_p``.

    Uses exactly one ``rng.random()`` draw per call.  ``top_p >= 1`` keeps every token.  Equal probabilities
    are ordered by token id, so the result depends only on ``probs``, ``top_p`` and the generator state.
    """
    p = np.asarray(probs)
    if p.ndim != 1 or p.size == 0 or p.dtype.kind != "f":
        raise ValueError(f"probs: expected a non-empty 1-D float array, got shape {p.shape}, dtype {p.dtype}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs must be finite and non-negative")
    total = float(p.sum(dtype=np.float64))
    if not total > 0:
        raise ValueError("probs sum to zero")
    if math.isnan(top_p) or not top_p > 0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    u = rng.random()
    if top_p >= 1.0:
        c = np.cumsum(p, dtype=np.float64)
        return int(min(np.searchsorted(c, u * c[-1], side="right"), p.size - 1))
    # The tokens with p >= tau are a prefix of the ranking; once their mass reaches top_p the nucleus lies
    # inside them, so only they need sorting.  Lower tau until that holds (a full sort at worst).
    target = top_p * total
    tau = float(p.max()) * 1e-3
    while True:
        cand = np.flatnonzero(p >= tau) if tau > 0 else np.arange(p.size)
        if tau <= 0 or float(p[cand].sum(dtype=np.float64)) >= target:
            break
        tau = tau * 1e-3 if tau > 1e-30 else 0.0
    order = _ranked(p, cand)
    c = np.cumsum(p[order], dtype=np.float64)
    n_keep = int(min(np.searchsorted(c, target * (1 - 1e-12), side="left") + 1, order.size))
    c = c[:n_keep]
    j = int(min(np.searchsorted(c, u * c[-1], side="right"), n_keep - 1))
    return int(order[j])
