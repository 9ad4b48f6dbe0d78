"""Evaluators rate an answer 1–100 against a rubric; the score becomes SDA's λ (``sda_local.judges.decision``).

- ``LocalEvaluator``     (kind ``local``)  — a GGUF judge through llama.cpp (the chat model itself or another
  file), greedy and grammar-constrained, in its own context.
- ``GEvalEvaluator``     (``geval``)  — expected 1–10 rating from the digit tokens' probabilities (G-Eval).
- ``ReasonedEvaluator``  (``reason``) — a short greedy critique, then the same expected rating.
- ``YesNoEvaluator``     (``yesno``)  — 1 + 99·P(Yes) for "does the response meet the rubric?" (P(True)).
- ``SelfScoreEvaluator`` (``self``)   — no judge prompt: the answer's mean log-prob gap between SDA's two streams.
- ``OpenAIEvaluator``    (``openai``) — GPT-4.1 or any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server, …).
- ``FixedEvaluator``     (``fixed``)  — a score or λ given by the user; it sets λ without reading the answer.
- ``PresetLambdaEvaluator`` (``preset``) — the λ each preset carries, chosen on the dev splits.

Judges share ``Evaluator.score(query, response, criterion) -> Score`` (with the reply's warnings; ``value`` an
int, or a float for the probability-reading judges) and raise ``EvaluatorError`` on failure (the λ decision
turns that into a warning and the fallback λ).
"""
from .base import (
                   LAMBDA_OPTION,
                   SCORE_OPTION,
                   BaseAnswer,
                   Evaluator,
                   EvaluatorError,
                   FixedLambda,
                   Reply,
                   Score,
                   judge_messages,
                   parse_fields,
)
from .decision import (
                   LAMBDA_SOURCES,
                   LambdaDecision,
                   decide_lambda,
                   decide_without_answer,
)
from .factory import (
                   DEFAULT_EVALUATOR,
                   EVALUATOR_KINDS,
                   EVALUATOR_LABELS,
                   LOCAL_JUDGE_KINDS,
                   PAIRWISE_JUDGE_KINDS,
                   make_evaluator,
)
from .fixed import FixedEvaluator, PresetLambdaEvaluator
from .geval import GEvalEvaluator
from .local import LocalEvaluator
from .openai_judge import OpenAIEvaluator
from .reasoned import ReasonedEvaluator
from .selfscore import SelfScoreEvaluator
from .yesno import YesNoEvaluator

__all__ = ["BaseAnswer", "LambdaDecision", "LAMBDA_SOURCES", "decide_lambda", "decide_without_answer", "DEFAULT_EVALUATOR", "EVALUATOR_LABELS", "Evaluator", "EvaluatorError", "Score", "Reply", "FixedLambda", "FixedEvaluator", "PresetLambdaEvaluator", "LocalEvaluator",
           "GEvalEvaluator", "ReasonedEvaluator", "YesNoEvaluator", "SelfScoreEvaluator", "OpenAIEvaluator",
           "make_evaluator", "EVALUATOR_KINDS", "LOCAL_JUDGE_KINDS", "PAIRWISE_JUDGE_KINDS", "LAMBDA_OPTION", "SCORE_OPTION",
           "judge_messages", "parse_fields"]
