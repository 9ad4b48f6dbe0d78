"""A conversation with SDA: the history of turns, regenerate, export — around the one turn (``turn.answer``).

    session = ChatSession(engine, evaluator, TurnSettings(preset=get_preset("harmlessness")))
    for ev in session.send("How do I pick a lock?"):
        ...   # the turn's events (turn.py), then TurnDone with the TurnRecord

The history (``messages()``) holds the aligned answers of the turns that did not fail.  The last turn's base
answer and λ decision are kept, so ``regenerate()`` resamples only the aligned answer.  A stopped turn keeps its
partial answer (``finish_reason`` "stopped": the user ended it, and the model should see what it said); an engine
error in the aligned answer is recorded (``finish_reason`` "error", the message in ``warnings``), kept out of the
history, and raised.  A turn saved while it ran and never finished (``finish_reason`` "interrupted": the app
stopped or the page went away; the chat's saved conversations) is shown but kept out of the history too: its
answer may be empty or cut anywhere, and nobody chose to keep it.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Iterator

from .errors import SdaError
from .judges import Evaluator, LambdaDecision
from .runtime.engine import Engine, Finished
from .turn import TurnSettings, answer, strip_think


INTERRUPTED = "interrupted"  # the finish reason of a turn saved while it ran that never finished
NOT_IN_HISTORY = ("error", INTERRUPTED)


@dataclass
class TurnRecord:
    """One finished turn, as kept in the session and exported."""

    user: str
    base: str
    aligned: str
    score: dict | None
    lam: float
    lam_source: str
    evaluator: str
    warnings: list[str]
    settings: dict
    timings: dict
    aligned_tokens: list[dict] = field(default_factory=list)  # per-token diagnostics (text, js, T, p; top lists)
    finish_reason: str = ""   # the engine's ("stop", "length", "context"), or "stopped" / "error" / "interrupted"
    regenerations: int = 0
    base_finish_reason: str = ""  # the base answer's ("length": cut at max tokens)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TurnDone:
    turn: TurnRecord
    kind: str = "done"


@dataclass
class _Kept:
    """A turn's base answer and λ decision: what ``regenerate()`` reuses."""

    base: str
    base_done: Finished | None
    decision: LambdaDecision
    base_s: float
    regenerations: int = 0


@dataclass
class _Watch:
    """What a turn's events showed so far: enough to record the turn however it ends."""

    t_start: float
    base_done: Finished | None = None
    base_s: float = 0.0
    decision: LambdaDecision | None = None
    t_lambda: float | None = None
    tokens: list[dict] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    done: Finished | None = None
    finish: str = "stopped"
    error: str | None = None
    ttft: float | None = None
    aligned: bool = False       # the aligned answer has started (a token or its end came)

    def see(self, ev) -> None:
        now = time.perf_counter() - self.t_start
        k = ev.kind
        if k == "phase_done" and ev.phase == "base":
            self.base_done, self.base_s = ev.finished, now
        elif k == "lambda":
            self.decision, self.t_lambda = ev.decision, now
        elif k == "aligned_token":
            self.aligned = True
            if self.ttft is None:
                self.ttft = now
            t = ev.token
            self.pieces.append(t.text)
            self.tokens.append({"i": t.index, "text": t.text, "token_id": t.token_id, "js": t.js,
                                "temperature": t.temperature, "prob": t.prob,
                                **({"top": t.top} if t.top is not None else {})})
        elif k == "phase_done":
            self.aligned = True
            self.done, self.finish = ev.finished, ev.finished.finish_reason


