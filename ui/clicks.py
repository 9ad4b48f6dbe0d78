"""Clicks in the conversation and the inspector (``Clicks``): a token or a word of an answer (the token inspector),
"inspect tokens", edit, an arena vote and a turn's versions (‹ ›); and the view toggles (base answers, arena)."""
from __future__ import annotations

from sda_local.errors import SdaError

from .arena import VOTES, win_rate
from .pick import token_at
from .render import chat_html
from .reply import Reply, notice
from .shelf import Shelf
from .state import SessionState
from .views import inspect_values, turn_reply


class Clicks:
    """The click callbacks; a vote or a version switch is saved on ``shelf``."""

    def __init__(self, shelf: Shelf):
        self.shelf = shelf

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

    def _vote(self, st: SessionState, turn_no: int, vote: str) -> Reply:
        arenas = st.arenas()
        if vote not in VOTES or not 1 <= turn_no <= len(arenas):
            return Reply(status=notice("Notice", "that vote does not belong to a turn of this chat"))
        arenas[turn_no - 1]["vote"] = vote
        warning = self.shelf.persist(st)
        wr = win_rate(st.data()["turns"])
        reply = turn_reply(st, notice("Voted", f"turn {turn_no}: {vote}. This chat: {wr.text()}"), self.shelf)
        return reply.warn(warning) if warning else reply

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

    def _show_version(self, st: SessionState, turn_no: int, number: int) -> Reply:
        """``version TURN N`` (‹ or ›): show version N of that turn; the chat continues from it."""
        if st.live is not None:
            return Reply(status=notice("Notice", "stop the current answer before switching versions"))
        try:
            st.show_version(turn_no, number)
        except SdaError as exc:
            return Reply(status=notice("Notice", str(exc)))
        warning = self.shelf.persist(st)
        count = st.version_count(turn_no)
        reply = turn_reply(st, notice("Version", f"turn {turn_no}: {number} of {count}, the one the chat continues "
                                                 f"from"), self.shelf)
        return reply.warn(warning) if warning else reply

    # -- the view --------------------------------------------------------------------------------------------
    @staticmethod
    def inspect_turn(state: SessionState | None, turn: str | int | None) -> Reply:
        st = state or SessionState()
        if turn and st.turns:
            st.inspected = (max(1, min(int(turn), len(st.turns))), None)
        values = inspect_values(st, int(turn) if turn else None)
        return Reply({k: values[k] for k in ("plot", "plot_summary", "table", "inspector")})

    @staticmethod
    def toggle_base(state: SessionState | None, show: bool | None) -> Reply:
        st = state or SessionState()
        st.show_base = bool(show)
        return Reply(state=st, chat=chat_html(st))

    @staticmethod
    def toggle_arena(state: SessionState | None, arena: bool | None) -> Reply:
        st = state or SessionState()
        st.arena_mode = bool(arena)
        return Reply(state=st, chat=chat_html(st), inspector=inspect_values(st)["inspector"])
