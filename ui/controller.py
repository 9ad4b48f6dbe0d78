"""``ChatController``: every callback of the chat as a method, testable without Gradio.

Inputs come by name (the widgets' names: ``controls.CONTROL_NAMES`` for a turn's settings); each method returns
(or, for a turn, yields) a ``Reply``: new values for output widgets by name, and toasts.  No SDA math here:
``send``/``regenerate`` drive the session's ``ChatSession`` and turn its events (base tokens, score, λ, aligned
tokens, timings) into what the page shows.  ``app`` wires the methods to the widgets.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import weakref
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Iterator

from sda_local.errors import PromptTooLongError, SdaError
from sda_local.judges.factory import LOCAL_JUDGES
from sda_local.presets import all_presets, custom_preset, save_user_preset
from sda_local.session import TurnRecord

from . import plots
from .controls import CUSTOM, RESTORED_NAMES, Controls, preset_choices, restored_controls, saved_controls
from .conversations import Store
from .host import ModelHost
from .inspector import inspector_html
from .library import LibraryCallbacks, fallback_store, store_note, titled
from .pick import token_at
from .redraw import RedrawCallbacks
from .render import chat_html, strength_warning, timings_text
from .reply import KEEP, Choices, Reply, Visible, notice
from .state import LiveTurn, SessionState

log = logging.getLogger("sda_local.ui")

STREAM_INTERVAL_S = 0.08  # at most ~12 page updates a second while tokens arrive
SAVE_INTERVAL_S = 2.0     # while tokens arrive, the growing answer is saved at most every 2 s
FOLLOW_POLL_S = 0.05      # a reloaded page looks for new tokens of the answer it follows this often
FOLLOW_GRACE_S = 5.0      # and stops following one that ended without its status, after this long
EXPORT_DIR = Path(tempfile.gettempdir()) / "sda-local-exports"
TOKEN_EVENTS = ("base_token", "aligned_token")
BUSY = "an answer is still being generated; stop it or wait"
BUSY_SEND = ("an answer is still being generated: your message stays in the box — send it when this answer "
             "ends, or press Stop")

# The outputs of every callback that changes the conversation (send, regenerate, clear, import, open…).
TURN_OUTPUTS = ("state", "chat", "status", "message", "plot", "plot_summary", "table", "turn", "record",
                "inspector", "conv_pick", "conv_key", "conv_title")
# What a click in the conversation or the inspector (``act``: a token, "inspect tokens", a vote) may change.
ACT_OUTPUTS = ("state", "chat", "status", "message", "plot", "plot_summary", "table", "turn", "record", "inspector",
               "conv_pick", "conv_key", "conv_title")
# Opening a saved conversation also puts back the settings it was last answered with.
OPEN_OUTPUTS = TURN_OUTPUTS + RESTORED_NAMES
ARENA_HIDES = "Arena: vote on turn {n} first (its tokens would tell which answer is SDA's)."


class Ending(Enum):
    DONE = "done"
    STOPPED = "stopped"
    ERROR = "error"


def scrub(text: str, secret: str | None) -> str:
    """``text`` with the API key replaced by ``***``."""
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text


def record_summary(rec: TurnRecord) -> dict:
    d = rec.to_dict()
    d["aligned_tokens"] = len(rec.aligned_tokens)
    return d


def inspector_for(st: SessionState, n: int) -> str:
    """The token inspector for turn ``n`` (the token ``st.inspected`` names, if it is of that turn)."""
    rec = st.turns[n - 1]
    if st.arena_mode and st.arenas()[n - 1].get("vote") is None:
        return inspector_html(n, [], hidden_reason=ARENA_HIDES.format(n=n))
    token = st.inspected[1] if st.inspected and st.inspected[0] == n else None
    return inspector_html(n, rec.aligned_tokens, token)


def inspect_values(st: SessionState, turn_no: int | None = None) -> dict[str, Any]:
    """Plot, plot summary, token table, turn selector, record and token inspector of one turn (default: the one
    the inspector shows, else the last)."""
    turns = st.turns
    if not turns:
        return {"plot": plots.plot_frame([]), "plot_summary": "No turn yet.", "table": plots.table_rows([]),
                "turn": Choices([], None), "record": None, "inspector": inspector_html(None, [])}
    if turn_no is None:
        turn_no = st.inspected[0] if st.inspected and st.inspected[0] <= len(turns) else len(turns)
    n = max(1, min(int(turn_no), len(turns)))
    rec = turns[n - 1]
    # never None once the page has a plot: Gradio's LinePlot then drops its chart while its resize observer still
    # reads the chart's width ("Cannot read properties of null (reading 'offsetWidth')"); no rows: empty axes
    return {"plot": plots.plot_frame(rec.aligned_tokens),
            "plot_summary": f"Turn {n}: " + plots.summary(rec.aligned_tokens),
            "table": plots.table_rows(rec.aligned_tokens),
            "turn": Choices([str(i) for i in range(1, len(turns) + 1)], str(n)), "record": record_summary(rec),
            "inspector": inspector_for(st, n)}


def apply_event(live: LiveTurn, ev, key: str | None) -> str | None:
    """Show one turn event in the live turn; returns an evaluator warning (key scrubbed) to pop up."""
    kind = ev.kind
    if kind == "base_token":
        live.base += ev.token.text
    elif kind == "phase_done" and ev.phase == "base":
        live.base = ev.finished.text
        live.base_finish = ev.finished.finish_reason or ""
        if live.lam is None:  # a judge scores it next; with a λ already chosen both answers stream together
            live.phase = "judge"
    elif kind == "score":
        s = ev.score
        live.score = s.value
        live.score_detail = f"{s.evaluator}: {s.raw} ({s.latency_s:.2f} s)"
    elif kind == "warning":
        msg = scrub(ev.message, key)
        live.warnings.append(msg)
        return msg
    elif kind == "lambda":
        live.lam, live.lam_source = ev.lam, ev.source
        live.phase = "aligned"
    elif kind == "aligned_token":
        live.aligned += ev.token.text
    return None


def too_long_text(exc: PromptTooLongError) -> str:
    return (f"the message is too long for the model's context: {exc.n_prompt} tokens for the {exc.stream}, "
            f"the context holds {exc.n_ctx} per stream. Shorten it (or clear the chat, or restart with a "
            f"larger --n-ctx).")


class ChatController(LibraryCallbacks, RedrawCallbacks):
    """The chat's callbacks for one ``ModelHost``; per-session data lives in the ``SessionState`` passed in.
    ``store``: where conversations are saved (default: in memory, for this process only)."""

    def __init__(self, host: ModelHost, *, stream_interval_s: float = STREAM_INTERVAL_S,
                 save_interval_s: float = SAVE_INTERVAL_S, export_dir: Path = EXPORT_DIR, store: Store | None = None):
        self.host = host
        self.store = fallback_store(store)
        self.stream_interval_s = stream_interval_s
        self.save_interval_s = save_interval_s
        # conversation id → the session generating a turn of it: a tab reloaded meanwhile takes that session over
        self._running: weakref.WeakValueDictionary[str, SessionState] = weakref.WeakValueDictionary()
        self.export_dir = Path(export_dir)
        self.page_presets = preset_choices()  # the preset list the page is built with

    # -- replies ---------------------------------------------------------------------------------------------
    def _turn_reply(self, st: SessionState, status: str, *, message: str | None = None,
                    inspect: bool = True) -> Reply:
        """The conversation outputs; ``message`` None leaves the input box alone, ``inspect`` False the plot, the
        inspector and the conversation list (while tokens stream)."""
        reply = Reply(state=st, chat=chat_html(st), status=status)
        if message is not None:
            reply["message"] = message
        if inspect:
            reply.update(inspect_values(st))
            reply.update(self.library_values(st))
        return reply

    def _refuse(self, st: SessionState, status: str, message: str | None = None) -> Reply:
        """End a send/regenerate that did not start: a stop pressed meanwhile has nothing left to stop."""
        if st.live is not None and st.live.phase == "queued":
            st.live = None
        if st.live is None:
            st.pending = False
            st.stop.clear()
        return self._turn_reply(st, status, message=message)

    def _refusal(self, st: SessionState, exc: Exception, key: str | None, message: str | None = None) -> Reply:
        """The reply to a turn that could not start because of ``exc`` (called inside its ``except``)."""
        if isinstance(exc, PromptTooLongError):
            kind, msg = "Too long", too_long_text(exc)
        elif isinstance(exc, SdaError):
            kind, msg = "Error", scrub(str(exc), key)
        else:  # a bug or a llama.cpp failure: logged, shown, and the chat stays usable
            log.exception("turn failed to start")
            kind, msg = "Error", scrub(f"{type(exc).__name__}: {exc}", key)
        return self._refuse(st, notice(kind, msg), message).warn(msg)

    # -- turns -----------------------------------------------------------------------------------------------
    def begin_send(self, state: SessionState | None, message: str | None) -> Reply:
        """Runs at once (not queued), before ``send``: the message shows as waiting (while other tabs' answers
        are generated) and the input box is emptied for the next one.  While this tab's answer is on its way it
        is refused, and says so: the message stays in the box (``send`` then does nothing)."""
        st = state or SessionState()
        if self._busy(st):
            return Reply(state=st, status=notice("Busy", BUSY_SEND)).inform(BUSY_SEND)
        text = (message or "").strip()
        if not text:
            return Reply(state=st)  # ``send`` says it is empty
        if st.editing is not None and st.editing <= len(st.turns):
            st.fork(st.editing)  # an edited message: the turns before it, in a new conversation
        st.editing = None
        st.live = LiveTurn(user=text, phase="queued")
        return Reply(state=st, chat=chat_html(st), message="")

    def begin_regenerate(self, state: SessionState | None) -> Reply:
        """Runs at once, before ``regenerate``: the last turn shows as waiting for its new answer; refused (and
        said) while an answer is on its way."""
        st = state or SessionState()
        if self._busy(st):
            return Reply(state=st, status=notice("Busy", BUSY)).inform(BUSY)
        if st.turns:
            prev = st.turns[-1]
            st.live = LiveTurn(user=prev.user, base=prev.base, phase="queued", regenerating=True, previous=prev,
                               base_finish=prev.base_finish_reason)
        return Reply(state=st, chat=chat_html(st))

    @staticmethod
    def _busy(st: SessionState) -> bool:
        """Whether an answer of this tab is on its way; if not, a send/regenerate is (Stop can stop it while it
        waits)."""
        st.from_page = True
        busy = st.pending or st.live is not None
        if not busy:
            st.stop.clear()
            st.pending = True
        return busy

    def send(self, state: SessionState | None, message: str | None, **controls: Any) -> Iterator[Reply]:
        """One turn: base answer, score, λ, aligned answer, streamed.  ``controls``: see ``CONTROL_NAMES``.
        From the page the message comes through ``begin_send`` (the box is empty by now); from the API here."""
        st = state or SessionState()
        queued = st.live if st.live is not None and st.live.phase == "queued" and not st.live.regenerating else None
        typed = (message or "").strip()
        if st.from_page and typed and queued is None:
            yield Reply()  # ``begin_send`` refused it (said so, and kept it in the box): nothing to do
            return
        st.pending = False
        ctrl = Controls.from_named(controls)
        key = ctrl.openai_api_key
        text = typed or (queued.user if queued is not None else "")
        box = "" if typed else None  # an API call's message box is emptied; the page's already is
        if not text:
            yield self._refuse(st, notice("Notice", "the message is empty, nothing was sent")).inform(
                "Empty message: nothing was sent.")
            return
        if st.live is not None and queued is None:
            yield self._refuse(st, notice("Notice", BUSY), message)
            return
        try:
            settings = ctrl.settings()
            chat = st.session(self.host)
            chat.evaluator = self.host.evaluator(ctrl.evaluator_spec())
            events = chat.send(text, settings)
            st.controls = saved_controls(controls)
        except Exception as exc:
            yield self._refusal(st, exc, key, message if typed else text)  # back into the box, to be changed
            return
        st.live = LiveTurn(user=text)
        yield from self._run(st, events, key, "Done", message=box)

    def regenerate(self, state: SessionState | None, **controls: Any) -> Iterator[Reply]:
        """Sample the last aligned answer again, reusing its base answer and score."""
        st = state or SessionState()
        queued = st.live is not None and st.live.phase == "queued" and st.live.regenerating and not st.live.fresh_base
        if st.from_page and not queued and st.turns:
            yield Reply()  # ``begin_regenerate`` refused it (and said so): nothing to do
            return
        st.pending = False
        ctrl = Controls.from_named(controls)
        key = ctrl.openai_api_key
        if st.live is not None and st.live.phase != "queued":
            yield self._refuse(st, notice("Notice", BUSY))
            return
        try:
            settings = ctrl.settings()
        except Exception as exc:
            yield self._refusal(st, exc, key)
            return
        chat = st.session(self.host)
        previous = chat.turns[-1] if chat.turns else None
        try:
            events = chat.regenerate(settings)
        except SdaError as exc:  # the settings are checked above: what is left is "no turn to regenerate"
            msg = (f"{exc}: send a message first (after an import or a model switch, or a message stopped before "
                   f"its λ was chosen, regenerate needs a new turn; Regenerate base answers the last message anew)")
            yield self._refuse(st, notice("Notice", msg)).inform(msg)
            return
        st.controls = saved_controls(controls)
        st.begin_version(chat.kept)  # the answer it replaces stays, as an older version of the turn
        st.live = LiveTurn(user=previous.user, base=previous.base, phase="aligned", regenerating=True,
                           previous=previous, base_finish=previous.base_finish_reason)
        yield from self._run(st, events, key, "Regenerated")

    def _start(self, st: SessionState, message: str | None) -> Reply:
        """A turn starts: the message is saved (the conversation gets its id here), the input box emptied."""
        unsaved = self._persist(st)
        if st.conv_id is not None:
            self._running[st.conv_id] = st
        reply = self._turn_reply(st, "", message=message, inspect=False)
        reply.update(self.library_values(st))  # the tab keeps the new conversation's id at once
        return reply.warn(unsaved) if unsaved else reply

    def _run(self, st: SessionState, events, key: str | None, verb: str,
             message: str | None = None) -> Iterator[Reply]:
        """Feed turn events into ``st.live`` (``_feed``) and yield page updates; always leaves the chat usable.
        When the page goes away mid-turn (Gradio closes this generator): a page's turn goes on in a thread of its
        own (``ModelHost.detach``), saved as it grows, and a reloaded page follows it (``follow``); a turn run
        through the API alone ends there, what was generated saved."""
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
        for _ in feed:  # the rest of the turn, with nobody to show it to (``follow`` shows it to a reloaded page)
            pass

    def _stream_reply(self, st: SessionState, warning: str) -> Reply:
        """A page update while tokens arrive; the status line is left alone (a notice such as "still being
        generated" or "Stopping" stays up until the turn ends)."""
        with st.guard:
            reply = self._turn_reply(st, "", inspect=False)
        del reply["status"]
        return reply.warn(warning) if warning else reply

    def _feed(self, st: SessionState, events, key: str | None, verb: str, message: str | None):
        """The turn itself: yields the first and the last ``Reply``, and between them, when the page should be
        redrawn, a warning to pop up ("" for none).  The turn is saved as it grows (at each phase, and every
        ``save_interval_s`` while tokens arrive); closed (the page went away, an API call cancelled), what was
        generated is saved before it ends."""
        before = st.turns[-1] if st.turns else None
        done: TurnRecord | None = None
        ending, error = Ending.DONE, ""
        last_view, last_save, unsaved = 0.0, time.monotonic(), None
        live = st.live  # (set by the caller) its ``ended`` tells a page following the turn that it is over
        try:
            yield self._start(st, message)
            self.host.wait_detached()  # a turn still going on for a page that went away comes first
            for ev in events:
                if st.stop.is_set():
                    ending = Ending.STOPPED
                    break
                if ev.kind == "done":
                    done = ev.turn
                    continue
                with st.guard:
                    warning = apply_event(st.live, ev, key)
                    if ev.kind == "lambda":
                        warning = warning or strength_warning(st.chat.settings.sampling.k, ev.lam) or None
                    now = time.monotonic()
                    if ev.kind not in TOKEN_EVENTS or now - last_save >= self.save_interval_s:
                        last_save, failed = now, self._persist(st)
                        if failed and not unsaved:  # a database that fails is said once a turn (and at its end)
                            warning = warning or failed
                        unsaved = unsaved or failed
                if ev.kind not in TOKEN_EVENTS or now - last_view >= self.stream_interval_s or warning:
                    last_view = now
                    yield warning or ""
        except GeneratorExit:
            self._abandon(st, events, before)
            live.ended = notice("Stopped", "the request for this answer went away; what was generated is kept")
            raise
        except SdaError as exc:
            ending, error = Ending.ERROR, scrub(str(exc), key)
        except Exception as exc:  # a bug or a llama.cpp failure mid-answer: say so, keep the app alive
            log.exception("turn failed")
            ending, error = Ending.ERROR, scrub(f"{type(exc).__name__}: {exc}", key)
        finally:
            events.close()  # a stopped turn keeps what was generated so far (the turn records it)
            with st.guard:
                st.live = None
                st.end_regeneration()
                st.pending = False
                st.stop.clear()
        with st.guard:
            if ending is Ending.DONE and done is None:
                ending = Ending.STOPPED
            st.inspected = None  # the inspector moves to the new answer
            unsaved = self._persist(st)
            status = self._ending_status(st, ending, before, done, error, verb, live.previous)
            reply = self._turn_reply(st, status)
            live.ended = status  # a page following this turn (``follow``) ends with this status
        for text in (error, unsaved):
            if text:
                reply.warn(text)
        yield reply

    def follow(self, state: SessionState | None) -> Iterator[Reply]:
        """A reloaded page whose conversation is still being answered (``on_load`` gave it that session) shows the
        answer as it grows, until it ends (Stop on this page ends it); otherwise nothing to do."""
        live = state.live if state is not None else None
        if live is None or live.phase == "queued":
            yield Reply()
            return
        seen, gone = None, None
        while live.ended is None:
            if state.live is not live:  # over, and its status should follow at once; a turn that failed to say so
                gone = gone or time.monotonic()  # is not waited for long
                if time.monotonic() - gone > FOLLOW_GRACE_S:
                    break
            now = (live.phase, len(live.base), len(live.aligned), live.lam, len(live.warnings))
            if now != seen:
                seen = now
                with state.guard:
                    reply = self._turn_reply(state, "", inspect=False)
                del reply["status"]  # the page keeps saying that it resumed the answer
                yield reply
            time.sleep(max(self.stream_interval_s, FOLLOW_POLL_S))
        with state.guard:
            reply = self._turn_reply(state, live.ended or "")
        yield reply

    def _abandon(self, st: SessionState, events, before: TurnRecord | None) -> None:
        """The turn was closed mid-way (an API call that went away): end it and save it (recorded if it had
        started, else as the interrupted turn it is)."""
        events.close()
        with st.guard:
            if st.turns and st.turns[-1] is not before:
                st.live = None  # recorded: the record replaces the live turn
            unsaved = self._persist(st)
        if unsaved:
            log.warning("an abandoned turn was not saved: %s", unsaved)

    @staticmethod
    def _ending_status(st: SessionState, ending: Ending, before: TurnRecord | None, done: TurnRecord | None,
                       error: str, verb: str, previous: TurnRecord | None = None) -> str:
        """The status line of a turn that ended (``previous``: the record a regeneration was to replace)."""
        if ending is Ending.ERROR:
            return notice("Error", error + " — the chat is still usable")
        if ending is Ending.STOPPED:
            last = st.turns[-1] if st.turns else None
            if last is None or last is before or last is previous or last.finish_reason != "stopped":
                return notice("Stopped", "before the new answer started; the turn is as it was")
            if last.aligned:
                return notice("Stopped", "the partial answer was kept")
            return notice("Stopped", "before the aligned answer started; your message was kept" +
                          (" with the partial base answer" if last.base else ""))
        return f"{verb} · λ = {done.lam:.3f} ({done.lam_source}) · {timings_text(done.timings)}"

    def stop(self, state: SessionState | None) -> Reply:
        if state is not None and (state.pending or state.live is not None):
            state.stop.set()
            return Reply(status=notice("Stopping", "the answer ends after the current token"))
        return Reply(status=notice("Notice", "nothing is being generated"))

    def clear(self, state: SessionState | None) -> Reply:
        """A new, empty conversation (the previous one stays saved, in the list)."""
        return self.new_conversation(state)

    # -- view ------------------------------------------------------------------------------------------------
    @staticmethod
    def toggle_base(state: SessionState | None, show: bool | None) -> Reply:
        st = state or SessionState()
        st.show_base = bool(show)
        return Reply(state=st, chat=chat_html(st))

    @staticmethod
    def inspect_turn(state: SessionState | None, turn: str | int | None) -> Reply:
        st = state or SessionState()
        if turn and st.turns:
            st.inspected = (max(1, min(int(turn), len(st.turns))), None)
        values = inspect_values(st, int(turn) if turn else None)
        return Reply({k: values[k] for k in ("plot", "plot_summary", "table", "inspector")})

    def toggle_arena(self, state: SessionState | None, arena: bool | None) -> Reply:
        st = state or SessionState()
        st.arena_mode = bool(arena)
        return Reply(state=st, chat=chat_html(st), inspector=inspect_values(st)["inspector"])

    def act(self, state: SessionState | None, action: str | None) -> Reply:
        """A click in the page: ``tok TURN I`` (a token: its top-5 lists), ``word TURN N`` (the token behind the
        N-th visible character of that turn's aligned answer: ``pick.token_at``), ``turn TURN`` (inspect that
        turn's tokens), ``edit TURN`` (edit its message), ``vote TURN A|B|tie`` (arena) or ``version TURN N`` (‹ ›:
        show that version of the turn); a trailing word (the page's click time) is ignored."""
        st = state or SessionState()
        parts = (action or "").split()
        try:
            kind, turn_no = parts[0], int(parts[1])
            token = int(parts[2]) if kind in ("tok", "word") else None
        except (IndexError, ValueError):
            return Reply(status=notice("Notice", "that click did not name a turn"))
        if kind == "vote" and len(parts) > 2:
            return self._vote(st, turn_no, parts[2])
        if kind == "version" and len(parts) > 2 and parts[2].isdigit():
            return self._show_version(st, turn_no, int(parts[2]))
        if kind == "edit" and 1 <= turn_no <= len(st.turns):
            return self._edit(st, turn_no)
        if kind not in ("tok", "turn", "word") or not 1 <= turn_no <= len(st.turns):
            return Reply(status=notice("Notice", "that turn is not in this chat"))
        if kind == "word":
            rec = st.turns[turn_no - 1]
            token = token_at(rec.aligned_tokens, rec.aligned, token)
        st.inspected = (turn_no, token)
        return Reply(state=st, **inspect_values(st, turn_no))

    @staticmethod
    def _edit(st: SessionState, turn_no: int) -> Reply:
        """Edit the message of turn ``turn_no``: it goes back into the box; the next send replaces that turn and
        what followed, in a copy of the conversation (``SessionState.fork``)."""
        if st.live is not None:
            return Reply(status=notice("Notice", "stop the current answer before editing a message"))
        st.editing = turn_no
        later = len(st.turns) - turn_no
        also = f" and the {later} turn(s) after it" if later else ""
        return Reply(state=st, message=st.turns[turn_no - 1].user, status=notice(
            "Editing", f"message {turn_no}: change it and send. It replaces turn {turn_no}{also} in a copy of this "
                       f"chat; the original stays in Conversations."))

    def on_load(self, conv_key: str | None = None) -> Reply:
        """A page (re)opens: a new session, which resumes the conversation its browser tab had (``conv_key``,
        kept in the tab's sessionStorage) if it is saved (a turn cut short by a crash or a restart shows as
        interrupted), or the session still answering in it (a reload mid-turn); the current model; and the
        presets saved since the page was built (the dropdown is left alone when there are none: re-rendering it
        could close it under the pointer)."""
        st, status = self._resume(conv_key)
        with st.guard:
            reply = self._turn_reply(st, status)
        reply.update(restored_controls(st.controls))  # the settings the conversation was last answered with
        reply.update(model_info=self.host.describe(), db_info=store_note(self.store))
        choices = preset_choices()
        if choices != self.page_presets:
            reply["preset"] = Choices(choices, reply.get("preset", KEEP))
        if not self.store.persistent and getattr(self.store, "problem", ""):
            reply.warn(self.store.problem)
        return reply

    def _resume(self, conv_key: str | None) -> tuple[SessionState, str]:
        """The session a (re)opened tab gets: while an answer of its conversation is still being generated (a
        reload mid-answer), that very session (``follow`` then shows the answer as it grows); else its saved
        conversation."""
        running = self._running.get(conv_key) if conv_key else None
        if running is not None and running.live is not None and running.live.phase != "queued":
            return running, notice("Resumed", f"{titled(running)} — an answer is still being generated; it goes on "
                                              f"here (Stop ends it)")
        st = SessionState()
        if not conv_key:
            return st, ""
        try:
            self._open(st, conv_key)
        except SdaError:  # deleted meanwhile, or the database is not there: start afresh
            st.forget()
            return st, ""
        return st, notice("Resumed", titled(st))

    # -- files -----------------------------------------------------------------------------------------------
    def export_chat(self, state: SessionState | None, openai_api_key: str | None = None) -> Reply:
        st = state or SessionState()
        if not st.turns:
            return Reply(export_file=None, status=notice("Notice", "nothing to export yet")).inform(
                "Nothing to export yet.")
        data = st.data()
        data["exported_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        data["app"] = "sda-local chat"
        text = scrub(json.dumps(data, ensure_ascii=False, indent=2), openai_api_key)
        self.export_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        fd, path = tempfile.mkstemp(prefix=f"sda-chat-{stamp}-", suffix=".json", dir=self.export_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return Reply(export_file=path,
                     status=notice("Exported", f"{len(st.turns)} turn(s) — download the JSON file below"))

    def import_chat(self, state: SessionState | None, file) -> Reply:
        st = state or SessionState()
        if st.live is not None:
            return self._turn_reply(st, notice("Notice", "stop the current answer before importing"))
        if not file:
            return self._turn_reply(st, notice("Notice", "no file was given"))
        path = Path(file if isinstance(file, str) else getattr(file, "name", str(file)))
        st.session(self.host)
        before = st.snapshot()
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            msg = f"cannot read that file as JSON ({type(exc).__name__}: {exc})"
            return self._turn_reply(st, notice("Import failed", msg)).warn(msg)
        try:
            st.restore(self.host, data, None, "")  # a new conversation, saved under a new id
            chat_html(st), inspect_values(st)  # fields of the wrong type fail here, not in the page
        except Exception as exc:  # SdaError: not an export; anything else: turns holding values of the wrong type
            st.rewind(before)
            msg = str(exc) if isinstance(exc, SdaError) else f"the chat export is damaged ({type(exc).__name__}: {exc})"
            return self._turn_reply(st, notice("Import failed", msg)).warn(msg)
        unsaved = self._persist(st)
        reply = self._turn_reply(st, notice("Imported", f"{len(st.turns)} turn(s) from {path.name}"))
        return reply.warn(unsaved) if unsaved else reply

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
        return Reply(local_box=Visible(evaluator in LOCAL_JUDGES), openai_box=Visible(evaluator == "openai"),
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
