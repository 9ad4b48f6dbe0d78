"""The KV caches behind an engine's streams, and the one place they are loaded, reused, stepped and forced.

Three streams, named for what they hold:

- ``instructed`` — the conversation with the alignment instruction (SDA's "with" stream);
- ``uninstructed`` — the conversation without it, or with the contrast (SDA's "without" stream; plain answers
  without an instruction run here too);
- ``base`` — the turn's unsteered base answer when it is decoded in the same batch as the SDA answer (the
  ``"batched"`` layout only; None in ``"contexts"``).

Layouts: ``"batched"`` puts all three in one llama.cpp context (one ``llama_decode`` per step for every stream);
``"contexts"`` gives the instructed and uninstructed streams a context each, over the same weights.

A prompt is evaluated in chunks of ``PROMPT_CHUNK`` tokens at fixed boundaries from position 0, each chunk one
decode of its own stream's rows, and a cache (a stream's own, or one lent by another stream) is reused only up
to a chunk boundary that such an evaluation reached: llama.cpp's numbers depend on how a batch is composed, so
this is what makes a prompt's logits the same whatever the caches held (the same seed, the same answer).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import PromptTooLongError, SdaError
from .answer_record import target_logprobs
from .backend import Context, LoadedModel
from .kvprefix import PROMPT_CHUNK, KvStream, chunk_floor, common_prefix
from .layouts import Layout


class Streams:
    """One engine's llama.cpp contexts and the streams on them (module docstring).  ``split``: the instructed
    stream is steered by control vectors alone, so no cache is shared between it and the others."""

    def __init__(self, model: LoadedModel, layout: Layout, *, n_ctx: int, n_batch: int, kv_unified: bool,
                 n_threads: int, share_prefix: bool = True):
        if layout == "batched":
            ctx = Context(model, n_ctx, n_seq_max=3, n_threads=n_threads, n_batch=n_batch, kv_unified=kv_unified)
            self.contexts = [ctx]
            self.instructed, self.uninstructed, self.base = KvStream(ctx, 0), KvStream(ctx, 1), KvStream(ctx, 2)
        else:
            ci = Context(model, n_ctx, n_threads=n_threads, n_batch=n_batch)
            cu = Context(model, n_ctx, n_threads=n_threads, n_batch=n_batch)
            self.contexts = [ci, cu]
            self.instructed, self.uninstructed, self.base = KvStream(ci, 0), KvStream(cu, 0), None
        self.layout = layout
        self.share_prefix = share_prefix
        self.split = False
        self.n_ctx = min(c.n_ctx_seq for c in self.contexts)

    @property
    def sda(self) -> tuple[KvStream, KvStream]:
        """The two streams an SDA answer advances: (instructed, uninstructed)."""
        return self.instructed, self.uninstructed

    def close(self) -> None:
        for c in self.contexts:
            c.close()
        self.contexts = []

    def reset(self) -> None:
        """Forget every cached token (the next prompt is evaluated from scratch)."""
        for s in (self.instructed, self.uninstructed, self.base):
            if s is not None:
                s.reset()

    def check_fits(self, toks: Sequence[int], what: str = "prompt") -> None:
        """``PromptTooLongError`` unless a prompt of ``toks`` leaves room for one answer token."""
        if len(toks) + 1 > self.n_ctx:
            raise PromptTooLongError(len(toks), self.n_ctx, what)

    # -- prompts ----------------------------------------------------------------------------------------------
    def prefill(self, s: KvStream, toks: Sequence[int], want: bool = True) -> np.ndarray | None:
        """Evaluate the rest of prompt ``toks`` after what ``s`` holds (a chunk boundary) in chunks of
        ``PROMPT_CHUNK`` tokens at fixed boundaries from position 0, one decode of ``s``'s rows each: the same
        batches whatever the cache held, so the same numbers.  The last token's logits (a copy) when ``want``."""
        start, ctx, out = len(s.tokens), s.ctx, None
        if start % PROMPT_CHUNK:
            raise SdaError(f"internal: a prompt resumes at token {start}, not at a chunk boundary")
        try:
            for lo in range(start, len(toks), PROMPT_CHUNK):
                hi = min(lo + PROMPT_CHUNK, len(toks))
                rows = [ctx.add(toks[i], i, s.seq, want and i == len(toks) - 1) for i in range(lo, hi)]
                ctx.decode()
                s.tokens.extend(toks[lo:hi])
                if want and hi == len(toks):
                    out = ctx.logits(rows[-1]).copy()
        except Exception:
            s.reset()  # the cache no longer matches what we track: start clean next time
            raise
        s.canonical = len(s.tokens)
        return out

    def keep(self, s: KvStream, toks: Sequence[int]) -> int:
        """``s`` keeps the part of prompt ``toks`` it can reuse exactly (never the last token); how much."""
        return s.trim(s.canonical_prefix(toks, len(toks) - 1))

    def adopt(self, s: KvStream, src: KvStream, toks: Sequence[int]) -> int:
        """``s`` takes ``src``'s exactly reusable prefix of ``toks`` when that is longer than its own (never across
        differently steered contexts); how many tokens ``s`` holds."""
        n = src.canonical_prefix(toks, len(toks) - 1)
        if not self.split and n > len(s.tokens):
            s.copy_from(src, n)
        return len(s.tokens)

    def load_pair(self, t_with: list[int], t_without: list[int],
                  sources: Sequence[KvStream] = ()) -> tuple[list[np.ndarray], int]:
        """The instructed and uninstructed streams hold ``t_with`` and ``t_without``: each keeps (or takes from
        ``sources``) what it can reuse exactly, the chunks the two prompts share are evaluated once and copied,
        the rest evaluated in each stream's own chunks.  → (both last-token logits, tokens evaluated)."""
        a, b = self.instructed, self.uninstructed
        self.keep(a, t_with)
        self.keep(b, t_without)
        for src in sources:
            self.adopt(b, src, t_without)
            self.adopt(a, src, t_with)
        evaluated = 0
        c = chunk_floor(min(common_prefix(t_with, t_without), len(t_with) - 1, len(t_without) - 1))
        if self.share_prefix and not self.split and c and min(len(a.tokens), len(b.tokens)) < c:
            src, dst, tsrc = (b, a, t_without) if len(b.tokens) >= len(a.tokens) else (a, b, t_with)
            if len(src.tokens) < c:
                evaluated += c - len(src.tokens)
                self.prefill(src, tsrc[:c], want=False)
            if len(dst.tokens) < c:
                dst.copy_from(src, c)
        ra, rb = len(a.tokens), len(b.tokens)
        l_with, l_without = self.prefill(a, t_with), self.prefill(b, t_without)
        return [l_with, l_without], evaluated + (len(t_with) - ra) + (len(t_without) - rb)

    def load_one(self, s: KvStream, other: KvStream, toks: list[int]) -> tuple[list[np.ndarray], int]:
        """``s`` holds ``toks`` (reusing its own cache or ``other``'s).  → ([last-token logits], tokens evaluated)."""
        self.keep(s, toks)
        r = self.adopt(s, other, toks)
        return [self.prefill(s, toks)], len(toks) - r

    def load_three(self, t_with: list[int], t_without: list[int],
                   t_base: list[int]) -> tuple[list[np.ndarray], int, int]:
        """The SDA streams and the base stream hold their prompts (each in its own chunks, as ``load_pair`` and
        ``load_one`` load them, so each answer's numbers are those it gets alone); the base stream may lend the
        others the chunks it shares with their prompts.  → (the three last-token logits, tokens evaluated for the
        SDA streams, for the base stream)."""
        (l_base,), evaluated_base = self.load_one(self.base, self.uninstructed, t_base)
        (l_with, l_without), evaluated_sda = self.load_pair(t_with, t_without, sources=(self.base,))
        return [l_with, l_without, l_base], evaluated_sda, evaluated_base

    # -- steps --------------------------------------------------------------------------------------------------
    def step(self, streams: tuple[KvStream, ...], tok: int) -> list[np.ndarray]:
        """Append ``tok`` to every stream: one ``llama_decode`` per context.  Views of each stream's new logits."""
        return self.step_groups([(streams, tok)])[0]

    def step_groups(self, groups: list[tuple[tuple[KvStream, ...], int]]) -> list[list[np.ndarray]]:
        """Append each group's token to the group's streams, every group in the same ``llama_decode`` per
        context (rows in group order).  Per group, views of its streams' new logits."""
        rows: dict[tuple[int, int], int] = {}
        every = [s for g, _ in groups for s in g]
        try:
            for ctx in dict.fromkeys(s.ctx for s in every):
                for gi, (g, tok) in enumerate(groups):
                    for j, s in enumerate(g):
                        if s.ctx is ctx:
                            rows[gi, j] = ctx.add(tok, len(s.tokens), s.seq, True)
                ctx.decode()
        except Exception:
            for s in every:
                s.reset()
            raise
        for g, tok in groups:
            for s in g:
                s.tokens.append(tok)
        return [[s.ctx.logits(rows[gi, j]) for j, s in enumerate(g)] for gi, (g, _) in enumerate(groups)]

    # -- teacher forcing (the self-score's shortcut) -------------------------------------------------------------
    def force_instructed(self, t_with: list[int], answer: list[int]) -> np.ndarray:
        """log p(y_t | ``t_with``, y<t) of each ``answer`` token through the instructed stream (float64), from one
        batched decode of the prompt's uncached part and the answer; the prefix the uninstructed stream holds is
        copied, not evaluated.  Afterwards the stream holds only that reused prefix: what the forced batch
        computed is dropped, because its numbers depend on the batch's layout."""
        s = self.instructed
        self.keep(s, t_with)
        r = self.adopt(s, self.uninstructed, t_with)
        lps = self._force(s, t_with[r:] + answer[:-1], answer)
        s.trim(r)
        return lps

    def _force(self, s: KvStream, toks: list[int], targets: list[int]) -> np.ndarray:
        """Decode ``toks`` after what ``s`` holds, with logits at the last ``len(targets)`` of them; the float64
        log-prob of each target from its row (batches of ``n_batch``)."""
        ctx, first = s.ctx, len(toks) - len(targets)
        out: list[np.ndarray] = []
        try:
            pos0, i = len(s.tokens), 0
            while i < len(toks):
                n = min(ctx.batch_free, len(toks) - i)
                idx = [(j, ctx.add(toks[j], pos0 + j, s.seq, j >= first)) for j in range(i, i + n)]
                ctx.decode()
                want = [(j, bi) for j, bi in idx if j >= first]
                for k in range(0, len(want), 32):  # 32 rows at a time: float64 copies of whole rows
                    part = want[k:k + 32]
                    rows = np.stack([ctx.logits(bi) for _, bi in part])
                    out.append(target_logprobs(rows, [targets[j - first] for j, _ in part]))
                i += n
        except Exception:
            s.reset()
            raise
        s.tokens.extend(toks)
        return np.concatenate(out)
