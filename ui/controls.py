"""Turn the values of the chat's settings widgets into pipeline objects (``TurnSettings``, ``EvaluatorSpec``).

The names in ``CONTROL_NAMES`` are the keyword names the callbacks (and the Gradio API) use, in the order the
widgets are passed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from sda_local.core import SamplingParams
from sda_local.errors import SdaError
from sda_local.pipeline import TurnSettings
from sda_local.presets import Preset, all_presets

CUSTOM = "(custom)"  # the preset dropdown's entry for an instruction typed by hand

EVALUATORS = {"local": "Local judge (GGUF)", "openai": "OpenAI-compatible", "fixed": "Fixed score / λ"}
CHAT_MODEL_JUDGE = "(the chat model)"

CONTROL_NAMES = (
    "preset", "instruction", "rubric",
    "evaluator", "judge_model", "openai_base_url", "openai_model", "openai_api_key",
    "fixed_by", "fixed_lam", "fixed_score",
    "k", "t0", "top_p", "temperature_mode", "mapping", "fallback_lam", "max_tokens", "seed", "placement",
    "system_prompt",
)


@dataclass(frozen=True)
class EvaluatorSpec:
    """Which evaluator a turn uses.  The API key is kept out of ``repr`` (and so out of logs)."""

    kind: str = "local"
    judge_model: str = ""            # local: "" = the chat model, else a registry id, file or path
    openai_base_url: str = ""
    openai_model: str = ""
    openai_api_key: str = field(default="", repr=False)
    fixed_by: str = "lam"            # "lam" | "score"
    fixed_value: float = 0.5

    def describe(self) -> str:
        if self.kind == "local":
            return f"local judge ({self.judge_model or 'the chat model'})"
        if self.kind == "openai":
            where = self.openai_base_url or "default URL"
            return f"OpenAI-compatible ({self.openai_model or 'default model'} at {where})"
        return f"fixed {'λ' if self.fixed_by == 'lam' else 'score'} = {self.fixed_value:g}"


@dataclass
class Controls:
    """Every settings widget's value, by name (see ``CONTROL_NAMES``)."""

    preset: str = "helpfulness"
    instruction: str = ""
    rubric: str = ""
    evaluator: str = "local"
    judge_model: str = CHAT_MODEL_JUDGE
    openai_base_url: str = ""
    openai_model: str = ""
    openai_api_key: str = field(default="", repr=False)
    fixed_by: str = "lam"
    fixed_lam: float = 0.5
    fixed_score: float = 50
    k: float = 2.0
    t0: float = 0.6
    top_p: float = 0.95
    temperature_mode: str = "ln2"
    mapping: str = "sigmoid"
    fallback_lam: float = 0.5
    max_tokens: int = 256
    seed: float | None = None
    placement: str = "user"
    system_prompt: str = ""

    @classmethod
    def from_values(cls, values) -> "Controls":
        values = list(values)
        if len(values) != len(CONTROL_NAMES):
            raise SdaError(f"expected {len(CONTROL_NAMES)} settings, got {len(values)}")
        given = {k: v for k, v in zip(CONTROL_NAMES, values, strict=True) if v is not None or k == "seed"}
        return cls(**given)

    # -- to pipeline objects --------------------------------------------------------------------------------
    def chosen_preset(self) -> Preset:
        """The selected preset, or a custom one when the instruction or rubric was edited (or none chosen)."""
        presets = all_presets()
        base = presets.get(self.preset)
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
        from sda_local.presets import custom_preset

        return custom_preset(instruction, rubric or None, name=name)

    def seed_value(self) -> int | None:
        if self.seed is None or self.seed == "":
            return None
        s = float(self.seed)
        if not math.isfinite(s) or s < 0:
            raise SdaError(f"the seed must be a whole number ≥ 0 (or empty for a random one), got {self.seed}")
        return int(s)

    def settings(self) -> TurnSettings:
        try:
            return TurnSettings(
                preset=self.chosen_preset(), mapping=self.mapping, fallback_lam=float(self.fallback_lam),
                placement=self.placement,
                sampling=SamplingParams(k=float(self.k), t0=float(self.t0), top_p=float(self.top_p),
                                        temperature_mode=self.temperature_mode, max_tokens=int(self.max_tokens),
                                        seed=self.seed_value()),
                system_prompt=(self.system_prompt or "").strip()).check()
        except ValueError as exc:  # SamplingParams.check
            raise SdaError(f"invalid setting: {exc}") from None

    def evaluator_spec(self) -> EvaluatorSpec:
        kind = self.evaluator if self.evaluator in EVALUATORS else "local"
        judge = (self.judge_model or "").strip()
        if judge == CHAT_MODEL_JUDGE:
            judge = ""
        by = "score" if str(self.fixed_by).lower().startswith("score") else "lam"
        value = float(self.fixed_score if by == "score" else self.fixed_lam)
        return EvaluatorSpec(kind=kind, judge_model=judge, openai_base_url=(self.openai_base_url or "").strip(),
                             openai_model=(self.openai_model or "").strip(),
                             openai_api_key=(self.openai_api_key or "").strip(), fixed_by=by, fixed_value=value)
