"""λ without a judge: a score or λ chosen by the user, or the λ each preset carries (chosen on the dev splits)."""
from __future__ import annotations

from .. import core
from ..errors import SdaError
from ..presets import Preset, get_preset
from .base import (
    LAMBDA_OPTION,
    SCORE_OPTION,
    Evaluator,
    EvaluatorError,
    FixedLambda,
    Score,
    resolve_criterion,
)


class FixedEvaluator(Evaluator):
    """Sets λ without reading the answer: λ itself, or a given 1–100 score through the turn's mapping."""

    def __init__(self, score: float | None = None, lam: float | None = None):
        if (score is None) == (lam is None):
            raise EvaluatorError("the fixed evaluator needs exactly one of: a score (1–100) or λ")
        try:
            if score is not None:
                SCORE_OPTION.check("the fixed score", score)
            else:
                LAMBDA_OPTION.check("the fixed λ", lam)
        except ValueError as exc:
            raise EvaluatorError(str(exc)) from None
        self.given_score = None if score is None else float(score)
        self.given_lam = None if lam is None else float(lam)
        self.name = f"fixed:score={score:g}" if score is not None else f"fixed:lam={lam:g}"

    def ask(self, messages, fields):
        raise EvaluatorError("the fixed evaluator does not judge")

    def _score(self, criterion) -> Score:
        crit, _ = resolve_criterion(criterion)
        return Score(int(round(self.given_score)), "fixed", self.name, 0.0, crit)

    def fixed_lambda(self, criterion, mapping: str) -> FixedLambda:
        if self.given_lam is not None:
            return FixedLambda(self.given_lam)
        return FixedLambda(core.lambda_from_score(self.given_score, mapping), self._score(criterion))

    def score(self, query, response, criterion, base=None) -> Score:
        if self.given_score is None:
            raise EvaluatorError(f"{self.name} was given λ, not a score")
        return self._score(criterion)


# λ for a preset without a measured λ of its own (a user's preset saved without one): the middle of the mappings'
# range.  (A custom instruction carries the λ chosen for custom instructions: presets.toml's [custom].)
UNMEASURED_LAM = 0.5


class PresetLambdaEvaluator(Evaluator):
    """Sets λ to the preset's own ``lam`` (``sda_local/data/presets.toml``), chosen on the dev splits where no
    local judge's score carried enough signal (see README, "Evaluators").  A preset without one gets
    ``UNMEASURED_LAM``."""

    name = "preset"

    def ask(self, messages, fields):
        raise EvaluatorError("the preset evaluator does not judge")

    def fixed_lambda(self, criterion, mapping: str) -> FixedLambda:
        preset = criterion if isinstance(criterion, Preset) else _named_preset(criterion)
        lam = UNMEASURED_LAM if preset is None or preset.lam is None else preset.lam
        return FixedLambda(float(lam))

    def score(self, query, response, criterion, base=None) -> Score:
        raise EvaluatorError("the preset evaluator sets λ per preset and does not score answers")


def _named_preset(name: str) -> Preset | None:
    try:
        return get_preset(name)
    except SdaError:
        return None
