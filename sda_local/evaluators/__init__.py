"""Evaluators rate an answer 1–100 against a rubric; the score becomes SDA's λ.

- ``LocalEvaluator``  — a GGUF judge through llama.cpp (the chat model itself or another file), greedy and
  grammar-constrained, in its own context.
- ``OpenAIEvaluator`` — GPT-4.1 or any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server, …).
- ``FixedEvaluator``  — a score or λ given by the user.

All share ``Evaluator.score(query, response, criterion) -> Score`` and raise ``EvaluatorError`` on failure
(the turn pipeline turns that into a warning and a fallback λ).
"""
from .base import Evaluator, EvaluatorError, Score, judge_messages, parse_fields
from .fixed import FixedEvaluator
from .local import LocalEvaluator
from .openai_judge import OpenAIEvaluator
from .factory import EVALUATOR_KINDS, make_evaluator

__all__ = ["Evaluator", "EvaluatorError", "Score", "FixedEvaluator", "LocalEvaluator", "OpenAIEvaluator",
           "make_evaluator", "EVALUATOR_KINDS", "judge_messages", "parse_fields"]
