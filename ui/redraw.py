"""**Regenerate base** and the ‹ › of a turn's versions: the callbacks ``ChatController`` gets from
``RedrawCallbacks``.

Regenerate base draws the last turn's base (unsteered) answer again and, since λ may follow from its score, the
whole turn after it: the turn is taken out of the chat and its message sent again through ``ChatSession.send``
(the one turn seam: base answer → score → λ → aligned answer), with a fresh seed: none fixed, every draw is new;
a fixed seed is moved by the number of versions the turn has (a new draw that a rerun reproduces).  What it
replaces stays as an older version (``ui.versions``), as after **Regenerate aligned**.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator

from sda_local.errors import SdaError
from sda_local.turn import TurnSettings

from .controls import Controls, saved_controls
from .render import chat_html
from .reply import Reply, notice
from .state import LiveTurn, SessionState

NOTHING = "send a message first: there is no turn to regenerate"


def fresh_seed(settings: TurnSettings, n_versions: int) -> TurnSettings:
    """The settings for a new draw of a turn that has ``n_versions``: a fixed seed moved by that many."""
    return replace(settings, sampling=settings.sampling.with_seed_offset(n_versions))


class RedrawCallbacks:
    """Mixed into ``ChatController`` (which has ``host``, ``_busy``, ``_run``, ``_refuse``, ``_refusal``,
    ``_persist`` and ``_turn_reply``)."""

    def begin_regenerate_base(self, state: SessionState | None) -> Reply:
        """Runs at once, before ``regenerate_base``: the last turn shows as waiting for its new answers; refused
        (and said) while an answer is on its way."""
        st = state or SessionState()
        if self._busy(st):
            busy = "an answer is still being generated; stop it or wait"
            return Reply(state=st, status=notice("Busy", busy)).inform(busy)
        if st.turns:
            prev = st.turns[-1]
            st.live = LiveTurn(user=prev.user, phase="queued", regenerating=True, previous=prev, fresh_base=True)
        return Reply(state=st, chat=chat_html(st))

    def regenerate_base(self, state: SessionState | None, **controls: Any) -> Iterator[Reply]:
        """Draw the last turn's base answer again, then score, λ and aligned answer; the old answers stay as a
        version of the turn.  ``controls``: see ``CONTROL_NAMES``."""
        st = state or SessionState()
        queued = st.live is not None and st.live.phase == "queued" and st.live.fresh_base
        if st.from_page and not queued and st.turns:
            yield Reply()  # ``begin_regenerate_base`` refused it (and said so): nothing to do
            return
        st.pending = False
        ctrl = Controls.from_named(controls)
        key = ctrl.openai_api_key
        if st.live is not None and st.live.phase != "queued":
            yield self._refuse(st, notice("Notice", "an answer is still being generated; stop it or wait"))
            return
        if not st.turns:
            yield self._refuse(st, notice("Notice", NOTHING)).inform(NOTHING[0].upper() + NOTHING[1:] + ".")
            return
        try:
            events, previous = self._redraw(st, ctrl)
        except Exception as exc:
            yield self._refusal(st, exc, key)
            return
        st.controls = saved_controls(controls)
        st.live = LiveTurn(user=previous.user, regenerating=True, previous=previous, fresh_base=True)
        yield from self._run(st, events, key, "Base regenerated")

    def _redraw(self, st: SessionState, ctrl: Controls):
        """Take the last turn out and send its message again (put back as it was if that cannot start)."""
        settings = fresh_seed(ctrl.settings(), st.version_count(len(st.turns)))
        chat = st.session(self.host)
        chat.evaluator = self.host.evaluator(ctrl.evaluator_spec())
        previous, kept = chat.turns[-1], chat.kept
        st.begin_version(kept, taken_out=True)
        chat.switch(chat.turns[:-1])
        try:
            return chat.send(previous.user, settings, keep_stopped=False), previous  # stopped early: as it was
        except BaseException:
            st.end_regeneration()  # the turn is shown again, as it was
            raise

    def _show_version(self, st: SessionState, turn_no: int, number: int) -> Reply:
        """``version TURN N`` (‹ or ›): show version N of that turn; the chat continues from it."""
        if st.live is not None:
            return Reply(status=notice("Notice", "stop the current answer before switching versions"))
        try:
            st.show_version(turn_no, number)
        except SdaError as exc:
            return Reply(status=notice("Notice", str(exc)))
        warning = self._persist(st)
        count = st.version_count(turn_no)
        reply = self._turn_reply(st, notice("Version", f"turn {turn_no}: {number} of {count}, the one the chat "
                                                       f"continues from"))
        return reply.warn(warning) if warning else reply
