"""Turn the values of the chat's settings widgets, given by name, into turn objects (``TurnSettings``,
``judges.JudgeSpec``).

``CONTROL_NAMES`` are the names of every widget a turn reads, which are also the keyword names of the
controller's ``send``/``regenerate`` and of the Gradio API: the preset and evaluator widgets below, then one
per Advanced setting (``fields.SETTING_FIELDS``, derived from ``SamplingParams`` and ``TurnSettings``).  The
evaluator widgets set ``JudgeSpec`` fields (``EVALUATOR_FIELDS``): their help, the kinds and the ranges are the
spec's own ``Option``s (``EVALUATOR_OPTIONS``), not typed again here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from sda_local.core import Option, SamplingParams
from sda_local.errors import SdaError
from sda_local.judges import DEFAULT_EVALUATOR, EVALUATOR_LABELS
from sda_local.judges.spec import FIXED_FIELDS, JudgeSpec, judge_option
from sda_local.presets import DEFAULT_PRESET, Preset, all_presets, custom_preset
from sda_local.turn import TurnSettings

from .fields import SAMPLING, SETTING_FIELDS, SettingField

CUSTOM = "(custom)"  # the preset dropdown's entry for an instruction typed by hand

# evaluator widget → the ``JudgeSpec`` field it sets (``fixed_by``, which of λ and score is fixed, is the chat's own)
EVALUATOR_FIELDS = {"evaluator": "kind", "judge_model": "judge_model", "openai_base_url": "openai_base_url",
                    "openai_model": "openai_model", "openai_api_key": "openai_api_key",
                    "fixed_lam": "lam", "fixed_score": "score"}
# each evaluator widget's help, choices and range: its spec field's ``Option``
EVALUATOR_OPTIONS: dict[str, Option] = {w: judge_option(f) for w, f in EVALUATOR_FIELDS.items()}
FIXED_BY = FIXED_FIELDS  # the ``fixed_by`` radio's values: the spec field the fixed value goes to
EVALUATORS = {k: EVALUATOR_LABELS[k] for k in EVALUATOR_OPTIONS["evaluator"].choices}  # every kind, labelled
# one line each, in plain words: the radio's tooltips (page.page_js puts them on the choices)
EVALUATOR_TIPS = {
    "local": "A local model (the chat model, or one you pick) rates the base answer 1-100; a poor answer gets "
             "a larger λ.",
    "geval": "Like the local judge, but the score is the average of its possible ratings, weighted by how "
             "likely it finds each.",
    "reason": "The local judge first writes a short critique, then its rating: slower.",
    "yesno": "The local judge is asked whether the answer is good; how likely it says yes becomes the score.",
    "self": "No judge prompt: the score comes from how much the two streams (with and without the instruction) "
            "disagree about the base answer.",
    "openai": "A judge model on an OpenAI-compatible server (OpenAI, Ollama, LM Studio, llama.cpp…) rates the "
              "base answer.",
    "fixed": "No judge: you choose λ yourself (or a score, which is mapped to λ).",
    "preset": "No judge: each preset's own λ, chosen from measurements (the default: the local judges did not "
              "rate reliably).",
}
CHAT_MODEL_JUDGE = "(the chat model)"

PRESET_NAMES = ("preset", "instruction", "rubric")
EVALUATOR_NAMES = ("evaluator", "judge_model", "openai_base_url", "openai_model", "openai_api_key",
                   "fixed_by", "fixed_lam", "fixed_score")
CONTROL_NAMES = PRESET_NAMES + EVALUATOR_NAMES + tuple(f.name for f in SETTING_FIELDS)


SECRET_NAMES = ("openai_api_key",)  # never saved with a conversation, never restored
RESTORED_NAMES = tuple(n for n in CONTROL_NAMES if n not in SECRET_NAMES)


def saved_controls(values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings widgets' values as saved with a conversation (the API key left out)."""
    return {k: v for k, v in values.items() if k in RESTORED_NAMES}


def _fits(name: str, value: Any, choices: Mapping[str, tuple]) -> bool:
    if name in choices:
        return value in choices[name]
    if name in ("fixed_lam", "fixed_score"):  # a number in the spec's range
        try:
            EVALUATOR_OPTIONS[name].check(name, value)
        except ValueError:
            return False
        return not isinstance(value, bool) and isinstance(value, (int, float))
    return value is None or isinstance(value, (str, int, float))


def restored_controls(saved: Any) -> dict[str, Any]:
    """Widget name → value to put back from a saved conversation's settings; values a widget would refuse (a
    choice that is gone, a wrong type) are left out, and a preset that is gone shows as ``CUSTOM`` (its
    instruction and rubric come back in their boxes)."""
    if not isinstance(saved, dict):
        return {}
    choices = {f.name: tuple(f.choices) for f in SETTING_FIELDS if f.choices}
    choices.update(evaluator=tuple(EVALUATORS), fixed_by=FIXED_BY)
    out = {k: v for k, v in saved.items() if k in RESTORED_NAMES and k != "preset" and _fits(k, v, choices)}
    if isinstance(saved.get("preset"), str):
        out["preset"] = saved["preset"] if saved["preset"] in preset_choices() else CUSTOM
    return out


def preset_choices() -> list[str]:
    """The preset dropdown's entries: built-in and saved presets, then ``CUSTOM``."""
    return list(all_presets()) + [CUSTOM]


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
    fixed_by: str = FIXED_BY[0]
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

    # -- to turn objects --------------------------------------------------------------------------------
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
        """``TurnSettings(preset=…, sampling=SamplingParams(**…), **turn options)``, not checked: the turn checks
        them (``turn.answer``: ``SdaError`` before it starts), once."""
        sampling: dict[str, Any] = {}
        turn: dict[str, Any] = {}
        for f in setting_fields:
            if f.name in self.options:
                (sampling if f.group == SAMPLING else turn)[f.name] = f.value(self.options[f.name])
        return TurnSettings(preset=self.chosen_preset(), sampling=SamplingParams(**sampling), **turn)

    def evaluator_spec(self) -> JudgeSpec:
        kind = self.evaluator if self.evaluator in EVALUATORS else DEFAULT_EVALUATOR
        judge = (self.judge_model or "").strip()
        if judge == CHAT_MODEL_JUDGE:
            judge = ""
        fixed = {}
        if kind == "fixed":
            by_score = str(self.fixed_by).lower().startswith("score")
            fixed = {"score": float(self.fixed_score)} if by_score else {"lam": float(self.fixed_lam)}
        return JudgeSpec(kind=kind, judge_model=judge or None, openai_base_url=(self.openai_base_url or "").strip() or None,
                         openai_model=(self.openai_model or "").strip() or None,
                         openai_api_key=(self.openai_api_key or "").strip() or None, **fixed)
