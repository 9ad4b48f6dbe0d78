"""What a generation reports beside its tokens (OpenAI's ``logprobs`` / ``top_logprobs``), and what else it may add.

- ``DecodeExtras``: per-token log-probs on or off (and how many alternatives), the two streams' own lists for
  SDA, and a GBNF grammar the answer must match (``runtime.grammar``).
- ``step_logprobs``: one step's ``TokenLogprobs`` from the arrays the step already computed.  The log-prob is
  that of the distribution the token was drawn from: log softmax of the processor chain's final scores (after
  steering, plausibility, echo block, temperature and the grammar), **before** top-p, which only truncates that
  distribution when the token is drawn.  The streams' lists (``with_instruction`` / ``without_instruction``)
  are the two unsteered streams at temperature 1, before any constraint: ``StepState.lp_with`` / ``lp_without``.

Tokens of probability 0 (removed by a constraint) never appear in a top list, so a list may be shorter than k.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.processors import StepState

MAX_TOP_LOGPROBS = 20
Ranked = tuple[tuple[bytes, float], ...]  # (token bytes, log-prob), most likely first


@dataclass(frozen=True)
class DecodeExtras:
    """``logprobs``: None (off) or k in 0–20 (each token's log-prob and its k most likely alternatives);
    ``stream_logprobs``: SDA only, also both streams' own log-prob and top-k; ``grammar``: GBNF text."""

    logprobs: int | None = None
    stream_logprobs: bool = False
    grammar: str | None = None

    def __post_init__(self):
        k = self.logprobs
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_TOP_LOGPROBS):
            raise ValueError(f"logprobs must be None or an integer from 0 to {MAX_TOP_LOGPROBS}, got {k!r}")
        if self.stream_logprobs and k is None:
            raise ValueError("stream_logprobs needs logprobs")


@dataclass(frozen=True)
class StreamLogprobs:
    """One unsteered stream at this step: the drawn token's log-prob under it, and its k most likely tokens."""

    logprob: float
    top: Ranked


@dataclass(frozen=True)
class TokenLogprobs:
    token: bytes                 # the drawn token's bytes (may be part of a UTF-8 character)
    logprob: float               # under the distribution it was drawn from (before top-p)
    top: Ranked                  # that distribution's k most likely tokens
    with_instruction: StreamLogprobs | None = None     # the instructed stream (SDA with stream_logprobs only)
    without_instruction: StreamLogprobs | None = None  # the uninstructed stream, the contrast


def _top(logp: np.ndarray, k: int, shift: float = 0.0) -> list[tuple[int, float]]:
    """The ``k`` largest finite entries of ``logp`` (minus ``shift``) with their ids, largest first, ties by id."""
    if k <= 0:
        return []
    n = logp.size
    idx = np.arange(n) if k >= n else np.argpartition(logp, n - k)[n - k:]
    idx = idx[np.lexsort((idx, -logp[idx]))]
    return [(int(i), float(v) - shift) for i, v in zip(idx.tolist(), logp[idx].tolist()) if math.isfinite(v)]


def _logsumexp(scores: np.ndarray) -> float:
    m = float(scores.max())
    return m + math.log(float(np.exp(scores - m).sum(dtype=np.float64)))


def _stream(lp: np.ndarray, tok: int, k: int, piece: Callable[[int], bytes]) -> StreamLogprobs:
    return StreamLogprobs(float(lp[tok]), tuple((piece(i), v) for i, v in _top(lp, k)))


def step_logprobs(state: StepState, tok: int, tok_bytes: bytes, extras: DecodeExtras,
                  piece: Callable[[int], bytes]) -> TokenLogprobs:
    """The report of one step (module docstring): ``state`` is the chain's final state, ``tok`` the drawn token
    (``tok_bytes``: its bytes as the answer's text has them), ``piece`` maps a top list's token id to its bytes."""
    k = int(extras.logprobs or 0)
    scores = state.scores
    lse = _logsumexp(scores)
    top = tuple((piece(i), v) for i, v in _top(scores, k, lse))
    a = b = None
    if extras.stream_logprobs and state.lp_without is not None:
        a, b = _stream(state.lp_with, tok, k, piece), _stream(state.lp_without, tok, k, piece)
    return TokenLogprobs(tok_bytes, float(scores[tok]) - lse, top, a, b)
