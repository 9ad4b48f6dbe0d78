"""``ChatController``: every callback of the chat as a method, testable without Gradio.

Inputs come by name (the widgets' names: ``controls.CONTROL_NAMES`` for a turn's settings); each method returns
(or, for a turn, yields) a ``Reply``: new values for output widgets by name, and toasts.  No SDA math here: the
methods hand each callback to the job it belongs to, each made with the collaborators it uses:

- ``turns.Turns``          send, Regenerate aligned, Regenerate base, Stop (the turn runs in the ``ChatSession``)
- ``streaming.TurnStream`` a turn's events on the page, saved as it grows; the sessions still answering
- ``reload.Reload``        a page (re)opening: its conversation resumed, an answer still going on followed
- ``clicks.Clicks``        clicks in the conversation and the inspector (tokens, edit, votes, versions), view toggles
- ``library.Library``      saved conversations, JSON export and import, preference pairs
- ``panel.SettingsPanel``  presets, the evaluator's widgets, the model and control vectors

``shelf.Shelf`` saves the conversations they change; ``views`` builds what they show.  ``app`` wires the methods
to the widgets.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from .clicks import Clicks
from .controls import RESTORED_NAMES, preset_choices
from .conversations import Store
from .host import ModelHost
from .library import EXPORT_DIR, Library
from .panel import SettingsPanel
from .reload import Reload
from .reply import Reply
from .shelf import Shelf
from .state import SessionState
from .streaming import SAVE_INTERVAL_S, STREAM_INTERVAL_S, TurnStream, apply_event
from .turns import Turns

__all__ = ["ChatController", "TURN_OUTPUTS", "OPEN_OUTPUTS", "apply_event"]

# The outputs of every callback that changes the conversation (send, regenerate, clear, import, open…) and of a
# click in the conversation or the inspector (``act``: a token, "inspect tokens", a vote, a version).
TURN_OUTPUTS = ("state", "chat", "status", "message", "plot", "plot_summary", "table", "turn", "record",
                "inspector", "conv_pick", "conv_key", "conv_title")
# Opening a saved conversation also puts back the settings it was last answered with.
OPEN_OUTPUTS = TURN_OUTPUTS + RESTORED_NAMES


class ChatController:
    """The chat's callbacks for one ``ModelHost``; per-session data lives in the ``SessionState`` passed in.
    ``store``: where conversations are saved (default: in memory, for this process only)."""

    def __init__(self, host: ModelHost, *, stream_interval_s: float = STREAM_INTERVAL_S,
                 save_interval_s: float = SAVE_INTERVAL_S, export_dir: Path = EXPORT_DIR, store: Store | None = None):
        self.host = host
        self.page_presets = preset_choices()  # the preset list the page is built with
        self.shelf = Shelf(host, store)
        stream = TurnStream(host, self.shelf, stream_interval_s=stream_interval_s, save_interval_s=save_interval_s)
        self.turns = Turns(host, self.shelf, stream)
        self.reload = Reload(host, self.shelf, stream, self.page_presets)
        self.clicks = Clicks(self.shelf)
        self.library = Library(host, self.shelf, export_dir)
        self.panel = SettingsPanel(host)

    @property
    def store(self) -> Store:
        return self.shelf.store

    # -- turns (``Turns``) -----------------------------------------------------------------------------------
    def begin_send(self, state: SessionState | None, message: str | None) -> Reply:
        """Before ``send``, at once: the message shows as waiting and the box is emptied (or, while an answer is
        on its way, refused)."""
        return self.turns.begin_send(state, message)

    def send(self, state: SessionState | None, message: str | None, **controls: Any) -> Iterator[Reply]:
        """One turn: base answer, score, λ, aligned answer, streamed.  ``controls``: see ``CONTROL_NAMES``."""
        yield from self.turns.send(state, message, **controls)

    def begin_regenerate(self, state: SessionState | None) -> Reply:
        """Before ``regenerate``, at once: the last turn shows as waiting for its new answer."""
        return self.turns.begin_regenerate(state)

    def regenerate(self, state: SessionState | None, **controls: Any) -> Iterator[Reply]:
        """Sample the last aligned answer again, reusing its base answer and score."""
        yield from self.turns.regenerate(state, **controls)

    def begin_regenerate_base(self, state: SessionState | None) -> Reply:
        """Before ``regenerate_base``, at once: the last turn shows as waiting for its new answers."""
        return self.turns.begin_regenerate_base(state)

    def regenerate_base(self, state: SessionState | None, **controls: Any) -> Iterator[Reply]:
        """Draw the last turn's base answer again, then score, λ and aligned answer; the old answers stay as a
        version of the turn.  ``controls``: see ``CONTROL_NAMES``."""
        yield from self.turns.regenerate_base(state, **controls)

    def stop(self, state: SessionState | None) -> Reply:
        """End the answer being generated (after the current token)."""
        return self.turns.stop(state)

    # -- a page (re)opening (``Reload``) ---------------------------------------------------------------------
    def on_load(self, conv_key: str | None = None) -> Reply:
        """A page (re)opens: its tab's conversation (or the session still answering in it), the settings it was
        last answered with, the current model."""
        return self.reload.on_load(conv_key)

    def follow(self, state: SessionState | None) -> Iterator[Reply]:
        """A reloaded page shows the answer still being generated in its conversation as it grows."""
        yield from self.reload.follow(state)

    # -- clicks and the view (``Clicks``) --------------------------------------------------------------------
    def act(self, state: SessionState | None, action: str | None) -> Reply:
        """A click in the page: a token, a word, "inspect tokens", edit, a vote or a version (``Clicks.act``)."""
        return self.clicks.act(state, action)

    @staticmethod
    def inspect_turn(state: SessionState | None, turn: str | int | None) -> Reply:
        return Clicks.inspect_turn(state, turn)

    @staticmethod
    def toggle_base(state: SessionState | None, show: bool | None) -> Reply:
        return Clicks.toggle_base(state, show)

    def toggle_arena(self, state: SessionState | None, arena: bool | None) -> Reply:
        return self.clicks.toggle_arena(state, arena)

    # -- conversations and files (``Library``) ---------------------------------------------------------------
    def clear(self, state: SessionState | None) -> Reply:
        """A new, empty conversation (the previous one stays saved, in the list)."""
        return self.library.new_conversation(state)

    def new_conversation(self, state: SessionState | None) -> Reply:
        return self.library.new_conversation(state)

    def open_conversation(self, state: SessionState | None, conv_pick: str | None) -> Reply:
        return self.library.open_conversation(state, conv_pick)

    def rename_conversation(self, state: SessionState | None, conv_title: str | None) -> Reply:
        return self.library.rename_conversation(state, conv_title)

    def search_conversations(self, state: SessionState | None, conv_search: str | None) -> Reply:
        """Filter the conversation list by title and message text (ignoring case; empty: all of them)."""
        return self.library.search_conversations(state, conv_search)

    def delete_conversation(self, state: SessionState | None, conv_pick: str | None) -> Reply:
        return self.library.delete_conversation(state, conv_pick)

    def export_chat(self, state: SessionState | None, openai_api_key: str | None = None) -> Reply:
        return self.library.export_chat(state, openai_api_key)

    def import_chat(self, state: SessionState | None, file) -> Reply:
        return self.library.import_chat(state, file)

    def export_preferences(self, state: SessionState | None) -> Reply:
        """Every vote of every saved conversation (and this session's) as preference pairs."""
        return self.library.export_preferences(state)

    # -- settings (``SettingsPanel``) ------------------------------------------------------------------------
    @staticmethod
    def pick_preset(preset: str | None) -> Reply:
        return SettingsPanel.pick_preset(preset)

    @staticmethod
    def edit_preset(preset: str | None, instruction: str | None, rubric: str | None) -> Reply:
        """The instruction or rubric was typed in: the preset shows as ``CUSTOM`` unless both still are its own."""
        return SettingsPanel.edit_preset(preset, instruction, rubric)

    @staticmethod
    def save_preset(name: str | None, instruction: str | None, rubric: str | None) -> Reply:
        return SettingsPanel.save_preset(name, instruction, rubric)

    @staticmethod
    def show_evaluator(evaluator: str | None) -> Reply:
        return SettingsPanel.show_evaluator(evaluator)

    def load_model(self, choice: str | None, path: str | None) -> Reply:
        return self.panel.load_model(choice, path)

    def apply_control(self, vectors: str | None, scale: float | None, layers: str | None,
                      streams: str | None) -> Reply:
        return self.panel.apply_control(vectors, scale, layers, streams)
