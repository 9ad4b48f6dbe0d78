"""An answer's per-token log-probabilities under one stream, gathered where they cost nothing.

- ``LogprobRecorder``: a processor appended to a plain-decoding chain.  It reads the log-probs the chain
  already computed (``StepState.lp_with``) and, one step later, the token that was drawn from them (the last
  entry of the history), so a generation records log p(y_t | prompt, y<t) of each of its tokens with no extra
  pass over the vocabulary and no change to what is sampled.
- ``AnswerRecord``: a recorded answer (prompt, tokens, log-probs), carried by its ``Finished`` event: the
  self-score reads the uninstructed stream's half of its gap from it instead of teacher-forcing the answer again.
- ``target_logprobs``: float64 log softmax(row)[target] of logits rows (``evaluators.scales.mean_logprob_gap``
  is the mean difference of two of these).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.processors import Processor, StepState


class LogprobRecorder(Processor):
    """Records the stream's log-probability of each token drawn (see the module docstring); changes nothing."""

    def __init__(self):
        self.values: list[float] = []
        self._last: np.ndarray | None = None  # this step's log-probs (never written to by the chain)

    def __call__(self, state: StepState) -> StepState:
        if self._last is not None and len(state.history) == len(self.values) + 1:
            self.values.append(float(self._last[state.history[-1]]))
        self._last = state.lp_with
        return state

    def finish(self, tokens: Sequence[int]) -> np.ndarray | None:
        """The log-probs of ``tokens`` (the whole answer): the last one is read here.  None when the record
        does not cover exactly these tokens."""
        if self._last is not None and len(tokens) == len(self.values) + 1:
            self.values.append(float(self._last[tokens[-1]]))
        self._last = None
        if len(self.values) != len(tokens):
            return None
        return np.asarray(self.values, dtype=np.float64)

    def __repr__(self) -> str:
        return "LogprobRecorder()"


@dataclass(frozen=True)
class AnswerRecord:
    """An answer as the engine generated it: the prompt's tokens, the answer's tokens (no end-of-generation
    token) and each answer token's log-probability under the base stream (float64, float32 arithmetic)."""

    prompt: tuple[int, ...]
    tokens: tuple[int, ...]
    logprobs: np.ndarray


def target_logprobs(rows: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """log softmax(rows[i])[targets[i]] in float64 for logits ``rows`` of shape (n, n_vocab)."""
    x = np.asarray(rows, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    if x.ndim != 2 or x.shape[0] != y.size:
        raise ValueError(f"logits {x.shape} do not match {y.size} targets")
    m = x.max(axis=1, keepdims=True)
    return x[np.arange(y.size), y] - (m[:, 0] + np.log(np.exp(x - m).sum(axis=1)))
