"""A conversation with SDA: the history of turns, regenerate, export — around the one turn (``turn.answer``).

    session = ChatSession(engine, evaluator, TurnSettings(preset=get_preset("harmlessness")))
    for ev in session.send("How do I pick a lock?"):
        ...   # the turn's events (turn.py), then TurnDone with the TurnRecord

The history (``messages()``) holds the aligned answers of the turns that did not fail.  The last turn's base
answer and λ decision are kept, so ``regenerate()`` resamples only the aligned answer; ``regenerate_base()``
answers the last turn's message again from the start (a new base answer, then score, λ and aligned answer).
Every new draw of a turn gets a seed of its own (``next_draw``, the one rule for both).  A stopped turn keeps its
partial answer (``finish_reason`` "stopped": the user ended it, and the model should see what it said) and its
partial base answer; a sent message stopped before its aligned answer started is kept too, with what its base
answer had and an empty aligned answer (``send(keep_stopped=False)``: not kept); a regeneration of either kind
stopped before its new answer started puts back the turn it was to replace, as it was.  An engine
error in the aligned answer is recorded (``finish_reason`` "error", the message in ``warnings``), kept out of the
history, and raised.  A turn saved while it ran and never finished (``finish_reason`` "interrupted": the app
stopped or the page went away; the chat's saved conversations) is shown but kept out of the history too: its
answer may be empty or cut anywhere, and nobody chose to keep it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar, Iterator

from .errors import SdaError
from .judges import Evaluator, LambdaDecision
from .runtime.engine import Engine, Finished
from .turn import TurnSettings, TurnTrace, answer, strip_think


INTERRUPTED = "interrupted"  # the finish reason of a turn saved while it ran that never finished
NOT_IN_HISTORY = ("error", INTERRUPTED)


@dataclass
class TurnRecord:
    """One finished turn, as kept in the session and exported."""

    user: str
    base: str
    aligned: str
    score: dict | None
    lam: float | None     # None: stopped before λ was chosen
    lam_source: str
    evaluator: str
    warnings: list[str]
    settings: dict
    timings: dict
    aligned_tokens: list[dict] = field(default_factory=list)  # per-token diagnostics (text, js, T, p; top lists)
    finish_reason: str = ""   # the engine's ("stop", "length", "context"), or "stopped" / "error" / "interrupted"
    regenerations: int = 0    # which draw of its turn this answer is (0: the first; ``next_draw``): its seed offset
    base_finish_reason: str = ""  # the base answer's ("length": cut at max tokens; "stopped": cut by Stop)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, what: str = "the turn") -> TurnRecord:
        """A turn as ``to_dict`` gave it (an export, a saved conversation, a version); keys it does not know are
        ignored.  ``SdaError`` ("``what`` is damaged: …") when a field is missing or ``d`` is no dict."""
        try:
            return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except TypeError as exc:
            raise SdaError(f"{what} is damaged: {exc}") from None


@dataclass
class TurnDone:
    """The last event of a ``ChatSession`` turn: its record (the one in ``turns``)."""

    turn: TurnRecord
    kind: ClassVar[str] = "done"


def next_draw(turn: TurnRecord, drawn: int = 0) -> int:
    """The seed rule of a new draw of ``turn`` (``regenerate`` and ``regenerate_base`` alike): one more than the
    highest draw the turn has had, its own (``turn.regenerations``: 0 for its first answer) or that of another
    version of it (``drawn``, told by ``ChatSession.switch``).  Draw n moves the seed by n: ``regenerate`` the
    aligned answer's (``answer(seed_offset=n)``; the base answer is reused), ``regenerate_base`` the whole turn's
    (base and aligned answers).  So every draw of a turn is new, and with a fixed seed the same draws come again
    in the same order (no seed fixed: every draw is random anyway).  The record keeps n as its
    ``regenerations`` and the settings as given (the seed unmoved)."""
    return max(turn.regenerations, drawn) + 1


@dataclass
class _Kept:
    """A turn's base answer and λ decision: what ``regenerate()`` reuses."""

    base: str
    base_done: Finished | None
    decision: LambdaDecision | None
    base_timings: dict          # ``TurnTrace.base_timings()`` of the turn that made it
    base_finish: str = ""       # its finish reason ("stopped": cut by Stop)


