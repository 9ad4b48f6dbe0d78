"""A GGUF judge through llama.cpp: greedy decoding constrained by a GBNF grammar.

Why a grammar rather than the expected value over number tokens: tokenizers split numbers differently
("85" is one token in some vocabularies and two in others, "100" often two), so an expectation over "number
tokens" is only well defined for some models.  A grammar makes any model's reply a well-formed
``{"score": N}`` with 1 ≤ N ≤ 100, by construction, and the reply stays readable and auditable.

The judge has its own llama.cpp context (and may be another GGUF), so it never touches the chat engine's KV
caches (``judge_context.JudgeContext``, shared with the probability-reading judges).  Consecutive calls reuse
the judge prompt's shared prefix (system text + rubric).
"""
from __future__ import annotations

import os

from ..errors import SdaError
from ..runtime.backend import GrammarGreedySampler, LoadedModel
from .base import Evaluator, EvaluatorError, Fields, Reply, parse_fields
from .judge_context import JudgeContext

MAX_REPLY_TOKENS = 24


def int_range_rule(lo: int, hi: int) -> str:
    """A GBNF alternative list for every integer in [lo, hi] (longest first, so "100" beats "10")."""
    nums = sorted(range(lo, hi + 1), key=lambda n: (-len(str(n)), n))
    return " | ".join(f'"{n}"' for n in nums)


def reply_prefix(fields: Fields) -> str:
    first = next(iter(fields))
    return '{"' + first + '": '


def reply_grammar(fields: Fields) -> str:
    """Grammar for the rest of the reply after ``reply_prefix``: the first number, then the other fields."""
    names = list(fields)
    rules = [f"n{i} ::= {int_range_rule(*fields[k])}" for i, k in enumerate(names)]
    tail = "".join(f' ", \\"{k}\\": " n{i}' for i, k in enumerate(names) if i > 0)
    return "\n".join([f'root ::= n0{tail} "}}"'] + rules)


class LocalEvaluator(Evaluator):
    """Judge with a local GGUF model (default: the embedded SmolLM2; pass the chat engine's ``model`` to share it)."""

    def __init__(self, model: LoadedModel | str | os.PathLike | None = None, *, n_ctx: int = 2048,
                 n_threads: int | None = None, label: str | None = None):
        self.judge = JudgeContext(model, n_ctx=n_ctx, n_threads=n_threads, label=label)
        self.name = f"local:{self.judge.label}"
        self.model, self.prompter = self.judge.model, self.judge.prompter
        self._ctx, self._stream, self._lock = self.judge.ctx, self.judge.stream, self.judge.lock

    @property
    def n_ctx(self) -> int:
        return self.judge.n_ctx

    def _fit(self, messages: list[dict], budget: int) -> tuple[list[int], list[str]]:
        """Tokens of the judge prompt; the user turn's response part is cut to fit the context if needed."""
        return self.judge.fit(messages, budget)

    def ask(self, messages: list[dict], fields: Fields) -> Reply:
        prefix = reply_prefix(fields)
        budget = self.n_ctx - MAX_REPLY_TOKENS - len(self.model.tokenize(prefix, special=False)) - 2
        with self._lock:
            toks, warnings = self._fit(messages, budget)
            toks = toks + self.model.tokenize(prefix, special=False)
            sampler = GrammarGreedySampler(self.model, reply_grammar(fields))
            try:
                out = self._run(toks, sampler)
            except SdaError as exc:
                raise EvaluatorError(f"the local judge failed: {exc}") from None
            finally:
                sampler.close()
        raw = prefix + out
        return Reply(parse_fields(raw, fields), raw, warnings)

    def _run(self, toks: list[int], sampler: GrammarGreedySampler) -> str:
        ctx, stream = self._ctx, self._stream
        n = stream.reuse(toks, len(toks) - 1)
        last = None
        try:
            for i in range(n, len(toks)):
                if ctx.batch_free == 0:
                    ctx.decode()
                last = ctx.add(toks[i], i, 0, i == len(toks) - 1)
            ctx.decode()
            stream.tokens = list(toks)
            pieces = []
            pos = len(toks)
            for _ in range(MAX_REPLY_TOKENS):
                tok = sampler.sample(ctx, last)
                if self.model.is_eog(tok):
                    break
                pieces.append(self.model.token_bytes(tok))
                text = b"".join(pieces).decode("utf-8", errors="replace")
                if text.endswith("}"):
                    break
                last = ctx.add(tok, pos, 0, True)
                ctx.decode()
                stream.tokens.append(tok)
                pos += 1
        except Exception:
            stream.reset()
            raise
        return b"".join(pieces).decode("utf-8", errors="replace")

    def close(self) -> None:
        self.judge.close()