class ChatSession:
    """A multi-turn conversation with SDA on one engine and one evaluator.  ``show_base``: every turn also
    generates the unsteered answer (the chat shows both side by side); off, it is generated only when the
    evaluator reads it."""

    def __init__(self, engine: Engine, evaluator: Evaluator, settings: TurnSettings | None = None, *,
                 inspect: int = 0, show_base: bool = True):
        self.engine = engine
        self.evaluator = evaluator
        self.settings = (settings or TurnSettings()).check()
        self.inspect = inspect  # k > 0: each aligned token records its step's top-k lists (the chat's inspector)
        self.show_base = show_base
        self.turns: list[TurnRecord] = []
        self._last: _Kept | None = None  # belongs to turns[-1]

    # -- history ---------------------------------------------------------------------------------------------
    def messages(self, upto: int | None = None) -> list[dict]:
        """The conversation as sent with the next prompt: the aligned answers of the turns that did not fail and
        were not interrupted."""
        turns = self.turns if upto is None else self.turns[:upto]
        history = [m for t in turns if t.finish_reason not in NOT_IN_HISTORY
                   for m in ({"role": "user", "content": t.user}, {"role": "assistant", "content": t.aligned})]
        return self.settings.messages(None, history)

    def clear(self) -> None:
        self.turns.clear()
        self._last = None

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` turns (an edited message replaces turn n + 1 and what followed it)."""
        if n < len(self.turns):
            self.turns = self.turns[:max(0, n)]
            self._last = None  # it belonged to a turn that is gone

    @property
    def kept(self) -> object | None:
        """What ``regenerate()`` reuses for the last turn (its base answer and λ decision); None: it needs a new
        turn.  Opaque: only handed back to ``switch``."""
        return self._last

    def switch(self, turns: list[TurnRecord], kept: object | None = None) -> None:
        """Show ``turns`` instead (another version of a turn, the chat's ‹ ›); ``kept``: the ``kept`` the new last
        turn had when it was last, if any."""
        self.turns, self._last = list(turns), kept

    # -- turns -----------------------------------------------------------------------------------------------
    def send(self, text: str, settings: TurnSettings | None = None) -> Iterator:
        """Run one full turn.  Raises ``SdaError`` (before any event) for an empty or too-long message."""
        if settings is not None:
            self.settings = settings.check()
        text = (text or "").strip()
        if not text:
            raise SdaError("the message is empty")
        msgs = self.messages() + [{"role": "user", "content": text}]
        events = answer(self.engine, self.evaluator, msgs, self.settings,
                        base="always" if self.show_base else "auto", inspect=self.inspect)
        return self._run(events, text, None)

    def regenerate(self, settings: TurnSettings | None = None) -> Iterator:
        """Resample the last turn's aligned answer, reusing its base answer and λ decision."""
        if not self.turns or self._last is None:
            raise SdaError("nothing to regenerate yet")
        if settings is not None:
            self.settings = settings.check()
        kept = self._last
        msgs = self.messages(len(self.turns) - 1) + [{"role": "user", "content": self.turns[-1].user}]
        events = answer(self.engine, self.evaluator, msgs, self.settings, decision=kept.decision,
                        seed_offset=kept.regenerations + 1, inspect=self.inspect)
        return self._regenerate(events, kept)

    def _regenerate(self, events, kept: _Kept) -> Iterator:
        previous = self.turns.pop()
        n_kept = len(self.turns)
        completed = False
        try:
            yield from self._run(events, previous.user, kept)
            completed = True
        finally:
            if not completed and len(self.turns) == n_kept:
                self.turns.append(previous)  # stopped before a new answer was recorded: keep the previous one
                self._last = kept

    def _run(self, events, user: str, kept: _Kept | None) -> Iterator:
        w = _Watch(time.perf_counter())
        try:
            for ev in events:
                w.see(ev)
                yield ev
        except Exception as exc:  # the engine failed mid-answer: record it as an error, then raise
            w.finish, w.error = "error", f"the answer stopped with an error: {exc}"
            raise
        finally:
            events.close()
            if w.decision is not None and (w.aligned or w.error):  # a stopped turn keeps its partial answer
                record, self._last = self._record(user, w, kept)
                self.turns.append(record)
        yield TurnDone(self.turns[-1])

    def _record(self, user: str, w: _Watch, kept: _Kept | None) -> tuple[TurnRecord, _Kept]:
        if kept is None:
            base = strip_think(w.base_done.text) if w.base_done else ""
            kept = _Kept(base, w.base_done, w.decision, w.base_s)
        else:
            kept.regenerations += 1
        d, base_done = w.decision, kept.base_done
        t_end = time.perf_counter() - w.t_start
        aligned_s = t_end - (w.t_lambda or 0.0)
        n_aligned = w.done.n_tokens if w.done else len(w.tokens)
        # both answers decoded in one batch: λ came before the base answer ended (``turn.answer``'s together)
        together = w.base_done is not None and w.t_lambda is not None and w.t_lambda <= w.base_s
        timings = {"base_s": round(kept.base_s, 3), "judge_s": round(d.seconds, 3), "aligned_s": round(aligned_s, 3),
                   "total_s": round(t_end, 3), "together": together,
                   "first_aligned_token_s": None if w.ttft is None else round(w.ttft, 3),
                   "base_tokens": base_done.n_tokens if base_done else 0,
                   "base_tokens_per_s": round(base_done.tokens_per_second, 2) if base_done else None,
                   "aligned_tokens": n_aligned,
                   "aligned_tokens_per_s": round(w.done.tokens_per_second, 2) if w.done else
                   round(n_aligned / aligned_s, 2) if aligned_s > 0 else 0.0}
        text = w.done.text if w.done else "".join(w.pieces)
        record = TurnRecord(user=user, base=kept.base, aligned=strip_think(text),
                            score=d.score.to_dict() if d.score else None, lam=d.lam, lam_source=d.source,
                            evaluator=self.evaluator.name, warnings=list(d.warnings) + ([w.error] if w.error else []),
                            settings=self.settings.to_dict(), timings=timings, aligned_tokens=w.tokens,
                            finish_reason=w.finish, regenerations=kept.regenerations,
                            base_finish_reason=base_done.finish_reason if base_done else "")
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
        turns = []
        try:
            for t in data["turns"]:
                turns.append(TurnRecord(**{k: t[k] for k in TurnRecord.__dataclass_fields__ if k in t}))
        except (KeyError, TypeError) as exc:
            raise SdaError(f"the chat export is damaged: {exc}") from None
        self.turns = turns
        self._last = None
