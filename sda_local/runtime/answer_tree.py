"""The answers of one question as a prefix tree of tokens: what teacher forcing must feed, once per shared prefix.

Teacher forcing feeds, for an answer y_1 … y_n, the prompt's last token and then y_1 … y_{n−1}; the logits after
each fed token predict the next answer token.  Reference answers often start alike ("Matadors wave red capes
because …" five times), and a prefix two answers share gives the same logits in both, so it is fed once.

A node is one proper prefix y_1 … y_d (depth d; the empty prefix, depth 0, is a *root*, fed the prompt's last
token, which the caller supplies); with ``share=True`` each distinct prefix is one node (one root), with
``share=False`` every answer has nodes of its own, as in one-answer-at-a-time forcing.  An *edge* is one (node,
next token) pair: the log-prob the scorer needs.  Pure Python, no llama.cpp.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass
class AnswerTree:
    """Proper prefixes of some token lists (see the module docstring).  Nodes are in creation order, so each
    answer's nodes come in increasing depth: the order a llama.cpp batch needs."""

    tokens: list[int] = field(default_factory=list)           # fed token of each node (-1 at a root: the caller's)
    depth: list[int] = field(default_factory=list)
    members: list[list[int]] = field(default_factory=list)    # the answers whose path passes through each node
    paths: list[list[int]] = field(default_factory=list)      # per answer: the node that predicts each of its tokens
    edge_node: list[int] = field(default_factory=list)        # per edge: its node
    edge_target: list[int] = field(default_factory=list)      # per edge: the token it predicts
    answer_edges: list[np.ndarray] = field(default_factory=list)  # per answer: the edge of each of its tokens

    def _new_node(self, token: int, depth: int) -> int:
        self.tokens.append(token)
        self.depth.append(depth)
        self.members.append([])
        return len(self.tokens) - 1

    @classmethod
    def build(cls, answers: Sequence[Sequence[int]], *, share: bool = True) -> "AnswerTree":
        tree = cls()
        children: dict[tuple[int, int], int] = {}  # (node, token) → child node, when sharing
        root = tree._new_node(-1, 0) if share else -1
        edges: dict[tuple[int, int], int] = {}
        for a, toks in enumerate(answers):
            if not toks:
                raise ValueError(f"answer {a} has no tokens")
            node = root if share else tree._new_node(-1, 0)
            path = [node]
            tree.members[node].append(a)
            for t in toks[:-1]:
                nxt = children.get((node, int(t))) if share else None
                if nxt is None:
                    nxt = tree._new_node(int(t), tree.depth[node] + 1)
                    if share:
                        children[(node, int(t))] = nxt
                node = nxt
                path.append(node)
                tree.members[node].append(a)
            tree.paths.append(path)
            ids = []
            for n, y in zip(path, toks):
                e = edges.setdefault((n, int(y)), len(edges))
                if e == len(tree.edge_node):
                    tree.edge_node.append(n)
                    tree.edge_target.append(int(y))
                ids.append(e)
            tree.answer_edges.append(np.asarray(ids, dtype=np.int64))
        return tree

    @property
    def n_nodes(self) -> int:
        return len(self.tokens)

    def feed_order(self) -> list[tuple[int, int]]:
        """(stream, node) in the order to feed them: answer by answer, its "with" stream (0) then its "without"
        stream (1), each node the first time a path reaches it — without sharing, exactly the order of feeding
        the answers one after the other."""
        out, seen = [], [set(), set()]
        for path in self.paths:
            for stream in (0, 1):
                for n in path:
                    if n not in seen[stream]:
                        seen[stream].add(n)
                        out.append((stream, n))
        return out
