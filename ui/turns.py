"""The turns of the chat (``Turns``): send, Regenerate aligned, Regenerate base and Stop.

Each runs in two steps from the page: ``begin_*`` at once (not queued: the message shows as waiting, the box is
emptied, or the click is refused while this tab's answer is on its way), then the queued step, which starts the
turn on the session's ``ChatSession`` (``send``, ``regenerate``, ``regenerate_base``: the SDA turn and the seed
rule are the session's) and streams it through ``TurnStream``.  A regeneration keeps the answer it replaces as an
older version of the turn (``ui.versions``).
"""
from __future__ import annotations

import logging
from typing import Any, Iterator

from sda_local.errors import PromptTooLongError, SdaError

from .controls import Controls, saved_controls
from .host import ModelHost
from .render import chat_html
from .reply import Reply, notice
from .shelf import Shelf
from .state import LiveTurn, SessionState
from .streaming import TurnStream, too_long_text
from .views import scrub, turn_reply

log = logging.getLogger("sda_local.ui")

BUSY = "an answer is still being generated; stop it or wait"
BUSY_SEND = ("an answer is still being generated: your message stays in the box — send it when this answer "
             "ends, or press Stop")
NOTHING = "send a message first: there is no turn to regenerate"
NO_ALIGNED = ("nothing to regenerate yet: send a message first (after an import or a model switch, or a message "
              "stopped before its λ was chosen, regenerate needs a new turn; Regenerate base answers the last "
              "message anew)")


class Turns:
    """The turn callbacks, on ``host``'s model; turns are streamed by ``stream`` and saved on ``shelf``."""

    def __init__(self, host: ModelHost, shelf: Shelf, stream: TurnStream):
        self.host, self.shelf, self.stream = host, shelf, stream

    # -- the immediate step ----------------------------------------------------------------------------------
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
        return self._begin_again(state, fresh_base=False)

    def begin_regenerate_base(self, state: SessionState | None) -> Reply:
        """Runs at once, before ``regenerate_base``: the last turn shows as waiting for its new answers; refused
        (and said) while an answer is on its way."""
        return self._begin_again(state, fresh_base=True)

    def _begin_again(self, state: SessionState | None, fresh_base: bool) -> Reply:
        st = state or SessionState()
        if self._busy(st):
            return Reply(state=st, status=notice("Busy", BUSY)).inform(BUSY)
        if st.turns:
            prev = st.turns[-1]
            st.live = LiveTurn(user=prev.user, base="" if fresh_base else prev.base, phase="queued",
                               regenerating=True, previous=prev, fresh_base=fresh_base,
                               base_finish="" if fresh_base else prev.base_finish_reason)
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

    # -- the queued step -------------------------------------------------------------------------------------
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
        except Exception as exc:
            yield self._refusal(st, exc, key, message if typed else text)  # back into the box, to be changed
            return
        st.controls = saved_controls(controls)
        st.live = LiveTurn(user=text)
        box = "" if typed else None  # an API call's message box is emptied; the page's already is
        yield from self.stream.run(st, events, key, "Done", message=box)

    def _claim(self, st: SessionState, queued: bool, controls: dict) -> Controls | Reply:
        """A regeneration's controls, or the reply that does not start it: nothing when its ``begin_*`` step
        already refused it (and said so), a notice while another answer is on its way."""
        if not self._taken(st, queued):
            return Reply()
        if st.live is not None and st.live.phase != "queued":
            return self._refuse(st, notice("Notice", BUSY))
        return Controls.from_named(controls)

    def regenerate(self, state: SessionState | None, **controls: Any) -> Iterator[Reply]:
        """Sample the last aligned answer again, reusing its base answer and score."""
        st = state or SessionState()
        queued = st.live is not None and st.live.phase == "queued" and st.live.regenerating and not st.live.fresh_base
        ctrl = self._claim(st, queued, controls)
        if isinstance(ctrl, Reply):
            yield ctrl
            return
        key = ctrl.openai_api_key
        chat = st.session(self.host)
        if not chat.turns or chat.kept is None:
            yield self._refuse(st, notice("Notice", NO_ALIGNED)).inform(NO_ALIGNED)
            return
        previous = chat.turns[-1]
        try:
            events = chat.regenerate(ctrl.settings())
        except Exception as exc:
            yield self._refusal(st, exc, key)
            return
        st.controls = saved_controls(controls)
        st.begin_version(chat.kept)  # the answer it replaces stays, as an older version of the turn
        st.live = LiveTurn(user=previous.user, base=previous.base, phase="aligned", regenerating=True,
                           previous=previous, base_finish=previous.base_finish_reason)
        yield from self.stream.run(st, events, key, "Regenerated")

    def regenerate_base(self, state: SessionState | None, **controls: Any) -> Iterator[Reply]:
        """Draw the last turn's base answer again, then score, λ and aligned answer (``ChatSession.regenerate_base``:
        a fixed seed gives a new draw that a rerun reproduces); the old answers stay as a version of the turn.
        ``controls``: see ``CONTROL_NAMES``."""
        st = state or SessionState()
        queued = st.live is not None and st.live.phase == "queued" and st.live.fresh_base
        ctrl = self._claim(st, queued, controls)
        if isinstance(ctrl, Reply):
            yield ctrl
            return
        key = ctrl.openai_api_key
        if not st.turns:
            yield self._refuse(st, notice("Notice", NOTHING)).inform(NOTHING[0].upper() + NOTHING[1:] + ".")
            return
        try:
            settings = ctrl.settings()
            chat = st.session(self.host)
            chat.evaluator = self.host.evaluator(ctrl.evaluator_spec())
            previous = chat.turns[-1]
            events = chat.regenerate_base(settings)
        except Exception as exc:
            yield self._refusal(st, exc, key)
            return
        st.controls = saved_controls(controls)
        st.begin_version(chat.kept)  # the answers it replaces stay, as an older version of the turn
        st.live = LiveTurn(user=previous.user, regenerating=True, previous=previous, fresh_base=True)
        yield from self.stream.run(st, events, key, "Base regenerated")

    @staticmethod
    def _taken(st: SessionState, queued: bool) -> bool:
        """Whether a regeneration goes on: from the page only when its ``begin_*`` queued it (with turns to
        regenerate); no longer pending either way."""
        if st.from_page and not queued and st.turns:
            return False
        st.pending = False
        return True

    def stop(self, state: SessionState | None) -> Reply:
        if state is not None and (state.pending or state.live is not None):
            state.stop.set()
            return Reply(status=notice("Stopping", "the answer ends after the current token"))
        return Reply(status=notice("Notice", "nothing is being generated"))

    # -- refusals --------------------------------------------------------------------------------------------
    def _refuse(self, st: SessionState, status: str, message: str | None = None) -> Reply:
        """End a send/regenerate that did not start: a stop pressed meanwhile has nothing left to stop."""
        if st.live is not None and st.live.phase == "queued":
            st.live = None
        if st.live is None:
            st.pending = False
            st.stop.clear()
        return turn_reply(st, status, self.shelf, message=message)

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
