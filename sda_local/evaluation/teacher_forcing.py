"""Teacher forcing: both streams' logits at every position of given reference answers, in few decodes.

For a question, the "with" prompt (instruction added) and the "without" prompt are rendered with the
model's chat template exactly as ``Engine.generate`` renders them, ending with the assistant header, and a
reference answer is the assistant's reply that follows.  The scorer needs, for every answer token y_i, each
stream's logits after prompt + y_1 … y_{i-1}.

How it is done (one dedicated llama.cpp context over the engine's already-loaded weights, unified KV cache,
many sequences):

1. seq 0 holds the "with" prompt minus its last token, seq 1 the "without" prompt minus its last token.  The
   prefix the two prompts share is evaluated once and copied (``seq_cp``), and whatever the sequences
   already hold from the previous question is kept up to the first differing token (``sda_local.kvprefix``).
2. Each answer gets two work sequences that start as copies of seq 0 / seq 1 (in a unified cache a copy
   shares the cells: no compute, no memory).  Into them goes [last prompt token, y_1 … y_{n-1}] with logits
   requested at every position — all answers of the question, both streams, in one batch (split only
   when it exceeds ``n_batch`` tokens), so the prompt is never evaluated twice.
3. The work sequences are removed (``seq_rm``) before the next round or question.

Answers are tokenized on their own (no special tokens parsed, no BOS), as the model would emit them after
the assistant header; the end-of-turn token is not scored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..backend import Context, LoadedModel
from ..errors import PromptTooLongError
from ..kvprefix import KvStream, load_shared_prefix
from ..prompts import ChatPrompter, Message, Placement


@dataclass
class ForcedAnswer:
    """One answer's targets and, per position, the logits of each stream that predict them (float32)."""

    text: str
    targets: list[int]
    logits_with: np.ndarray     # (len(targets), n_vocab)
    logits_without: np.ndarray  # (len(targets), n_vocab)


class TeacherForcer:
    """Teacher-forces reference answers through the "with" and "without" streams of one model.

    >>> tf = TeacherForcer(engine.model, engine.prompter)
    >>> fa = tf.force([{"role": "user", "content": q}], instruction, ["Paris", "Lyon"])
    """

    def __init__(self, model: LoadedModel, prompter: ChatPrompter, *, n_ctx: int = 4096, n_seq_max: int = 34,
                 n_batch: int = 512, n_threads: int | None = None):
        if n_seq_max < 4:
            raise ValueError("n_seq_max must be ≥ 4 (two prompt sequences + one answer pair)")
        self.model = model
        self.prompter = prompter
        per_seq = -(-int(n_ctx) // int(n_seq_max))
        self.ctx = Context(model, per_seq, n_seq_max=n_seq_max, n_threads=n_threads, n_batch=n_batch,
                           kv_unified=True, n_outputs_max_per_seq=n_batch)
        self.n_cells = per_seq * int(n_seq_max)  # the unified cache's capacity, shared by all sequences
        self.n_seq_max = int(n_seq_max)
        self.n_batch = int(n_batch)
        self._with, self._without = KvStream(self.ctx, 0), KvStream(self.ctx, 1)  # the two prompts

    @classmethod
    def for_engine(cls, engine, **kw) -> "TeacherForcer":
        kw.setdefault("n_threads", engine.n_threads)
        return cls(engine.model, engine.prompter, **kw)

    def close(self) -> None:
        self.ctx.close()

    # -- tokens ---------------------------------------------------------------------------------------------
    def answer_tokens(self, text: str) -> list[int]:
        toks = self.model.tokenize(text.strip(), add_bos=False, special=False)
        if not toks:
            raise ValueError(f"answer {text!r} has no tokens")
        return toks

    # -- KV bookkeeping -------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self.ctx.clear()
        self._with.tokens.clear()
        self._without.tokens.clear()

    def _run(self, items: list[tuple[int, int, int, bool]]) -> list[np.ndarray]:
        """Decode (token, pos, seq, want_logits) items in batches of n_batch; copies of the wanted rows."""
        rows: list[np.ndarray] = []
        for start in range(0, len(items), self.n_batch):
            chunk = items[start:start + self.n_batch]
            idx = [self.ctx.add(t, p, s, w) for t, p, s, w in chunk]
            self.ctx.decode()
            rows.extend(self.ctx.logits(bi).copy() for bi, (_, _, _, w) in zip(idx, chunk) if w)
        return rows

    def _append(self, s: KvStream, toks) -> None:
        self._run([(t, len(s.tokens) + i, s.seq, False) for i, t in enumerate(toks)])
        s.tokens.extend(toks)

    def _load_prompts(self, pw: list[int], pn: list[int]) -> None:
        """Make seq 0 hold ``pw`` and seq 1 hold ``pn`` (both without their last token)."""
        w, n = self._with, self._without
        try:
            load_shared_prefix(w, n, pw, pn, self._append, keep_last=False)
            items = []
            for s, p in ((w, pw), (n, pn)):
                have = len(s.tokens)
                items += [(t, have + i, s.seq, False) for i, t in enumerate(p[have:])]
            self._run(items)
            w.tokens, n.tokens = list(pw), list(pn)
        except Exception:
            self._reset()
            raise

    # -- scoring --------------------------------------------------------------------------------------------
    def force(self, messages: Sequence[Message], instruction: str, answers: Sequence[str], *,
              placement: Placement = "user") -> list[ForcedAnswer]:
        """Both streams' logits at every token of every answer (see the module docstring)."""
        ta, tb = self.prompter.pair(messages, instruction, placement)
        toks = [self.answer_tokens(a) for a in answers]
        longest = max((len(t) for t in toks), default=0)
        for name, p in (("prompt with the instruction", ta), ("prompt", tb)):
            if len(p) + longest > self.n_cells // 2:
                raise PromptTooLongError(len(p) + longest, self.n_cells // 2, f"{name} plus its longest answer")
        self._load_prompts(ta[:-1], tb[:-1])
        base_cells = len(ta) + len(tb)  # an upper bound of the cells the two prompts hold
        results: list[ForcedAnswer] = []
        j = 0
        max_pairs = (self.n_seq_max - 2) // 2
        try:
            while j < len(toks):
                # as many answers as fit in the free sequences and in the cache
                group, cells = [], base_cells
                while j + len(group) < len(toks) and len(group) < max_pairs:
                    need = 2 * len(toks[j + len(group)])
                    if group and cells + need > self.n_cells:
                        break
                    group.append(j + len(group))
                    cells += need
                items = []
                for g, a in enumerate(group):
                    sw, sn = 2 + 2 * g, 3 + 2 * g
                    self.ctx.seq_cp_full(0, sw)
                    self.ctx.seq_cp_full(1, sn)
                    inp = [ta[-1]] + toks[a][:-1]
                    items += [(t, len(ta) - 1 + i, sw, True) for i, t in enumerate(inp)]
                    inp = [tb[-1]] + toks[a][:-1]
                    items += [(t, len(tb) - 1 + i, sn, True) for i, t in enumerate(inp)]
                rows = self._run(items)
                r = 0
                for a in group:
                    n = len(toks[a])
                    lw = np.stack(rows[r:r + n]); r += n
                    ln = np.stack(rows[r:r + n]); r += n
                    results.append(ForcedAnswer(answers[a], toks[a], lw, ln))
                for g in range(len(group)):
                    self.ctx.seq_rm(2 + 2 * g, -1, -1)
                    self.ctx.seq_rm(3 + 2 * g, -1, -1)
                j += len(group)
        except Exception:
            self._reset()
            raise
        return results
