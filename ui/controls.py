"""Turn the values of the chat's settings widgets, given by name, into pipeline objects (``TurnSettings``,
``EvaluatorSpec``).

``CONTROL_NAMES`` are the names of every widget a turn reads, which are also the keyword names of the
controller's ``send``/``regenerate`` and of the Gradio API: the preset and evaluator widgets below, then one
per Advanced setting (``fields.SETTING_FIELDS``, derived from ``SamplingParams`` and ``TurnSettings``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from sda_local.core import SamplingParams
from sda_local.errors import SdaError
from sda_local.judges import DEFAULT_EVALUATOR, EVALUATOR_KINDS, EVALUATOR_LABELS
from sda_local.judges.factory import LOCAL_JUDGES
from sda_local.turn import TurnSettings
from sda_local.presets import DEFAULT_PRESET, Preset, all_presets, custom_preset

from .fields import SAMPLING, SETTING_FIELDS, SettingField

CUSTOM = "(custom)"  # the preset dropdown's entry for an instruction typed by hand

EVALUATORS = {k: EVALUATOR_LABELS[k] for k in EVALUATOR_KINDS}  # every kind, labelled for the radio
CHAT_MODEL_JUDGE = "(the chat model)"

PRESET_NAMES = ("preset", "instruction", "rubric")
EVALUATOR_NAMES = ("evaluator", "judge_model", "openai_base_url", "openai_model", "openai_api_key",
                   "fixed_by", "fixed_lam", "fixed_score")
CONTROL_NAMES = PRESET_NAMES + EVALUATOR_NAMES + tuple(f.name for f in SETTING_FIELDS)


def preset_choices() -> list[str]:
    """The preset dropdown's entries: built-in and saved presets, then ``CUSTOM``."""
    return list(all_presets()) + [CUSTOM]


@dataclass(frozen=True)
class EvaluatorSpec:
    """Which evaluator a turn uses.  The API key is kept out of ``repr`` (and so out of logs)."""

    kind: str = DEFAULT_EVALUATOR
    judge_model: str = ""            # local: "" = the chat model, else a registry id, file or path
    openai_base_url: str = ""
    openai_model: str = ""
    openai_api_key: str = field(default="", repr=False)
    fixed_by: str = "lam"            # "lam" | "score"
    fixed_value: float = 0.5

    def describe(self) -> str:
        if self.kind == "preset":
            return "λ per preset"
        if self.kind in LOCAL_JUDGES:
            return f"{self.kind} judge ({self.judge_model or 'the chat model'})"
        if self.kind == "openai":
            where = self.openai_base_url or "default URL"
            return f"OpenAI-compatible ({self.openai_model or 'default model'} at {where})"
        return f"fixed {'λ' if self.fixed_by == 'lam' else 'score'} = {self.fixed_value:g}"


@dataclass
class Controls:
    """Every settings widget's value, by name: the preset and evaluator widgets as fields, the Advanced
    settings in ``options`` (field name → widget value)."""

    preset: str = DEFAULT_PRESET
    instruction: str = ""
    rubric: str = ""
    evaluator: str = DEFAULT_EVALUATOR
    judge_model: str = CHAT_MODEL_JUDGE
    openai_base_url: str = ""
    openai_model: str = ""
    openai_api_key: str = field(default="", repr=False)
    fixed_by: str = "lam"
    fixed_lam: float = 0.5
    fixed_score: float = 50
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_named(cls, values: Mapping[str, Any],
                   setting_fields: tuple[SettingField, ...] = SETTING_FIELDS) -> Controls:
        """From widget values by name; a name that is no control is a programming error (``TypeError``).
        None for a preset or evaluator widget keeps its default."""
        known = {f.name for f in setting_fields}
        unknown = set(values) - known - set(PRESET_NAMES) - set(EVALUATOR_NAMES)
        if unknown:
            raise TypeError(f"not a chat control: {', '.join(sorted(unknown))}")
        own = {k: v for k, v in values.items() if k not in known and v is not None}
        return cls(**own, options={k: v for k, v in values.items() if k in known})

    # -- to pipeline objects --------------------------------------------------------------------------------
    def chosen_preset(self) -> Preset:
        """The selected preset, or a custom one when the instruction or rubric was edited (or none chosen)."""
        base = all_presets().get(self.preset)
        instruction = (self.instruction or "").strip()
        rubric = (self.rubric or "").strip()
        if base is not None and instruction in ("", base.instruction) and rubric in ("", base.rubric):
            return base
        if not instruction:
            if base is None:
                raise SdaError("choose a preset or type an alignment instruction")
            instruction = base.instruction
        name = "custom" if base is None else f"{base.name} (edited)"
        rubric = rubric or (base.rubric if base is not None else "")
        return custom_preset(instruction, rubric or None, name=name)

    def settings(self, setting_fields: tuple[SettingField, ...] = SETTING_FIELDS) -> TurnSettings:
        """``TurnSettings(preset=…, sampling=SamplingParams(**…), **turn options)``, checked (``SdaError``)."""
        sampling: dict[str, Any] = {}
        turn: dict[str, Any] = {}
        for f in setting_fields:
            if f.name in self.options:
                (sampling if f.group == SAMPLING else turn)[f.name] = f.value(self.options[f.name])
        return TurnSettings(preset=self.chosen_preset(), sampling=SamplingParams(**sampling), **turn).check()

    def evaluator_spec(self) -> EvaluatorSpec:
        kind = self.evaluator if self.evaluator in EVALUATORS else DEFAULT_EVALUATOR
        judge = (self.judge_model or "").strip()
        if judge == CHAT_MODEL_JUDGE:
            judge = ""
        by = "score" if str(self.fixed_by).lower().startswith("score") else "lam"
        value = float(self.fixed_score if by == "score" else self.fixed_lam)
        return EvaluatorSpec(kind=kind, judge_model=judge, openai_base_url=(self.openai_base_url or "").strip(),
                             openai_model=(self.openai_model or "").strip(),
                             openai_api_key=(self.openai_api_key or "").strip(), fixed_by=by, fixed_value=value)
