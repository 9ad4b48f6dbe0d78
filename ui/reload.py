"""A page (re)opening (``Reload``): it resumes its browser tab's conversation, or the session still answering in
it (a reload mid-answer), and then follows that answer as it grows until it ends."""
from __future__ import annotations

import time
from typing import Iterator

from sda_local.errors import SdaError

from .controls import preset_choices, restored_controls
from .host import ModelHost
from .reply import KEEP, Choices, Reply, notice
from .shelf import Shelf, titled
from .state import SessionState
from .streaming import TurnStream
from .views import turn_reply

FOLLOW_POLL_S = 0.05      # a reloaded page looks for new tokens of the answer it follows this often
FOLLOW_GRACE_S = 5.0      # and stops following one that ended without its status, after this long


class Reload:
    """``on_load`` and ``follow`` for pages built with the presets ``page_presets``; conversations come from
    ``shelf``, answers still being generated from ``stream``, the model's description from ``host``."""

    def __init__(self, host: ModelHost, shelf: Shelf, stream: TurnStream, page_presets: list[str]):
        self.host, self.shelf, self.stream = host, shelf, stream
        self.page_presets = page_presets

    def on_load(self, conv_key: str | None = None) -> Reply:
        """A page (re)opens: a new session, which resumes the conversation its browser tab had (``conv_key``,
        kept in the tab's sessionStorage) if it is saved (a turn cut short by a crash or a restart shows as
        interrupted), or the session still answering in it (a reload mid-turn); the current model; and the
        presets saved since the page was built (the dropdown is left alone when there are none: re-rendering it
        could close it under the pointer)."""
        st, status = self._resume(conv_key)
        with st.guard:
            reply = turn_reply(st, status, self.shelf)
        reply.update(restored_controls(st.controls))  # the settings the conversation was last answered with
        reply.update(model_info=self.host.describe(), db_info=self.shelf.note())
        choices = preset_choices()
        if choices != self.page_presets:
            reply["preset"] = Choices(choices, reply.get("preset", KEEP))
        if self.shelf.problem:
            reply.warn(self.shelf.problem)
        return reply

    def _resume(self, conv_key: str | None) -> tuple[SessionState, str]:
        """The session a (re)opened tab gets: while an answer of its conversation is still being generated (a
        reload mid-answer), that very session (``follow`` then shows the answer as it grows); else its saved
        conversation."""
        running = self.stream.running(conv_key)
        if running is not None:
            return running, notice("Resumed", f"{titled(running)} — an answer is still being generated; it goes on "
                                              f"here (Stop ends it)")
        st = SessionState()
        if not conv_key:
            return st, ""
        try:
            self.shelf.open(st, conv_key)
        except SdaError:  # deleted meanwhile, or the database is not there: start afresh
            st.forget()
            return st, ""
        return st, notice("Resumed", titled(st))

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
                    reply = turn_reply(state, "", self.shelf, inspect=False)
                del reply["status"]  # the page keeps saying that it resumed the answer
                yield reply
            time.sleep(max(self.stream.stream_interval_s, FOLLOW_POLL_S))
        with state.guard:
            reply = turn_reply(state, live.ended or "", self.shelf)
        yield reply
