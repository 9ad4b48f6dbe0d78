"""Teacher forcing: both streams' logits at every position of given reference answers, in few decodes.

For a question, the "with" prompt (instruction added) and the "without" prompt are rendered with the
model's chat template exactly as ``Engine.generate`` renders them, ending with the assistant header, and a
reference answer is the assistant's reply that follows.  The scorer needs, for every answer token y_i, each
stream's logits after prompt + y_1 … y_{i-1}.

How it is done (one dedicated llama.cpp context over the engine's already-loaded weights, unified KV cache,
many sequences, tokens that belong to several sequences at once):

1. seq 0 holds the "with" prompt minus its last token, seq 1 the "without" prompt minus its last token, kept
   from the previous question up to the first differing token (``sda_local.runtime.kvprefix``).
2. Each answer gets two work sequences that start as copies of seq 0 / seq 1 (in a unified cache a copy
   shares the cells: no compute, no memory).  The answers form a prefix tree (``answer_tree``): each distinct
   prefix is fed once per stream, as one token of every work sequence whose answer starts with it, with logits
   requested.  The prompts are never evaluated twice, and an answer prefix once per stream.
   llama.cpp computes every batch in micro-batches of at most ``UBATCH_ROWS`` (63) tokens.  From 64 query rows
   up, its CPU flash attention switches to a tiled kernel (another summation order, so other rounding), and one
   large batch gives numbers that depend on how many answers share it and on which prompt prefix was cached
   (up to about one logit; 0.05 MC2 on one question of SmolLM2).  Below 64 rows it uses its row-by-row kernel,
   whatever the layout.  On SmolLM2 the logits are then bit for bit those of decoding each answer alone in a
   fresh one-sequence context, shared prefixes or not, in any question order (tests/test_forcing_exactness.py).
   Qwen's Q4_K/Q6_K matmuls still round by batch size in the last bits (docs/evaluation.md has the numbers).
3. The work sequences are removed (``seq_rm``) before the next round or question.

Answers are tokenized on their own (no special tokens parsed, no BOS), as the model would emit them after
the assistant header; the end-of-turn token is not scored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import PromptTooLongError
from .answer_tree import AnswerTree
from .backend import Context, LoadedModel
from .kvprefix import KvStream, load_shared_prefix
from .prompts import ChatPrompter, Message, Placement

UBATCH_ROWS = 63  # tokens llama.cpp computes at once: below its 64-row tiled flash-attention kernel


@dataclass
class ForcedAnswer:
    """One answer's targets and, per position, the logits of each stream that predict them (float32)."""

    text: str
    targets: list[int]
    logits_with: np.ndarray     # (len(targets), n_vocab)
    logits_without: np.ndarray  # (len(targets), n_vocab)


@dataclass
class ForcedTree:
    """All answers of one question, each distinct prefix once: row r of ``logits_with`` / ``logits_without`` is a
    node of ``tree`` (rows of later rounds follow those of earlier ones; ``row_of`` maps).  Edge e (row
    ``edge_rows[e]``, token ``edge_targets[e]``) is one log-prob to score; answer a's tokens are the edges
    ``answer_edges[a]``."""

    answers: list[str]
    targets: list[list[int]]
    logits_with: np.ndarray     # (n_rows, n_vocab) float32
    logits_without: np.ndarray  # (n_rows, n_vocab) float32
    edge_rows: np.ndarray       # (n_edges,) int64
    edge_targets: np.ndarray    # (n_edges,) int64
    answer_edges: list[np.ndarray]

    def answer_rows(self, a: int) -> np.ndarray:
        return self.edge_rows[self.answer_edges[a]]

    def forced_answer(self, a: int) -> ForcedAnswer:
        rows = self.answer_rows(a)
        return ForcedAnswer(self.answers[a], self.targets[a], self.logits_with[rows], self.logits_without[rows])

    @classmethod
    def from_answers(cls, forced: Sequence[ForcedAnswer]) -> "ForcedTree":
        """The same shape from per-answer logits (one row per token, nothing shared): for forcers that only have
        ``force``."""
        sizes = np.cumsum([0] + [len(f.targets) for f in forced])
        return cls([f.text for f in forced], [list(f.targets) for f in forced],
                   np.concatenate([f.logits_with for f in forced]), np.concatenate([f.logits_without for f in forced]),
                   np.arange(sizes[-1], dtype=np.int64),
                   np.asarray([t for f in forced for t in f.targets], dtype=np.int64),
                   [np.arange(a, b, dtype=np.int64) for a, b in zip(sizes[:-1], sizes[1:])])


