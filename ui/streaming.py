"""A turn's events on the page (``TurnStream``): each event shown in the live turn (``apply_event``), the page
redrawn at most every ``stream_interval_s`` while tokens arrive, the turn saved as it grows, and one last reply
with the turn's status when it ends (done, stopped, or an error: the chat stays usable either way).

When the page goes away mid-turn (Gradio closes the generator): a page's turn goes on in a thread of its own
(``ModelHost.detach``), saved as it grows, and a reloaded page follows it (``ui.reload``); a turn run through the
API alone ends there, what was generated saved.
"""
from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass
from enum import Enum
from typing import Iterator

from sda_local.errors import PromptTooLongError, SdaError
from sda_local.session import TurnDone, TurnRecord
from sda_local.turn import AlignedToken, BaseToken, EvaluatorWarning, LambdaChosen, PhaseDone, Scored

from .host import ModelHost
from .render import strength_warning, timings_text
from .reply import Reply, notice
from .shelf import Shelf
from .state import LiveTurn, SessionState
from .views import scrub, turn_reply

log = logging.getLogger("sda_local.ui")

STREAM_INTERVAL_S = 0.08  # at most ~12 page updates a second while tokens arrive
SAVE_INTERVAL_S = 2.0     # while tokens arrive, the growing answer is saved at most every 2 s
TOKEN_EVENTS = (BaseToken, AlignedToken)  # the events that come many times a second (redraws are throttled)


class Ending(Enum):
    DONE = "done"
    STOPPED = "stopped"
    ERROR = "error"


def apply_event(live: LiveTurn, ev, key: str | None) -> str | None:
    """Show one turn event in the live turn (and fold it into its ``trace``); returns an evaluator warning (key
    scrubbed) to pop up."""
    live.trace.see(ev)
    match ev:
        case BaseToken(token=tok):
            live.base += tok.text
        case PhaseDone(phase="base", finished=done):
            live.base = done.text
            live.base_finish = done.finish_reason or ""
            if live.lam is None:  # a judge scores it next; with a λ already chosen both answers stream together
                live.phase = "judge"
        case Scored(score=s):
            live.score = s.value
            live.score_detail = f"{s.evaluator}: {s.raw} ({s.latency_s:.2f} s)"
        case EvaluatorWarning(message=message):
            msg = scrub(message, key)
            live.warnings.append(msg)
            return msg
        case LambdaChosen(lam=lam, source=source):
            live.lam, live.lam_source = lam, source
            live.phase = "aligned"
        case AlignedToken(token=tok):
            live.aligned += tok.text
    return None


def too_long_text(exc: PromptTooLongError) -> str:
    return (f"the message is too long for the model's context: {exc.n_prompt} tokens for the {exc.stream}, "
            f"the context holds {exc.n_ctx} per stream. Shorten it (or clear the chat, or restart with a "
            f"larger --n-ctx).")


@dataclass
class Outcome:
    """How a turn ended, as the stream learns it."""

    ending: Ending = Ending.DONE
    error: str = ""
    done: TurnRecord | None = None   # the record ``TurnDone`` brought
    unsaved: str | None = None       # a save that failed while the turn ran (said once)


def ending_status(st: SessionState, out: Outcome, before: TurnRecord | None, verb: str,
                  previous: TurnRecord | None = None) -> str:
    """The status line of a turn that ended (``before``: the last turn when it started; ``previous``: the record
    a regeneration was to replace)."""
    if out.ending is Ending.ERROR:
        return notice("Error", out.error + " — the chat is still usable")
    if out.ending is Ending.STOPPED:
        last = st.turns[-1] if st.turns else None
        if last is None or last is before or last is previous or last.finish_reason != "stopped":
            return notice("Stopped", "before the new answer started; the turn is as it was")
        if last.aligned:
            return notice("Stopped", "the partial answer was kept")
        return notice("Stopped", "before the aligned answer started; your message was kept" +
                      (" with the partial base answer" if last.base else ""))
    done = out.done
    return f"{verb} · λ = {done.lam:.3f} ({done.lam_source}) · {timings_text(done.timings)}"