class ChatSession:
    """A multi-turn conversation with SDA on one engine and one evaluator.  ``show_base``: every turn also
    generates the unsteered answer (the chat shows both side by side); off, it is generated only when the
    evaluator reads it."""

    def __init__(self, engine: Engine, evaluator: Evaluator, settings: TurnSettings | None = None, *,
                 inspect: int = 0, show_base: bool = True):
        self.engine = engine
        self.evaluator = evaluator
        self.settings = settings.check() if settings is not None else TurnSettings()  # (the defaults are valid)
        self.inspect = inspect  # k > 0: each aligned token records its step's top-k lists (the chat's inspector)
        self.show_base = show_base
        self.turns: list[TurnRecord] = []
        self._last: _Kept | None = None  # belongs to turns[-1]
        self._drawn = 0                  # the highest draw of turns[-1]'s other versions (``switch``)

    # -- history ---------------------------------------------------------------------------------------------
    def messages(self, upto: int | None = None, settings: TurnSettings | None = None) -> list[dict]:
        """The conversation as sent with the next prompt: the aligned answers of the turns that did not fail and
        were not interrupted (``settings``: whose system prompt; default the session's)."""
        turns = self.turns if upto is None else self.turns[:upto]
        history = [m for t in turns if t.finish_reason not in NOT_IN_HISTORY
                   for m in ({"role": "user", "content": t.user}, {"role": "assistant", "content": t.aligned})]
        return (settings or self.settings).messages(None, history)

    def clear(self) -> None:
        self.turns.clear()
        self._last, self._drawn = None, 0

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` turns (an edited message replaces turn n + 1 and what followed it)."""
        if n < len(self.turns):
            self.turns = self.turns[:max(0, n)]
            self._last, self._drawn = None, 0  # they belonged to a turn that is gone

    @property
    def kept(self) -> object | None:
        """What ``regenerate()`` reuses for the last turn (its base answer and λ decision); None: it needs a new
        turn.  Opaque: only handed back to ``switch``."""
        return self._last

    def switch(self, turns: list[TurnRecord], kept: object | None = None, *, drawn: int = 0) -> None:
        """Show ``turns`` instead (another version of a turn, the chat's ‹ ›); ``kept``: the ``kept`` the new last
        turn had when it was last, if any; ``drawn``: the highest draw (``regenerations``) among the new last turn's
        other versions, so that its next draw is none of theirs (``next_draw``)."""
        self.turns, self._last, self._drawn = list(turns), kept, drawn

    # -- turns -----------------------------------------------------------------------------------------------
    def send(self, text: str, settings: TurnSettings | None = None, *, keep_stopped: bool = True) -> Iterator:
        """Run one full turn.  Raises ``SdaError`` (before any event) for an empty or too-long message or bad
        settings (``answer`` checks them).  Closed early (stopped) once it has started, the turn is recorded with
        what it has ("stopped"), unless ``keep_stopped`` is False and its aligned answer had not started."""
        settings = settings or self.settings
        text = (text or "").strip()
        if not text:
            raise SdaError("the message is empty")
        msgs = self.messages(None, settings) + [{"role": "user", "content": text}]
        events = answer(self.engine, self.evaluator, msgs, settings,
                        base="always" if self.show_base else "auto", inspect=self.inspect)
        self.settings = settings
        return self._run(events, text, None, 0, keep_stopped)

    def regenerate(self, settings: TurnSettings | None = None) -> Iterator:
        """Resample the last turn's aligned answer, reusing its base answer and λ decision (its seed moved as
        ``next_draw`` says)."""
        if not self.turns or self._last is None:
            raise SdaError("nothing to regenerate yet")
        settings = settings or self.settings
        draw = next_draw(self.turns[-1], self._drawn)
        events = answer(self.engine, self.evaluator, self._again(settings), settings, decision=self._last.decision,
                        seed_offset=draw, inspect=self.inspect)
        self.settings = settings
        return self._redo(events, self._last, draw)

    def regenerate_base(self, settings: TurnSettings | None = None) -> Iterator:
        """Answer the last turn's message again from the start, through the same turn as ``send``: a new base
        answer (its whole seed moved as ``next_draw`` says), then the evaluator's score, λ and the aligned answer.
        The turn is out of ``turns`` while it runs; stopped before its new aligned answer started, it is put
        back as it was (and what ``regenerate`` reuses with it)."""
        if not self.turns:
            raise SdaError("nothing to regenerate yet")
        settings = settings or self.settings
        draw = next_draw(self.turns[-1], self._drawn)
        drawn = replace(settings, sampling=settings.sampling.with_seed_offset(draw))
        events = answer(self.engine, self.evaluator, self._again(settings), drawn,
                        base="always" if self.show_base else "auto", inspect=self.inspect)
        self.settings = settings
        return self._redo(events, None, draw)

    def _again(self, settings: TurnSettings) -> list[dict]:
        """The conversation the last turn answered: the history before it, then its message."""
        return self.messages(len(self.turns) - 1, settings) + [{"role": "user", "content": self.turns[-1].user}]

    def _redo(self, events, kept: _Kept | None, draw: int) -> Iterator:
        """A regeneration: the last turn is taken out while ``events`` run, and put back (with what it kept) when
        no new answer was recorded."""
        previous, last = self.turns.pop(), self._last
        n_kept = len(self.turns)
        completed = False
        try:
            yield from self._run(events, previous.user, kept, draw)
            completed = True
        finally:
            if not completed and len(self.turns) == n_kept:
                self.turns.append(previous)  # stopped before a new answer was recorded: keep the previous one
                self._last = last

    def _run(self, events, user: str, kept: _Kept | None, draw: int, keep_stopped: bool = False) -> Iterator:
        trace = TurnTrace()
        closed, error = False, None
        try:
            for ev in events:
                yield trace.see(ev)
        except GeneratorExit:  # stopped: what was generated so far is kept (below)
            closed = True
            raise
        except Exception as exc:  # the engine failed mid-answer: record it as an error, then raise
            error = f"the answer stopped with an error: {exc}"
            raise
        finally:
            events.close()
            # a stopped turn keeps its partial answers; a message stopped before its answer, the message
            if (trace.decision is not None and (trace.aligned_started or error)) or (closed and keep_stopped):
                record, last = self._record(user, trace, kept, draw, error)
                self._last = last if trace.decision is not None else None  # no λ yet: nothing to regenerate from
                self.turns.append(record)
                self._drawn = 0  # (its draw is above every other version's)
        yield TurnDone(self.turns[-1])

    def _record(self, user: str, trace: TurnTrace, kept: _Kept | None, draw: int,
                error: str | None) -> tuple[TurnRecord, _Kept]:
        if kept is None:
            b = trace.base
            base_finish = b.finish_reason if b else "stopped" if trace.base_pieces else ""
            base = strip_think(b.text if b else "".join(trace.base_pieces))
            kept = _Kept(base, b, trace.decision, trace.base_timings(), base_finish=base_finish)
        d = trace.decision
        finish = "error" if error else trace.aligned.finish_reason if trace.aligned else "stopped"
        tokens = [{"i": t.index, "text": t.text, "token_id": t.token_id, "js": t.js, "temperature": t.temperature,
                   "prob": t.prob, **({"top": t.top} if t.top is not None else {})} for t in trace.aligned_tokens]
        record = TurnRecord(user=user, base=kept.base, aligned=strip_think(trace.aligned_text()),
                            score=d.score.to_dict() if d is not None and d.score else None,
                            lam=d.lam if d else None, lam_source=d.source if d else "",
                            evaluator=self.evaluator.name,
                            warnings=(list(d.warnings) if d else []) + ([error] if error else []),
                            settings=self.settings.to_dict(), timings=trace.timings(kept.base_timings),
                            aligned_tokens=tokens, finish_reason=finish, regenerations=draw,
                            base_finish_reason=kept.base_finish)
        return record, kept

    # -- export / import -------------------------------------------------------------------------------------
    def export(self) -> dict:
        return {"format": "sda-local-chat/1", "model": self.engine.name, "evaluator": self.evaluator.name,
                "settings": self.settings.to_dict(), "turns": [t.to_dict() for t in self.turns],
                "messages": self.messages()}

    def load(self, data: dict) -> None:
        """Restore turns from ``export()`` output (the history; a regenerate needs a new turn first)."""
        if not isinstance(data, dict) or data.get("format") != "sda-local-chat/1":
            raise SdaError("not an sda-local chat export (format 'sda-local-chat/1' expected)")
        turns = data.get("turns")
        if not isinstance(turns, list):
            raise SdaError("the chat export is damaged: it has no list of turns")
        self.switch([TurnRecord.from_dict(t, "the chat export") for t in turns])
