"""Build an evaluator from a kind name and options (used by the CLI, the evaluations and the chat UI)."""
from __future__ import annotations

from .base import Evaluator, EvaluatorError
from .fixed import FixedEvaluator
from .local import LocalEvaluator
from .openai_judge import OpenAIEvaluator

EVALUATOR_KINDS = ("local", "openai", "fixed")
JUDGE_KINDS = ("local", "openai")  # the kinds that read an answer (a pairwise judge must)


def make_evaluator(kind: str, *, engine=None, judge_model: str | None = None, openai_model: str | None = None,
                   openai_base_url: str | None = None, openai_api_key: str | None = None, timeout: float = 30.0,
                   max_retries: int = 2, score: float | None = None, lam: float | None = None) -> Evaluator:
    """``local``: judge = ``judge_model`` (id/file/path) or, by default, the chat ``engine``'s own model."""
    if kind == "local":
        if judge_model:
            return LocalEvaluator(judge_model)
        if engine is not None:
            return LocalEvaluator(engine.model, label=engine.name)
        return LocalEvaluator(None)
    if kind == "openai":
        return OpenAIEvaluator(openai_model, base_url=openai_base_url, api_key=openai_api_key, timeout=timeout,
                               max_retries=max_retries)
    if kind == "fixed":
        return FixedEvaluator(score=score, lam=lam)
    raise EvaluatorError(f"unknown evaluator {kind!r}; choose one of {', '.join(EVALUATOR_KINDS)}")
