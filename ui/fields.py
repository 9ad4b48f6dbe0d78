"""The chat's Advanced settings, derived from the settings' own declarations.

Each ``SamplingParams`` field (``core.sampling_options()``) and each ``TurnSettings`` option
(``turn.turn_options()``) becomes one ``SettingField``: which widget shows it (slider, radio, dropdown,
number, text box), its range, step and help, and how a widget's value becomes the field's value.  A new field
in ``SamplingParams`` appears in the chat, is sent by name and lands in ``TurnSettings.sampling`` with no
edit here.  No Gradio here: ``layout`` turns these into widgets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from sda_local.core import Option, sampling_options
from sda_local.errors import SdaError
from sda_local.turn import turn_options

SAMPLING = "sampling"   # the field belongs to TurnSettings.sampling (a SamplingParams)
TURN = "turn"           # the field is one of TurnSettings' own
RADIO_MAX = 3           # up to this many choices show as radio buttons, more as a dropdown


@dataclass(frozen=True)
class SettingField:
    """One setting as the chat shows it.  ``name`` is the field's name: the widget's API parameter too."""

    name: str
    group: str              # SAMPLING | TURN
    widget: str             # "slider" | "radio" | "dropdown" | "number" | "text"
    default: Any
    help: str
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    integer: bool = False
    optional: bool = False  # an empty widget means None (e.g. no fixed seed)

    @property
    def elem_id(self) -> str:
        return "sda-" + self.name.replace("_", "-")

    @property
    def placeholder(self) -> str | None:
        """What an empty widget shows: an optional field's "none" (the default: no fixed seed = random)."""
        return "none" if self.optional else None

    @property
    def label(self) -> str:
        return self.name + (" (empty: none)" if self.optional else "")

    def value(self, raw: Any) -> Any:
        """The field's value from what the widget (or an API client) sent; None or empty means the default."""
        if raw is None or (isinstance(raw, str) and not raw.strip() and self.widget != "text"):
            return None if self.optional else self.default
        if self.choices:
            return raw  # checked against the choices by TurnSettings.check, which names them
        if self.widget == "text":
            return str(raw).strip()
        try:
            x = float(raw)
        except (TypeError, ValueError):
            raise SdaError(f"invalid setting: {self.name} must be a number; got {raw!r}") from None
        if not self.integer:
            return x
        if not math.isfinite(x) or x != int(x):
            raise SdaError(f"invalid setting: {self.name} must be a whole number; got {raw!r}")
        return int(x)


def _is_int(annotation) -> bool:
    """True for ``int`` and ``int | None`` (annotations may be strings: ``from __future__ import annotations``)."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return text.replace(" ", "").split("|")[0] in ("int", "Optional[int]")


def _is_text(annotation) -> bool:
    return annotation is str or str(annotation).replace(" ", "") in ("str", "str|None")


def _range(opt: Option, step: float) -> tuple[float | None, float | None]:
    """Slider ends: the bounds, one step inside an open one; ``ui_max`` where the range has no (useful) top."""
    lo = None if opt.lo is None else opt.lo + (step if opt.lo_open else 0)
    if opt.ui_max is not None:
        hi = opt.ui_max
    else:
        hi = None if opt.hi is None else opt.hi - (step if opt.hi_open else 0)
    return lo, hi


def make_field(name: str, annotation, default, opt: Option, group: str) -> SettingField:
    integer = _is_int(annotation)
    common = dict(name=name, group=group, default=default, help=opt.help, integer=integer, optional=opt.optional)
    if opt.choices is not None:
        widget = "radio" if len(opt.choices) <= RADIO_MAX else "dropdown"
        return SettingField(widget=widget, choices=tuple(opt.choices), **common)
    if _is_text(annotation):
        return SettingField(widget="text", **common)
    step = opt.step if opt.step is not None else (1 if integer else None)
    lo, hi = _range(opt, step or 0)
    if lo is not None and hi is not None and not opt.optional:
        step = step if step is not None else (hi - lo) / 100
        return SettingField(widget="slider", minimum=lo, maximum=hi, step=step, **common)
    return SettingField(widget="number", minimum=lo, maximum=hi, step=step, **common)


def setting_fields(sampling: Iterable | None = None, turn: Iterable | None = None) -> tuple[SettingField, ...]:
    """The Advanced settings, in declaration order: ``SamplingParams``' fields, then ``TurnSettings``' options.
    The arguments (lists of ``(name, type, default, Option)``) default to the real declarations."""
    sampling = sampling_options() if sampling is None else sampling
    turn = turn_options() if turn is None else turn
    return (tuple(make_field(*o, SAMPLING) for o in sampling) + tuple(make_field(*o, TURN) for o in turn))


SETTING_FIELDS = setting_fields()
