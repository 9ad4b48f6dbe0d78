"""What a controller callback returns: new values for output widgets, by name, and toasts to pop up.

No Gradio here (``app`` turns a ``Reply`` into Gradio updates), so callbacks run and are tested without it.
A widget a reply does not name stays as it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Toast:
    level: str   # "info" | "warning"
    text: str


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()  # "leave it as it is", where None would be a value


@dataclass(frozen=True)
class Choices:
    """New choices for a dropdown, and its new value (``KEEP``: the value stays)."""

    choices: list
    value: Any = KEEP


@dataclass(frozen=True)
class Visible:
    """Show or hide a widget (or a column of them)."""

    visible: bool


class Reply(dict):
    """Output widget name → new value (a plain value, ``Choices`` or ``Visible``), plus ``toasts``."""

    def __init__(self, values: dict | None = None, /, *, toasts: list[Toast] | tuple = (), **named: Any):
        super().__init__(values or {}, **named)
        self.toasts = list(toasts)

    def warn(self, text: str) -> Reply:
        self.toasts.append(Toast("warning", text))
        return self

    def inform(self, text: str) -> Reply:
        self.toasts.append(Toast("info", text))
        return self


def notice(kind: str, text: str) -> str:
    """A status line: ``**Kind:** text``."""
    return f"**{kind}:** {text}"
