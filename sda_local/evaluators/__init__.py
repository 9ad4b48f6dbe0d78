"""Evaluators rate an answer 1–100 against a rubric; the score becomes SDA's λ (``sda_local.lambda_choice``).

- ``LocalEvaluator``  — a GGUF judge through llama.cpp (the chat model itself or another file), greedy and
  grammar-constrained, in its own context.
- ``OpenAIEvaluator`` — GPT-4.1 or any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server, …).
- ``FixedEvaluator``  — a score or λ given by the user; it sets λ without reading the answer (``fixed_lambda``).

Judges share ``Evaluator.score(query, response, criterion) -> Score`` (with the reply's warnings) and raise
``EvaluatorError`` on failure (the λ decision turns that into a warning and the fallback λ).
"""
from .base import (LAMBDA_OPTION, SCORE_OPTION, Evaluator, EvaluatorError, FixedLambda, Reply, Score, judge_messages,
                   parse_fields)
from .factory import EVALUATOR_KINDS, JUDGE_KINDS, make_evaluator
from .fixed import FixedEvaluator
from .local import LocalEvaluator
from .openai_judge import OpenAIEvaluator

__all__ = ["Evaluator", "EvaluatorError", "Score", "Reply", "FixedLambda", "FixedEvaluator", "LocalEvaluator",
           "OpenAIEvaluator", "make_evaluator", "EVALUATOR_KINDS", "JUDGE_KINDS", "LAMBDA_OPTION", "SCORE_OPTION",
           "judge_messages", "parse_fields"]
