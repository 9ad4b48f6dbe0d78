"""The settings column's callbacks (``SettingsPanel``): presets (pick, edit, save), the evaluator's widgets, the
model and its control vectors."""
from __future__ import annotations

import logging

from sda_local.errors import SdaError
from sda_local.judges import LOCAL_JUDGE_KINDS
from sda_local.presets import all_presets, custom_preset, save_user_preset

from .controls import CUSTOM, preset_choices
from .host import ModelHost
from .reply import Choices, Reply, Visible, notice

log = logging.getLogger("sda_local.ui")


class SettingsPanel:
    """Presets and the evaluator (no state), and ``host``'s model and control vectors (every open chat uses
    them)."""

    def __init__(self, host: ModelHost):
        self.host = host

    # -- presets and evaluator -------------------------------------------------------------------------------
    @staticmethod
    def pick_preset(preset: str | None) -> Reply:
        p = all_presets().get(preset)
        return Reply() if p is None else Reply(instruction=p.instruction, rubric=p.rubric)

    @staticmethod
    def edit_preset(preset: str | None, instruction: str | None, rubric: str | None) -> Reply:
        """The instruction or rubric was typed in: the preset shows as ``CUSTOM`` unless both still are the
        preset's own."""
        p = all_presets().get(preset)
        if p is None:
            return Reply()
        own = (instruction or "").strip() in ("", p.instruction.strip()) and \
            (rubric or "").strip() in ("", p.rubric.strip())
        return Reply() if own else Reply(preset=CUSTOM)

    @staticmethod
    def save_preset(name: str | None, instruction: str | None, rubric: str | None) -> Reply:
        name = (name or "").strip()
        try:
            if not name:
                raise SdaError("give the preset a name")
            if name == CUSTOM:
                raise SdaError(f"{CUSTOM!r} is reserved; choose another name")
            path = save_user_preset(custom_preset(instruction, rubric or None, name=name))
        except SdaError as exc:
            return Reply(status=notice("Not saved", str(exc))).warn(str(exc))
        return Reply(preset=Choices(preset_choices(), name),
                     status=notice("Saved", f"preset {name!r} in {path}"))

    @staticmethod
    def show_evaluator(evaluator: str | None) -> Reply:
        return Reply(local_box=Visible(evaluator in LOCAL_JUDGE_KINDS), openai_box=Visible(evaluator == "openai"),
                     fixed_box=Visible(evaluator == "fixed"))

    # -- model -----------------------------------------------------------------------------------------------
    def load_model(self, choice: str | None, path: str | None) -> Reply:
        spec = (path or "").strip() or (choice or "")
        try:
            info = self.host.switch(spec)
        except SdaError as exc:
            return Reply(status=notice("Model not loaded", f"{exc} — still using {self.host.model_name}")).warn(
                str(exc))
        except Exception as exc:  # llama.cpp refusing the file in an unforeseen way
            log.exception("model load failed")
            return Reply(status=notice("Model not loaded", f"{type(exc).__name__}: {exc} — still using "
                                       f"{self.host.model_name}"))
        return Reply(model_info=info,
                     status=notice("Model loaded", f"{self.host.model_name}; every open chat now uses it"))

    def apply_control(self, vectors: str | None, scale: float | None, layers: str | None,
                      streams: str | None) -> Reply:
        lines = [ln.strip() for ln in (vectors or "").splitlines() if ln.strip()]
        control = None
        if lines:
            control = {"vectors": lines, "scale": float(scale if scale is not None else 1.0),
                       "layers": (layers or "").strip() or None, "streams": streams or "aligned"}
        try:
            info = self.host.set_control(control)
        except (SdaError, ValueError, OSError) as exc:
            return Reply(status=notice("Control vectors not applied", str(exc))).warn(str(exc))
        return Reply(model_info=info, status=notice("Control vectors", "applied" if control else "off"))
