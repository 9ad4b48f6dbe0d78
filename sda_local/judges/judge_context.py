"""A local judge's own llama.cpp context: evaluate a judge prompt and read the next token's log-probabilities.

Shared by the local judges (``local``, ``geval``, ``reason``, ``yesno``).  The context is the judge's own, over
either a model it loads or one it borrows (the chat engine's already-loaded weights: never a second copy), so it
never touches the chat engine's KV caches.  Its one sequence remembers what it holds (``kvprefix.KvStream``): a
new prompt re-evaluates only from the first token that differs, so the judge prompt's shared part (system
text, rubric, and the request when the same request is judged twice) is evaluated once.

Callers hold ``lock`` around a whole score (prompt, extra tokens, reading), which makes a judge thread-safe.
"""
from __future__ import annotations

import os
import threading
from typing import Sequence

import numpy as np

from ..core.distributions import log_softmax32
from ..errors import SdaError
from ..runtime.backend import Context, LoadedModel
from ..runtime.kvprefix import KvStream
from ..runtime.models import resolve_model
from ..runtime.prompts import ChatPrompter
from .base import EvaluatorError

RESPONSE_START, RESPONSE_END = "[Assistant response]\n", "\n[End of response]"
MIN_KEPT_TOKENS = 16  # a response cut shorter than this is not worth judging: the request is too long


def open_model(model: LoadedModel | str | os.PathLike | None, label: str | None) -> tuple[LoadedModel, bool, str]:
    """(model, owned, name): a ``LoadedModel`` is borrowed; an id, file or path (None = the default) is loaded."""
    if isinstance(model, LoadedModel):
        return model, False, label or model.path.name
    choice = resolve_model(model)
    return LoadedModel(choice.path), True, label or choice.name


class JudgeContext:
    """One llama.cpp context (one sequence) for a judge, over a borrowed or owned model."""

    def __init__(self, model: LoadedModel | str | os.PathLike | None = None, *, n_ctx: int = 2048,
                 n_threads: int | None = None, label: str | None = None):
        self.model, self._owns, self.label = open_model(model, label)
        n_ctx = min(n_ctx, self.model.n_ctx_train) if self.model.n_ctx_train > 0 else n_ctx
        try:
            self.ctx = Context(self.model, n_ctx, n_threads=n_threads)
        except SdaError:
            self._close_model()
            raise
        self.prompter = ChatPrompter.for_model(self.model)
        self.stream = KvStream(self.ctx, 0)  # what the judge's KV cache holds, reused across calls
        self.lock = threading.Lock()

    @property
    def n_ctx(self) -> int:
        return self.ctx.n_ctx_seq

    def tokenize(self, text: str) -> list[int]:
        """Reply text as the model writes it: no BOS, special tokens not parsed."""
        return self.model.tokenize(text, add_bos=False, special=False)

    # -- the prompt ------------------------------------------------------------------------------------------
    def fit(self, messages: list[dict], budget: int) -> tuple[list[int], list[str]]:
        """Tokens of the judge prompt, at most ``budget``; the user turn's response part (between
        ``RESPONSE_START`` and ``RESPONSE_END``) is cut to fit if needed, with a warning."""
        toks = self.prompter.tokens(messages)
        if len(toks) <= budget:
            return toks, []
        user = messages[-1]["content"]
        start, end = user.find(RESPONSE_START), user.find(RESPONSE_END)
        if start < 0 or end < 0:
            raise EvaluatorError(f"the judge prompt is {len(toks)} tokens; the judge's context holds {budget}")
        start += len(RESPONSE_START)
        body_toks = self.model.tokenize(user[start:end], special=False)
        keep = len(body_toks) - (len(toks) - budget) - 8
        if keep < MIN_KEPT_TOKENS:
            raise EvaluatorError(f"the request alone is too long for the judge's context ({self.n_ctx} tokens)")
        cut = self.model.detokenize(body_toks[:keep]) + " […]"
        msgs = [dict(m) for m in messages]
        msgs[-1]["content"] = user[:start] + cut + user[end:]
        toks = self.prompter.tokens(msgs)
        warn = f"the response was cut from {len(body_toks)} to {keep} tokens to fit the judge's context"
        return toks, [warn]

    # -- decoding --------------------------------------------------------------------------------------------
    def feed(self, toks: Sequence[int]) -> int:
        """Make the sequence hold ``toks`` (reusing what it holds), evaluating the last token with logits;
        returns that token's batch index.  Call with ``lock`` held; on failure the cache is forgotten."""
        ctx, stream = self.ctx, self.stream
        if not toks:
            raise EvaluatorError("internal: empty judge prompt")
        if len(toks) > self.n_ctx:
            raise EvaluatorError(f"the judge prompt is {len(toks)} tokens; the judge's context holds {self.n_ctx}")
        try:
            n = stream.reuse(toks, len(toks) - 1)
            last = -1
            for i in range(n, len(toks)):
                if ctx.batch_free == 0:
                    ctx.decode()
                last = ctx.add(toks[i], i, 0, i == len(toks) - 1)
            ctx.decode()
        except SdaError as exc:
            stream.reset()
            raise EvaluatorError(f"the local judge failed: {exc}") from None
        except Exception:
            stream.reset()
            raise
        stream.tokens = list(toks)
        return last

    def logprobs(self, toks: Sequence[int]) -> np.ndarray:
        """log-probabilities (float32, one vocabulary row) of the token after ``toks``."""
        return log_softmax32(self.ctx.logits(self.feed(toks))).copy()

    def greedy(self, toks: Sequence[int], max_tokens: int, stop: str = "\n") -> list[int]:
        """Greedy continuation of ``toks``: at most ``max_tokens`` tokens, ending after the first token whose
        text contains ``stop``, or before an end-of-generation token (not included)."""
        toks = list(toks)
        out: list[int] = []
        for _ in range(max_tokens):
            tok = int(np.argmax(self.ctx.logits(self.feed(toks + out))))
            if self.model.is_eog(tok):
                break
            out.append(tok)
            if stop and stop in self.model.token_bytes(tok).decode("utf-8", errors="replace"):
                break
        return out

    def close(self) -> None:
        self.ctx.close()
        self._close_model()

    def _close_model(self) -> None:
        if self._owns:
            self.model.close()
