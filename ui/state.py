"""One browser session's state: its conversation (a ``ChatSession``), the turn being streamed, the stop flag.

Held in a ``gr.State``, so every browser tab has its own; nothing here is shared between sessions except the
engine, which belongs to the ``ModelHost`` (a reloaded tab may take over its old session while that one's turn is
still running: ``ChatController.on_load``).

``saved_data`` is what the conversation database keeps, a turn still being generated included: it is saved as
a record with ``finish_reason`` "interrupted" (``LiveTurn.record``), which the finished record replaces; after a
crash or a restart that record is what comes back, marked as interrupted.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sda_local.errors import SdaError
from sda_local.judges.spec import UnavailableEvaluator
from sda_local.session import INTERRUPTED, ChatSession, TurnRecord
from sda_local.turn import TurnTrace

from .arena import new_arena
from .host import ModelHost
from .versions import Versions

INSPECT_K = 5  # each aligned token records its step's top-5 lists (the token inspector)


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
    base_finish: str = ""        # the base answer's finish reason once it is done ("length": cut at max tokens)
    fresh_base: bool = False     # a regeneration of the base answer (and so of score, λ and aligned answer)
    ended: str | None = None     # set when the turn is over: its status line (a reloaded page following it ends)
    trace: TurnTrace = field(default_factory=TurnTrace, repr=False, compare=False)  # its events, folded

    def record(self, settings: dict, evaluator: str) -> TurnRecord:
        """What the turn has so far, as a record marked "interrupted" (saved while it runs)."""
        score = self.trace.score.to_dict() if self.trace.score is not None else \
            None if self.score is None else {"value": self.score}
        return TurnRecord(user=self.user, base=self.base, aligned=self.aligned, score=score,
                          lam=self.lam, lam_source=self.lam_source, evaluator=evaluator,
                          warnings=list(self.warnings), settings=settings, timings={},
                          finish_reason=INTERRUPTED, base_finish_reason=self.base_finish)


@dataclass
class Replacing:
    """A regeneration of the last turn under way: ``record`` (turn ``pos`` + 1) becomes an older version of it once
    the new answer is recorded.  ``kept``: what ``ChatSession.regenerate`` had for it."""

    record: TurnRecord
    pos: int
    kept: object | None
    arena: dict


class SessionState:
    """What one browser session has: its chat, what is streaming, and whether the stop button was pressed."""

    def __init__(self):
        self.chat: ChatSession | None = None
        self.generation = 0                 # the host's model generation the chat was made for
        self.live: LiveTurn | None = None
        self.stop = threading.Event()
        self.guard = threading.RLock()      # a turn going on after its page went away vs. the page following it
        self.pending = False                # a send/regenerate was clicked and waits in the queue
        self.from_page = False              # sends come through begin_send (the page), not the API alone
        self.controls: dict = {}            # the settings widgets' values of the last turn (saved, restored)
        self.editing: int | None = None     # the turn whose message is being edited (the next send replaces it)
        self.show_base = True
        self.conv_id: str | None = None     # the saved conversation this session writes to (None: not saved yet)
        self.title = ""
        self.search = ""                    # what the conversation list is filtered by (its search box)
        self.search_missed = False          # the last search matched nothing (and the status line said so)
        self.arena_mode = False             # show base and aligned blind as A and B, with vote buttons
        self.inspected: tuple[int, int | None] | None = None  # (turn, token) the inspector shows
        self._arena: list[tuple[TurnRecord, dict]] = []        # each turn's arena entry, kept with its record
        self._versions: list[tuple[TurnRecord, Versions]] = []  # the turns with more than one version (ui.versions)
        self._replacing: Replacing | None = None

    def __deepcopy__(self, memo):  # Gradio may copy state values; a session is never duplicated
        return self

    def session(self, host: ModelHost) -> ChatSession:
        """The chat, on the host's current engine.  After a model switch the history is kept but the cached base
        answer is dropped (regenerate needs a new turn on the new model)."""
        if self.chat is None:
            self.chat = ChatSession(host.engine, UnavailableEvaluator("none", "no evaluator chosen yet"),
                                    inspect=INSPECT_K)
            self.generation = host.generation
        elif self.generation != host.generation:
            turns, drawn = self.chat.turns, self._drawn()
            self.chat = ChatSession(host.engine, self.chat.evaluator, self.chat.settings, inspect=INSPECT_K)
            self.chat.switch(turns, drawn=drawn)
            self.generation = host.generation
        return self.chat

    @property
    def turns(self) -> list[TurnRecord]:
        return self.chat.turns if self.chat else []


    # -- arena votes and saving ------------------------------------------------------------------------------
    def arenas(self) -> list[dict]:
        """One arena entry per turn ({"a": which answer is A, "vote"}); a new or regenerated turn gets a fresh
        one (entries follow their record, so a regeneration's new answer is never judged by the old vote)."""
        old = {id(r): a for r, a in self._arena}
        self._arena = [(r, old.get(id(r)) or new_arena()) for r in self.turns]
        return [a for _, a in self._arena]

    def _arena_of(self, r: TurnRecord) -> dict:
        if self._replacing is not None and r is self._replacing.record:
            return self._replacing.arena
        return next((a for x, a in self._arena if x is r), None) or new_arena()

    def turn_dict(self, r: TurnRecord, own: bool = True) -> dict:
        """A turn as saved: its record, its arena entry and (``own``) its versions."""
        d = r.to_dict()
        d["arena"] = dict(self._arena_of(r))
        versions = next((v for x, v in self._versions if x is r), None) if own else None
        if versions is not None:
            d.update(versions.to_dict())
        return d

    def data(self) -> dict:
        """The conversation as exported and saved: ``ChatSession.export()`` with each turn's arena entry and
        versions."""
        data = self.chat.export()
        self.arenas(), self.versions()
        data["turns"] = [self.turn_dict(r) for r in self.turns]
        if self.controls:
            data["controls"] = dict(self.controls)  # the settings as the page had them (no API key)
        return data

    def saved_data(self) -> dict:
        """``data()`` with the turn being generated (a regeneration: the answer it replaces), as saved."""
        data = self.data()  # (a session with a live turn has a chat)
        live = self.live
        if live is None or live.phase == "queued":
            return data
        if live.regenerating:  # until the new answer is recorded, the previous one stands
            if self._replacing is not None and live.previous is self._replacing.record \
                    and all(r is not live.previous for r in self.turns):
                data["turns"].append(self.turn_dict(live.previous))
            return data
        settings = self.chat.settings.to_dict()
        data["turns"].append(live.record(settings, self.chat.evaluator.name).to_dict())
        return data

    def first_user(self) -> str:
        """The conversation's first message (its default title), the one being answered included."""
        if self.turns:
            return self.turns[0].user
        return self.live.user if self.live is not None else ""

    def restore(self, host: ModelHost, data: dict, conv_id: str | None, title: str) -> None:
        """Make ``data`` (an export or a saved conversation) this session's conversation (``SdaError`` if it is
        none); its arena votes come with it."""
        chat = self.session(host)
        chat.load(data)
        saved = [t.get("arena") if isinstance(t, dict) else None for t in data.get("turns", [])]
        self._arena = [(r, dict(a) if isinstance(a, dict) else new_arena()) for r, a in zip(chat.turns, saved)]
        self._versions = [(r, v) for r, t in zip(chat.turns, data.get("turns", []))
                          if isinstance(t, dict) and (v := Versions.parse(t)) is not None]
        self._replacing = None
        chat.switch(chat.turns, drawn=self._drawn())  # a reloaded turn's next draw is none of its versions'
        self.conv_id, self.title, self.inspected, self.editing = conv_id, title, None, None
        self.controls = dict(data["controls"]) if isinstance(data.get("controls"), dict) else {}

    def snapshot(self) -> tuple:
        """What ``rewind`` puts back (an import that turns out damaged leaves the session as it was)."""
        return list(self.turns), self.conv_id, self.title, list(self._arena), dict(self.controls), list(self._versions)

    def rewind(self, snap: tuple) -> None:
        turns, self.conv_id, self.title, self._arena, self.controls, self._versions = snap
        if self.chat is not None:
            self.chat.switch(turns, drawn=self._drawn(turns))  # (what regenerate reused went with the failed import)

    def fork(self, turn_no: int) -> None:
        """Make this session a new, unsaved copy of its conversation with the turns before ``turn_no`` (an edited
        message is sent in their place); the original conversation stays saved as it was."""
        if self.chat is not None:
            self.chat.truncate(turn_no - 1)
        self._arena = self._arena[:turn_no - 1]
        self.conv_id, self.title, self.inspected, self.editing = None, "", None, None

    def forget(self) -> None:
        """Start a new, unsaved conversation (the saved one stays in the store)."""
        if self.chat is not None:
            self.chat.clear()
        self._arena, self.conv_id, self.title, self.inspected = [], None, "", None
        self.controls, self.editing, self._versions, self._replacing = {}, None, [], None

    # -- versions (ui.versions) ------------------------------------------------------------------------------
    def versions(self) -> list[Versions | None]:
        """One entry per turn: its versions (None: it has one).  A regeneration whose new answer is recorded
        makes the answer it replaced an older version here."""
        self._settle()
        shown = {id(r) for r in self.turns}
        held = self._replacing.record if self._replacing else None
        self._versions = [(r, v) for r, v in self._versions if id(r) in shown or r is held]
        known = {id(r): v for r, v in self._versions}
        return [known.get(id(r)) for r in self.turns]

    def version_count(self, turn_no: int) -> int:
        versions = self.versions()[turn_no - 1] if 1 <= turn_no <= len(self.turns) else None
        return versions.count if versions else 1

    def begin_version(self, kept: object | None) -> None:
        """A regeneration of the last turn starts (``kept``: the chat's ``kept`` for it; the chat takes the turn out
        while it runs, and puts it back when no new answer comes)."""
        self.arenas()
        self._replacing = Replacing(self.turns[-1], len(self.turns) - 1, kept, self._arena[-1][1])

    def _settle(self) -> None:
        rep = self._replacing
        if rep is None or len(self.turns) <= rep.pos or self.turns[rep.pos] is rep.record:
            return  # no new answer yet
        versions = next((v for x, v in self._versions if x is rep.record), None) or Versions([None])
        versions.hide_shown([self.turn_dict(rep.record, own=False)], rep.kept)
        versions.add_shown()
        self._versions = [(r, v) for r, v in self._versions if r is not rep.record] + [(self.turns[rep.pos], versions)]
        self._replacing = None

    def end_regeneration(self) -> None:
        """A regeneration ended: its new answer is the shown version (stopped before one was recorded, the chat
        shows the turn it was to replace again, as it was)."""
        self._settle()
        self._replacing = None

    def _drawn(self, turns: list[TurnRecord] | None = None) -> int:
        """The highest draw (``regenerations``) among the other versions of the last of ``turns`` (default: the
        chat's): its next draw is none of theirs (``sda_local.session.next_draw``)."""
        turns = self.turns if turns is None else turns
        last = turns[-1] if turns else None
        versions = next((v for r, v in self._versions if r is last), None)
        return versions.drawn() if versions is not None else 0

    def show_version(self, turn_no: int, number: int) -> None:
        """Show version ``number`` of turn ``turn_no`` and continue from it: the branch shown until now (that
        turn and those after it) is put away as its version.  ``SdaError`` if there is no such version."""
        versions = self.versions()[turn_no - 1] if 1 <= turn_no <= len(self.turns) else None
        if versions is None or not 1 <= number <= versions.count:
            raise SdaError(f"turn {turn_no} has no version {number}")
        if number - 1 == versions.shown:
            return
        branch = versions.branches[number - 1]
        records = [TurnRecord.from_dict(t, "that version") for t in branch]  # a damaged version changes nothing
        self.arenas()
        head, mine = self.turns[:turn_no - 1], self.turns[turn_no - 1:]
        versions.hide_shown([self.turn_dict(mine[0], own=False)] + [self.turn_dict(r) for r in mine[1:]],
                            self.chat.kept)
        _, kept = versions.take(number - 1)
        last = versions if len(records) == 1 else Versions.parse(branch[-1])
        self.chat.switch(head + records, kept, drawn=last.drawn() if last is not None else 0)
        self._arena = self._arena[:turn_no - 1] + [
            (r, dict(t["arena"]) if isinstance(t.get("arena"), dict) else new_arena()) for r, t in zip(records, branch)]
        self._versions = [(r, v) for r, v in self._versions if any(r is h for h in head)] + [(records[0], versions)] \
            + [(r, v) for r, t in zip(records[1:], branch[1:]) if (v := Versions.parse(t)) is not None]
        self.inspected = self.editing = None
