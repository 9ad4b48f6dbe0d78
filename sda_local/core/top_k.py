"""The token inspector's data: for one decoding step, the k most likely tokens under the instructed stream, the
uninstructed stream and the final (steered) distribution, with the step's JS, temperature and removals.

Pure numpy on arrays the step already computed (``StepState.lp_with``, ``lp_without``, the sampled-from
``probs``): ``np.argpartition`` finds the k largest of each in O(n_vocab), then only those k are sorted.  No
token text here: ``TopK.to_dict`` takes the engine's id → text function.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .processors import StepState

DEFAULT_K = 5
Ranked = tuple[tuple[int, float], ...]  # (token id, probability), most likely first
LISTS = ("instructed", "uninstructed", "steered")


def top_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of ``values`` (1-D), largest first (ties in index order)."""
    n = values.size
    if k >= n:
        idx = np.arange(n)
    else:
        idx = np.argpartition(values, n - k)[n - k:]  # no copy of the array (unlike partitioning −values)
    return idx[np.lexsort((idx, -values[idx]))]


def ranked(values: np.ndarray, k: int, log: bool) -> Ranked:
    """The ``k`` most likely tokens of a distribution given as probabilities or (``log``) log-probabilities;
    tokens of probability 0 (removed by a constraint) are left out, so a list may be shorter than ``k``."""
    idx = top_indices(values, k)
    pairs = ((int(i), math.exp(v) if log else float(v)) for i, v in zip(idx.tolist(), values[idx].tolist()))
    return tuple((i, p) for i, p in pairs if p > 0.0)


@dataclass(frozen=True)
class TopK:
    """One step's top-k lists (``uninstructed`` is None when decoding one stream) and its diagnostics."""

    instructed: Ranked
    uninstructed: Ranked | None
    steered: Ranked
    js: float | None
    temperature: float
    n_removed: int   # candidates removed by constraints (plausibility α, echo block) at this step

    def to_dict(self, text_of: Callable[[int], str]) -> dict:
        """JSON-ready: each list as ``[[token text, probability], …]`` (``text_of`` maps a token id to its text)."""
        d: dict = {name: None if getattr(self, name) is None else
                   [[text_of(i), round(p, 6)] for i, p in getattr(self, name)] for name in LISTS}
        d.update(js=self.js, temperature=self.temperature, n_removed=self.n_removed)
        return d


def top_k_lists(state: StepState, probs: np.ndarray, k: int = DEFAULT_K) -> TopK:
    """The inspector's lists for one step: ``state`` is the chain's final ``StepState`` (``ProcessorChain.step``)
    and ``probs`` the distribution the token was drawn from (before top-p)."""
    if k < 1:
        raise ValueError(f"k must be ≥ 1, got {k!r}")
    without = None if state.lp_without is None else ranked(state.lp_without, k, log=True)
    return TopK(ranked(state.lp_with, k, log=True), without, ranked(probs, k, log=False), state.js,
                float(state.temperature), int(state.n_removed))
