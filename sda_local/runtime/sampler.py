"""One answer being sampled, step by step: its processor chain, its own random stream, its text so far.

The engine's decode loops hold one ``AnswerDraw`` per answer: one for a plain or an SDA answer, two when a turn's
base answer and aligned answer are decoded together (``Engine.generate_pair``).  ``draw`` turns one step's logits
into the next token's event; the loop decodes the token into the answer's streams and calls it again, until
``draw`` says the answer ended (an end-of-generation token) or ``ends`` does (``max_tokens``, a full context).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from .. import core
from ..core import SamplingParams
from ..errors import DecodeError
from .answer_record import AnswerRecord
from .logprobs import DecodeExtras, TokenLogprobs, step_logprobs
from .textstream import Utf8Stream


@dataclass
class TokenEvent:
    """One generated token.  ``text`` is UTF-8 safe (may be "" while a character is incomplete)."""

    index: int
    token_id: int
    text: str
    prob: float          # probability of the chosen token under the distribution it was sampled from
    temperature: float
    js: float | None     # None for plain generation (one stream)
    kind: str = "token"
    top: dict | None = None  # with ``inspect=k``: the step's top-k lists (``core.TopK.to_dict``), else None
    logprobs: TokenLogprobs | None = None  # with ``DecodeExtras.logprobs``: the step's log-probs (``logprobs``)


@dataclass
class Finished:
    """End of one generation, with its statistics."""

    text: str
    token_ids: list[int]
    finish_reason: str        # "stop" (end-of-generation token), "length" (max_tokens) or "context" (full)
    n_prompt_tokens: list[int]
    n_evaluated_prompt_tokens: int   # after KV reuse and prefix sharing
    prompt_seconds: float
    decode_seconds: float
    tail: str = ""            # text flushed at the end (an incomplete UTF-8 sequence), already in ``text``
    core_seconds: float = 0.0  # time spent in core (distribution + sampling), part of decode_seconds
    record: AnswerRecord | None = None  # plain answers asked with ``record=True``: prompt, tokens, log-probs
    kind: str = "finished"

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def tokens_per_second(self) -> float:
        return self.n_tokens / self.decode_seconds if self.decode_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "record"}
        d["tokens_per_second"] = self.tokens_per_second
        return d


def cached(f: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """``f`` with its results kept (a token's bytes, asked for again and again by the top lists)."""
    seen: dict[int, bytes] = {}

    def get(t: int) -> bytes:
        if t not in seen:
            seen[t] = f(t)
        return seen[t]
    return get


class AnswerDraw:
    """The sampling state of one answer (``model``: anything with ``is_eog`` and ``token_bytes``)."""

    def __init__(self, model, chain: core.ProcessorChain, p: SamplingParams, inspect: int = 0,
                 extras: DecodeExtras | None = None):
        self.model, self.chain, self.p, self.inspect, self.extras = model, chain, p, int(inspect), extras
        self.want_lp = extras is not None and extras.logprobs is not None
        self.rng = np.random.default_rng(p.seed)
        self.utf, self.out, self.reason = Utf8Stream(), [], "length"
        self.core_s = 0.0
        self.piece_bytes = cached(lambda t: model.token_bytes(t, special=True))

    def _piece(self, t: int) -> str:  # an inspector entry's text (a lone byte of a character shows as �)
        return self.piece_bytes(t).decode("utf-8", "replace")

    def draw(self, logits: Sequence[np.ndarray]) -> TokenEvent | None:
        """The next token's event from this step's logits (one array per stream), or None when the model ended
        the answer (``reason`` "stop")."""
        i = len(self.out)
        c0 = time.perf_counter()
        top = lps = None
        try:
            if self.inspect or self.want_lp:
                probs, state = self.chain.step(*logits, history=self.out)
                info = state.info()
                if self.inspect:
                    top = core.top_k_lists(state, probs, self.inspect).to_dict(self._piece)
            else:
                probs, info = self.chain.distribution(*logits, history=self.out)
        except ValueError as exc:
            raise DecodeError(f"step {i}: {exc} — the model produced invalid logits") from None
        tok = core.sample_top_p(probs, self.p.top_p, self.rng)
        self.core_s += time.perf_counter() - c0
        if self.model.is_eog(tok):
            self.reason = "stop"
            return None
        self.out.append(tok)
        tok_bytes = self.model.token_bytes(tok)
        if self.want_lp:
            lps = step_logprobs(state, tok, tok_bytes, self.extras, self.piece_bytes)
        return TokenEvent(i, tok, self.utf.feed(tok_bytes), float(probs[tok]), info.temperature, info.js, top=top,
                          logprobs=lps)

    def ends(self, streams, n_ctx: int) -> bool:
        """After a drawn token: True when the answer stops here (``max_tokens`` reached, or a stream's context
        full: ``reason`` "context"), before the token is decoded into its streams."""
        if len(self.out) >= self.p.max_tokens:
            return True
        if any(len(s.tokens) >= n_ctx for s in streams):
            self.reason = "context"
            return True
        return False

    def finished(self, n_prompt: list[int], evaluated: int, prompt_s: float, t_decode0: float) -> Finished:
        tail = self.utf.flush()
        return Finished(self.utf.text, self.out, self.reason, n_prompt, evaluated, prompt_s,
                        time.perf_counter() - t_decode0, tail, self.core_s)
