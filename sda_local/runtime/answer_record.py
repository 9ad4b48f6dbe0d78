"""An answer's per-token log-probabilities under one stream, gathered where they cost nothing.

- ``LogprobRecorder``: a processor appended to a plain-decoding chain.  It reads the log-probs the chain
  already computed (``StepState.lp_with``) and, one step later, the token that was drawn from them (the last
  entry of the history), so a generation records log p(y_t | prompt, y<t) of each of its tokens with no extra
  pass over the vocabulary and no change to what is sampled.
- ``AnswerRecord``: a recorded answer (prompt, tokens, log-probs), carried by its ``Finished`` event: the
  self-score reads the uninstructed stream's half of its gap from it instead of teacher-forcing the answer again.
- ``target_logprobs``: ``core.target_logprobs`` of logits rows taken to float64 (the self-score's gap is a
  mean difference of two of these).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.distributions import target_logprobs as core_target_logprobs
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
    """log softmax(rows[i])[targets[i]], computed in float64, for logits ``rows`` of shape (n, n_vocab)."""
    return core_target_logprobs(np.asarray(rows, dtype=np.float64), targets)
