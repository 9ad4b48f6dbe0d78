"""Where a request's λ comes from: the evaluator it names (or the server's default λ source), built once per kind.

Judges that hold a model (the local ones) or a connection (OpenAI-compatible) are kept between requests; they
keep no conversation.  A judge is only ever called from inside the generation slot, so one runs at a time.
``decide`` never raises: an evaluator that cannot be built or fails becomes the fallback λ with a warning.
"""
from __future__ import annotations

import dataclasses
import time

from ..errors import SdaError
from ..judges import DEFAULT_EVALUATOR, Evaluator, make_evaluator
from ..judges.decision import LambdaDecision, decide_lambda, decide_without_answer
from .request import LambdaSource, SdaPlan

NO_JUDGE = ("fixed", "preset")   # kinds that set λ without reading the base answer
MAX_CACHED = 8


class LambdaSources:
    """``default``: the server's evaluator options (``cli.options.EvaluatorOptions``: ``effective_kind``,
    ``build(engine)``, ``build_judge(kind, engine)``), or None for ``DEFAULT_EVALUATOR`` on the served model."""

    def __init__(self, engine, default=None):
        self.engine = engine
        self.default = default
        self._cache: dict[tuple, Evaluator] = {}

    def kind(self, src: LambdaSource | None) -> str:
        if src is not None:
            return src.kind
        return self.default.effective_kind if self.default is not None else DEFAULT_EVALUATOR

    def needs_base(self, src: LambdaSource | None) -> bool:
        return self.kind(src) not in NO_JUDGE

    def evaluator(self, src: LambdaSource | None) -> Evaluator:
        if src is not None and src.kind == "fixed":
            return make_evaluator("fixed", lam=src.lam, score=src.score)
        key = ("default",) if src is None else (src.kind, src.openai_model)
        if key not in self._cache:
            if len(self._cache) >= MAX_CACHED:  # requests may name many OpenAI models: keep a few
                self._cache.pop(next(iter(self._cache))).close()
            self._cache[key] = self._build(src)
        return self._cache[key]

    def _build(self, src: LambdaSource | None) -> Evaluator:
        opts = self.default
        if src is None:
            if opts is None:
                return make_evaluator(DEFAULT_EVALUATOR, engine=self.engine)
            return opts.build(self.engine)
        if opts is None:
            return make_evaluator(src.kind, engine=self.engine, openai_model=src.openai_model)
        if src.openai_model:
            opts = dataclasses.replace(opts, openai_model=src.openai_model)
        return opts.build_judge(src.kind, self.engine)

    def fixed_decision(self, src: LambdaSource | None, plan: SdaPlan) -> LambdaDecision | None:
        """The decision when λ needs no base answer; None when a judge must read one."""
        if self.needs_base(src):
            return None
        return self.decide(src, plan, "", "")

    def decide(self, src: LambdaSource | None, plan: SdaPlan, query: str, base: str) -> LambdaDecision:
        t0 = time.perf_counter()
        try:
            ev = self.evaluator(src)
            fixed = decide_without_answer(ev, plan.preset, plan.mapping)
            if fixed is not None:
                return fixed
            return decide_lambda(ev, query, base, plan.preset, plan.mapping, plan.fallback_lam)
        except Exception as exc:  # an evaluator must never fail the request: fallback λ, and say why
            what = str(exc) if isinstance(exc, SdaError) else f"unexpected {type(exc).__name__}"  # no secrets
            msg = (f"evaluator {self.kind(src)} unavailable: {what}. "
                   f"Using the fallback λ = {plan.fallback_lam:g}.")
            return LambdaDecision(plan.fallback_lam, "fallback", None, (msg,), time.perf_counter() - t0)

    def name(self, src: LambdaSource | None) -> str:
        try:
            return self.evaluator(src).name
        except Exception:
            return self.kind(src)

    def close(self) -> None:
        for ev in self._cache.values():
            ev.close()
        self._cache.clear()