class TurnStream:
    """Runs the turns of every session on ``host``'s model, saving them on ``shelf``; remembers which session is
    generating a turn of which conversation (a tab reloaded meanwhile takes that session over: ``running``)."""

    def __init__(self, host: ModelHost, shelf: Shelf, *, stream_interval_s: float = STREAM_INTERVAL_S,
                 save_interval_s: float = SAVE_INTERVAL_S):
        self.host, self.shelf = host, shelf
        self.stream_interval_s = stream_interval_s
        self.save_interval_s = save_interval_s
        # conversation id → the session generating a turn of it
        self._running: weakref.WeakValueDictionary[str, SessionState] = weakref.WeakValueDictionary()

    def running(self, conv_key: str | None) -> SessionState | None:
        """The session whose answer in conversation ``conv_key`` is still being generated, if any."""
        st = self._running.get(conv_key) if conv_key else None
        return st if st is not None and st.live is not None and st.live.phase != "queued" else None

    def run(self, st: SessionState, events, key: str | None, verb: str,
            message: str | None = None) -> Iterator[Reply]:
        """Feed turn events into ``st.live`` (set by the caller) and yield page updates; always leaves the chat
        usable.  ``key``: the API key to scrub from what is shown; ``verb``: the status of a turn that ended
        ("Done", "Regenerated"…); ``message``: the input box's new value (None: left alone)."""
        feed = self._feed(st, events, key, verb, message)
        try:
            for item in feed:
                yield item if isinstance(item, Reply) else self._stream_reply(st, item)
        except GeneratorExit:
            if st.from_page and st.live is not None:
                self.host.detach(lambda: self._drain(feed), st.stop)
            else:
                feed.close()
            raise

    @staticmethod
    def _drain(feed) -> None:
        for _ in feed:  # the rest of the turn, with nobody to show it to (a reloaded page follows it)
            pass

    def _stream_reply(self, st: SessionState, warning: str) -> Reply:
        """A page update while tokens arrive; the status line is left alone (a notice such as "still being
        generated" or "Stopping" stays up until the turn ends)."""
        with st.guard:
            reply = turn_reply(st, "", self.shelf, inspect=False)
        del reply["status"]
        return reply.warn(warning) if warning else reply

    def _start(self, st: SessionState, message: str | None) -> Reply:
        """A turn starts: the message is saved (the conversation gets its id here), the input box emptied."""
        unsaved = self.shelf.persist(st)
        if st.conv_id is not None:
            self._running[st.conv_id] = st
        reply = turn_reply(st, "", self.shelf, message=message, inspect=False)
        reply.update(self.shelf.values(st))  # the tab keeps the new conversation's id at once
        return reply.warn(unsaved) if unsaved else reply

    def _feed(self, st: SessionState, events, key: str | None, verb: str, message: str | None):
        """The turn itself: yields the first and the last ``Reply``, and between them, when the page should be
        redrawn, a warning to pop up ("" for none).  Closed (the page went away, an API call cancelled), what was
        generated is saved before it ends."""
        before = st.turns[-1] if st.turns else None
        out = Outcome()
        live = st.live  # its ``ended`` tells a page following the turn that it is over
        try:
            yield self._start(st, message)
            self.host.wait_detached()  # a turn still going on for a page that went away comes first
            yield from self._events(st, events, key, out)
        except GeneratorExit:
            self._abandon(st, events, before)
            live.ended = notice("Stopped", "the request for this answer went away; what was generated is kept")
            raise
        except SdaError as exc:
            out.ending, out.error = Ending.ERROR, scrub(str(exc), key)
        except Exception as exc:  # a bug or a llama.cpp failure mid-answer: say so, keep the app alive
            log.exception("turn failed")
            out.ending, out.error = Ending.ERROR, scrub(f"{type(exc).__name__}: {exc}", key)
        finally:
            events.close()  # a stopped turn keeps what was generated so far (the turn records it)
            with st.guard:
                st.live = None
                st.end_regeneration()
                st.pending = False
                st.stop.clear()
        yield self._end(st, out, before, live, verb)

    def _events(self, st: SessionState, events, key: str | None, out: Outcome) -> Iterator[str]:
        """Each event into the live turn; the turn saved at each phase and every ``save_interval_s`` while tokens
        arrive; yields a warning ("" for none) whenever the page should be redrawn."""
        last_view, last_save = 0.0, time.monotonic()
        for ev in events:
            if st.stop.is_set():
                out.ending = Ending.STOPPED
                return
            if isinstance(ev, TurnDone):
                out.done = ev.turn
                continue
            token = isinstance(ev, TOKEN_EVENTS)
            with st.guard:
                warning = apply_event(st.live, ev, key)
                if isinstance(ev, LambdaChosen):
                    warning = warning or strength_warning(st.chat.settings.sampling.k, ev.lam) or None
                now = time.monotonic()
                if not token or now - last_save >= self.save_interval_s:
                    last_save, failed = now, self.shelf.persist(st)
                    if failed and not out.unsaved:  # a database that fails is said once a turn (and at its end)
                        warning = warning or failed
                    out.unsaved = out.unsaved or failed
            if not token or now - last_view >= self.stream_interval_s or warning:
                last_view = now
                yield warning or ""

    def _end(self, st: SessionState, out: Outcome, before: TurnRecord | None, live: LiveTurn, verb: str) -> Reply:
        """The last reply of a turn: saved, with its status (also told to a page following it)."""
        with st.guard:
            if out.ending is Ending.DONE and out.done is None:
                out.ending = Ending.STOPPED
            st.inspected = None  # the inspector moves to the new answer
            unsaved = self.shelf.persist(st)
            status = ending_status(st, out, before, verb, live.previous)
            reply = turn_reply(st, status, self.shelf)
            live.ended = status  # a page following this turn ends with this status
        for text in (out.error, unsaved):
            if text:
                reply.warn(text)
        return reply

    def _abandon(self, st: SessionState, events, before: TurnRecord | None) -> None:
        """The turn was closed mid-way (an API call that went away): end it and save it (recorded if it had
        started, else as the interrupted turn it is)."""
        events.close()
        with st.guard:
            if st.turns and st.turns[-1] is not before:
                st.live = None  # recorded: the record replaces the live turn
            unsaved = self.shelf.persist(st)
        if unsaved:
            log.warning("an abandoned turn was not saved: %s", unsaved)
