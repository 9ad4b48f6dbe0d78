"""A score or λ chosen by the user: for experiments, and offline without a judge."""
from __future__ import annotations

from .base import Evaluator, EvaluatorError, Score, resolve_criterion


class FixedEvaluator(Evaluator):
    def __init__(self, score: float | None = None, lam: float | None = None):
        if (score is None) == (lam is None):
            raise EvaluatorError("the fixed evaluator needs exactly one of: a score (1–100) or λ")
        if score is not None and not (1 <= float(score) <= 100):
            raise EvaluatorError(f"fixed score must be in [1, 100], got {score}")
        if lam is not None and not (float(lam) == float(lam)):
            raise EvaluatorError("fixed λ must be a number")
        self.fixed_score = None if score is None else float(score)
        self.fixed_lam = None if lam is None else float(lam)
        self.name = f"fixed:score={score:g}" if score is not None else f"fixed:lam={lam:g}"

    def ask(self, messages, fields):
        raise EvaluatorError("the fixed evaluator does not judge")

    def score(self, query, response, criterion) -> Score:
        crit, _ = resolve_criterion(criterion)
        value = None if self.fixed_score is None else int(round(self.fixed_score))
        return Score(value, "fixed", self.name, 0.0, crit)