class TeacherForcer:
    """Teacher-forces reference answers through the "with" and "without" streams of one model.

    >>> tf = TeacherForcer(engine.model, engine.prompter)
    >>> fa = tf.force([{"role": "user", "content": q}], instruction, ["Paris", "Lyon"])
    """

    def __init__(self, model: LoadedModel, prompter: ChatPrompter, *, n_ctx: int = 4096, n_seq_max: int = 34,
                 n_batch: int = 512, n_threads: int | None = None, share_prefixes: bool = True,
                 n_ubatch: int | None = None):
        """``share_prefixes``: feed each distinct answer prefix once (the default; fewer tokens to decode) or, when
        False, every answer on its own.  On models whose matmuls do not round by batch size (SmolLM2) both give
        the same logits bit for bit (see the module docstring); the per-answer layout is kept to check that.
        ``n_ubatch``: tokens llama.cpp computes at once (default ``UBATCH_ROWS``, 63); 512 is ~15% faster on Qwen,
        where 63 does not make the numbers exact either, but lets the batch layout move SmolLM2's numbers too."""
        if n_seq_max < 4:
            raise ValueError("n_seq_max must be ≥ 4 (two prompt sequences + one answer pair)")
        if n_ubatch is not None and int(n_ubatch) < 1:
            raise ValueError("n_ubatch must be ≥ 1")
        self.model = model
        self.prompter = prompter
        self.n_ubatch = min(int(n_ubatch or UBATCH_ROWS), int(n_batch))
        per_seq = -(-int(n_ctx) // int(n_seq_max))
        self.ctx = Context(model, per_seq, n_seq_max=n_seq_max, n_threads=n_threads, n_batch=n_batch,
                           kv_unified=True, n_outputs_max_per_seq=n_batch, n_ubatch=self.n_ubatch)
        self.n_cells = per_seq * int(n_seq_max)  # the unified cache's capacity, shared by all sequences
        self.n_seq_max = int(n_seq_max)
        self.n_batch = int(n_batch)
        self.share_prefixes = bool(share_prefixes)
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

    def _run(self, items: list[tuple[int, int, list[int], int]], out: tuple[np.ndarray, np.ndarray]) -> None:
        """Decode (token, pos, seqs, where) items in order, n_batch per ``llama_decode``; where ≥ 0: copy the
        item's logits to row ``where >> 1`` of ``out[where & 1]``."""
        for start in range(0, len(items), self.n_batch):
            chunk = items[start:start + self.n_batch]
            idx = [self.ctx.add_seqs(t, p, s, w >= 0) for t, p, s, w in chunk]
            self.ctx.decode()
            for bi, (_, _, _, w) in zip(idx, chunk):
                if w >= 0:
                    out[w & 1][w >> 1] = self.ctx.logits(bi)

    def _append(self, s: KvStream, toks) -> None:
        self._run([(t, len(s.tokens) + i, [s.seq], -1) for i, t in enumerate(toks)], ())
        s.tokens.extend(toks)

    def _load_prompts(self, pw: list[int], pn: list[int]) -> None:
        """Make seq 0 hold ``pw`` and seq 1 hold ``pn`` (both without their last token): the shared prefix in one
        decode, the rest of both in another, as a prompt always was (the logits of the answers depend, in the last
        bits and beyond, on how llama.cpp's flash attention batched the prompt)."""
        w, n = self._with, self._without
        load_shared_prefix(w, n, pw, pn, self._append, keep_last=False)
        items = []
        for s, p in ((w, pw), (n, pn)):
            have = len(s.tokens)
            items += [(t, have + i, [s.seq], -1) for i, t in enumerate(p[have:])]
        self._run(items, ())
        w.tokens, n.tokens = list(pw), list(pn)

    def _tree_items(self, tree: AnswerTree, ta: list[int], tb: list[int], first_row: int) -> list:
        """Every node of ``tree`` in both streams (``AnswerTree.feed_order``), answer g's work sequences being
        2 + 2g / 3 + 2g; node j's logits go to row ``first_row + j``."""
        items = []
        for stream, j in tree.feed_order():
            prompt = tb if stream else ta
            tok = prompt[-1] if tree.tokens[j] < 0 else tree.tokens[j]
            items.append((tok, len(prompt) - 1 + tree.depth[j], [2 + 2 * g + stream for g in tree.members[j]],
                          ((first_row + j) << 1) | stream))
        return items

    def _rounds(self, toks: list[list[int]], base_cells: int) -> list[list[int]]:
        """The answers of each round: as many as fit in the free sequences and in the cache."""
        max_pairs = (self.n_seq_max - 2) // 2
        rounds, j = [], 0
        while j < len(toks):
            group, cells = [], base_cells
            while j + len(group) < len(toks) and len(group) < max_pairs:
                need = 2 * len(toks[j + len(group)])
                if group and cells + need > self.n_cells:
                    break
                group.append(j + len(group))
                cells += need
            rounds.append(group)
            j += len(group)
        return rounds

    # -- scoring --------------------------------------------------------------------------------------------
    def force_tree(self, messages: Sequence[Message], instruction: str, answers: Sequence[str], *,
                   placement: Placement = "user", contrast: str = "auto", opposite: str = "") -> ForcedTree:
        """Both streams' logits at every distinct prefix of the answers (see the module docstring); the
        "without" stream gets ``contrast``'s line (``runtime.prompts.negative_instruction``)."""
        ta, tb = self.prompter.pair(messages, instruction, placement, contrast, opposite)
        toks = [self.answer_tokens(a) for a in answers]
        longest = max((len(t) for t in toks), default=0)
        for name, p in (("prompt with the instruction", ta), ("prompt", tb)):
            if len(p) + longest > self.n_cells // 2:
                raise PromptTooLongError(len(p) + longest, self.n_cells // 2, f"{name} plus its longest answer")
        if not toks:
            empty = np.empty(0, dtype=np.int64)
            return ForcedTree([], [], *(np.empty((0, self.model.n_vocab), np.float32),) * 2, empty, empty, [])
        rounds = self._rounds(toks, len(ta) + len(tb))
        trees = [AnswerTree.build([toks[a] for a in group], share=self.share_prefixes) for group in rounds]
        n_rows = sum(t.n_nodes for t in trees)
        out = (np.empty((n_rows, self.model.n_vocab), np.float32), np.empty((n_rows, self.model.n_vocab), np.float32))
        edge_rows, edge_targets, answer_edges = [], [], [None] * len(toks)
        row = n_edges = 0
        try:
            self._load_prompts(ta[:-1], tb[:-1])
            for r, (group, tree) in enumerate(zip(rounds, trees)):
                for g in range(len(group)):
                    self.ctx.seq_cp_full(0, 2 + 2 * g)
                    self.ctx.seq_cp_full(1, 3 + 2 * g)
                self._run(self._tree_items(tree, ta, tb, row), out)
                for g in range(len(group)):
                    self.ctx.seq_rm(2 + 2 * g, -1, -1)
                    self.ctx.seq_rm(3 + 2 * g, -1, -1)
                edge_rows.append(np.asarray(tree.edge_node, dtype=np.int64) + row)
                edge_targets.append(np.asarray(tree.edge_target, dtype=np.int64))
                for g, a in enumerate(group):
                    answer_edges[a] = tree.answer_edges[g] + n_edges
                row += tree.n_nodes
                n_edges += len(tree.edge_node)
        except Exception:
            self._reset()
            raise
        return ForcedTree(list(answers), toks, out[0], out[1], np.concatenate(edge_rows),
                          np.concatenate(edge_targets), answer_edges)

    def force(self, messages: Sequence[Message], instruction: str, answers: Sequence[str], *,
              placement: Placement = "user", contrast: str = "auto", opposite: str = "") -> list[ForcedAnswer]:
        """Both streams' logits at every token of every answer (see the module docstring)."""
        tree = self.force_tree(messages, instruction, answers, placement=placement, contrast=contrast,
                               opposite=opposite)
        return [tree.forced_answer(a) for a in range(len(answers))]
