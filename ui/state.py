"""One browser session's state: its conversation (a ``ChatSession``), the turn being streamed, the stop flag.

Held in a ``gr.State``, so every browser tab has its own; nothing here is shared between sessions except the
engine, which belongs to the ``ModelHost``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sda_local.pipeline import ChatSession, TurnRecord

from .host import ModelHost, UnavailableEvaluator


@dataclass
class LiveTurn:
    """The turn being generated, as the view shows it while tokens arrive."""

    user: str
    base: str = ""
    aligned: str = ""
    phase: str = "base"          # "queued" | "base" | "judge" | "aligned"
    score: int | None = None
    score_detail: str = ""
    lam: float | None = None
    lam_source: str = ""
    warnings: list[str] = field(default_factory=list)
    regenerating: bool = False
    previous: TurnRecord | None = None  # the record a regeneration replaces (its base answer is shown)


class SessionState:
    """What one browser session has: its chat, what is streaming, and whether the stop button was pressed."""

    def __init__(self):
        self.chat: ChatSession | None = None
        self.generation = 0                 # the host's model generation the chat was made for
        self.live: LiveTurn | None = None
        self.stop = threading.Event()
        self.pending = False                # a send/regenerate was clicked and waits in the queue
        self.show_base = True

    def __deepcopy__(self, memo):  # Gradio may copy state values; a session is never duplicated
        return self

    def session(self, host: ModelHost) -> ChatSession:
        """The chat, on the host's current engine.  After a model switch the history is kept but the cached base
        answer is dropped (regenerate needs a new turn on the new model)."""
        if self.chat is None:
            self.chat = ChatSession(host.engine, UnavailableEvaluator("none", "no evaluator chosen yet"))
            self.generation = host.generation
        elif self.generation != host.generation:
            turns = self.chat.turns
            self.chat = ChatSession(host.engine, self.chat.evaluator, self.chat.settings)
            self.chat.turns = turns
            self.generation = host.generation
        return self.chat

    @property
    def turns(self) -> list[TurnRecord]:
        return self.chat.turns if self.chat else []

