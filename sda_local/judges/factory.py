"""Build an evaluator from a kind name and options (used by the CLI, the evaluations and the chat UI)."""
from __future__ import annotations

from .base import Evaluator, EvaluatorError
from .fixed import FixedEvaluator, PresetLambdaEvaluator
from .geval import GEvalEvaluator
from .local import LocalEvaluator
from .openai_judge import OpenAIEvaluator
from .reasoned import ReasonedEvaluator
from .selfscore import SelfScoreEvaluator
from .yesno import YesNoEvaluator

# The local judges: a GGUF model run through llama.cpp (the chat model or another file), by kind: "local" scores
# under a grammar, the others read probabilities (see each module).
_LOCAL_JUDGE_CLASSES = {"local": LocalEvaluator, "geval": GEvalEvaluator, "reason": ReasonedEvaluator,
                        "yesno": YesNoEvaluator, "self": SelfScoreEvaluator}
LOCAL_JUDGE_KINDS = tuple(_LOCAL_JUDGE_CLASSES)
# Every evaluator kind: where λ can come from (``JudgeSpec.kind``, ``--evaluator``, the server's ``sda.evaluator``).
EVALUATOR_KINDS = (*LOCAL_JUDGE_KINDS, "openai", "fixed", "preset")
# The kinds that answer a free-form judge prompt (a pairwise judge must: ``eval winrate --judge``).
PAIRWISE_JUDGE_KINDS = ("local", "openai")
# Where λ comes from when nothing is said (CLI, chat, server).  Chosen by measurement: see README, "Evaluators".
DEFAULT_EVALUATOR = "preset"
# Each kind in words, for people (the chat's radio buttons).
EVALUATOR_LABELS = {"preset": "λ per preset (no judge)", "local": "Local judge: grammar score",
                    "geval": "Local judge: expected rating (G-Eval)", "reason": "Local judge: critique, then rating",
                    "yesno": "Local judge: P(yes)", "self": "Self-score (the two streams, no judge prompt)",
                    "openai": "OpenAI-compatible", "fixed": "Fixed score / λ"}


def make_evaluator(kind: str, *, engine=None, judge_model: str | None = None, openai_model: str | None = None,
                   openai_base_url: str | None = None, openai_api_key: str | None = None, timeout: float = 30.0,
                   max_retries: int = 2, score: float | None = None, lam: float | None = None,
                   n_ctx: int | None = None, n_threads: int | None = None, self_contrast: str = "auto") -> Evaluator:
    """A local judge (``LOCAL_JUDGE_KINDS``) is ``judge_model`` (id/file/path) or, by default, the chat ``engine``'s
    own already-loaded model (anything with ``model``, ``name`` and ``prompter``), or the default model.
    ``self_contrast``: the self-score's "without" stream (``SelfScoreEvaluator``'s ``contrast``)."""
    if kind in _LOCAL_JUDGE_CLASSES:
        kw = {"n_threads": n_threads, **({} if n_ctx is None else {"n_ctx": n_ctx})}
        if kind == "self":
            kw["contrast"] = self_contrast
        if judge_model:
            return _LOCAL_JUDGE_CLASSES[kind](judge_model, **kw)
        if engine is None:
            return _LOCAL_JUDGE_CLASSES[kind](None, **kw)
        if kind == "self":  # the engine's own prompter: the streams are rendered exactly as the chat renders them
            kw["prompter"] = engine.prompter
        return _LOCAL_JUDGE_CLASSES[kind](engine.model, label=engine.name, **kw)
    if kind == "openai":
        return OpenAIEvaluator(openai_model, base_url=openai_base_url, api_key=openai_api_key, timeout=timeout,
                               max_retries=max_retries)
    if kind == "fixed":
        return FixedEvaluator(score=score, lam=lam)
    if kind == "preset":
        return PresetLambdaEvaluator()
    raise EvaluatorError(f"unknown evaluator {kind!r}; choose one of {', '.join(EVALUATOR_KINDS)}")
