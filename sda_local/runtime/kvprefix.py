"""KV-cache prefix reuse: a sequence keeps what it already holds up to the first token that differs, and two
sequences whose prompts share a prefix evaluate it once.

Used by the engine's two streams, the teacher-forcing scorer, PaLRS residual capture and the local judge.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from .backend import Context

MIN_SHARED_PREFIX = 4  # shorter shared prefixes are cheaper to evaluate twice than to copy
# The engine evaluates a prompt in chunks of this many tokens at fixed boundaries from position 0, each chunk a
# decode of its own stream's rows only, and reuses a cache only up to a chunk boundary that such an evaluation
# reached: llama.cpp's numbers depend on how a batch is composed, so this is what makes a prompt's keys, values
# and logits the same whatever the cache held before (the same seed, the same answer).
PROMPT_CHUNK = 32


def chunk_floor(n: int) -> int:
    """``n`` rounded down to a chunk boundary (``PROMPT_CHUNK``)."""
    return n - n % PROMPT_CHUNK


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` have in common."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    idx = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(idx[0]) if idx.size else n


@dataclass
class KvStream:
    """One sequence of one llama.cpp context, and the tokens its KV cache holds."""

    ctx: "Context"
    seq: int = 0
    tokens: list[int] = field(default_factory=list)
    canonical: int = 0  # leading tokens evaluated as a prompt in chunks (``PROMPT_CHUNK``): reusable exactly

    def canonical_prefix(self, toks: Sequence[int], limit: int) -> int:
        """How many leading tokens of ``toks`` (at most ``limit``) this sequence can lend exactly: cached, evaluated
        as a prompt in chunks, and ending at a chunk boundary."""
        return chunk_floor(min(common_prefix(self.tokens, toks), self.canonical, limit))

    def trim(self, n: int) -> int:
        """Keep the first ``n`` cached tokens; returns how many are kept (0 when the memory cannot cut, as in
        recurrent models: then the sequence starts over)."""
        if n < len(self.tokens):
            if not self.ctx.seq_rm(self.seq, n, -1):
                self.ctx.seq_rm(self.seq, 0, -1)
                n = 0
            del self.tokens[n:]
        self.canonical = min(self.canonical, len(self.tokens))
        return len(self.tokens)

    def reuse(self, toks: Sequence[int], limit: int | None = None) -> int:
        """Keep the cached prefix shared with ``toks`` (at most ``limit`` tokens) and drop the rest; returns how
        many tokens are kept, i.e. where evaluation of ``toks`` must start."""
        n = common_prefix(self.tokens, toks)
        return self.trim(n if limit is None else min(n, limit))

    def reset(self) -> None:
        self.ctx.seq_rm(self.seq, 0, -1)
        self.tokens.clear()
        self.canonical = 0

    def copy_from(self, src: "KvStream", n: int) -> None:
        """Hold the first ``n`` tokens of ``src`` (a cell-sharing copy in one context, a state copy across)."""
        if src.ctx is self.ctx:
            src.ctx.seq_cp_full(src.seq, self.seq)
        else:
            self.ctx.seq_rm(self.seq, 0, -1)
            self.ctx.set_seq_state(self.seq, src.ctx.seq_state(src.seq))
        self.tokens = list(src.tokens)
        self.canonical = src.canonical
        self.trim(n)


def load_shared_prefix(a: KvStream, b: KvStream, ta: Sequence[int], tb: Sequence[int],
                       evaluate: Callable[[KvStream, Sequence[int]], None], *, keep_last: bool = True,
                       share: bool = True) -> int:
    """Prepare ``a`` and ``b`` for the prompts ``ta`` and ``tb``: each keeps what it holds of its prompt, and the
    prefix the prompts share (when at least ``MIN_SHARED_PREFIX`` tokens and ``share``) is evaluated once —
    in the stream that holds more of it, ``b`` on a tie — and copied to the other.

    ``evaluate(stream, tokens)`` decodes ``tokens`` after what ``stream`` holds and appends them to
    ``stream.tokens``.  ``keep_last`` leaves each prompt's last token to evaluate (whose logits the caller
    needs).  Returns the number of tokens evaluated here; the caller evaluates the rest of each prompt from
    ``len(stream.tokens)``.
    """
    last = 1 if keep_last else 0
    c = min(common_prefix(ta, tb), len(ta) - last, len(tb) - last)
    ra = a.reuse(ta, len(ta) - last)
    rb = b.reuse(tb, len(tb) - last)
    if not share or c < MIN_SHARED_PREFIX or (ra >= c and rb >= c):
        return 0
    src, dst, tsrc = (b, a, tb) if rb >= ra else (a, b, ta)
    have = len(src.tokens)
    evaluated = 0
    if have < c:
        evaluate(src, tsrc[have:c])
        evaluated = c - have
    dst.copy_from(src, c)
    return evaluated
