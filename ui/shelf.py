"""A session's conversation in the conversation store: saved as it changes, listed, opened (``Shelf``).

A session's conversation is saved (``ui.conversations``) when a message is sent, while its answer streams
(throttled: ``ui.streaming``), after every finished, stopped or abandoned turn, vote, rename and import; the page
keeps the id of its conversation in the browser tab's ``sessionStorage`` (``conv_key``), so a reload, or a restart
of the app, opens it again.  Other sessions' conversations appear only in the list, and only open when the user
picks one.  When the database cannot be used, a ``MemoryStore`` stands in (the chat and the list work until the
app stops) and every failure shows as a warning: nothing a user does is lost at once.
"""
from __future__ import annotations

import re

from .conversations import MemoryStore, Store, StoreError, new_id, title_from
from .host import ModelHost
from .reply import Choices, Reply
from .state import SessionState


def plain(text: str) -> str:
    """``text`` shown literally in a Markdown status line (a title may come from an imported file)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!<>|~])", r"\\\1", text)


def titled(st: SessionState) -> str:
    """A conversation named in a status line: “its title” and how many turns it has."""
    n = len(st.turns)
    return f"“{plain(st.title)}” ({n} turn{'' if n == 1 else 's'})"


def store_note(store: Store) -> str:
    """Where conversations are kept, for the page."""
    if store.persistent:
        return f"Conversations are saved in `{store.path}` (`--db`, `$SDA_LOCAL_CHAT_DB`)."
    return f"⚠ {store.problem}" if getattr(store, "problem", "") else "Conversations are kept in memory only."


class Shelf:
    """Where the sessions' conversations are saved (``store``; None: in memory, for this process only), on the
    model of ``host`` (an opened conversation is answered by it)."""

    def __init__(self, host: ModelHost, store: Store | None = None):
        self.host = host
        self.store: Store = store if store is not None else MemoryStore()

    def persist(self, st: SessionState) -> str | None:
        """Save the session's conversation, the turn being generated included (given an id and a title when it
        is first saved); one left with no turn (its first message ended by an error before any answer) is removed
        again.  A warning, or None."""
        data = st.saved_data() if st.chat is not None else None
        if not data or not data["turns"]:
            return self._drop_unanswered(st)
        if st.conv_id is None:
            st.conv_id, st.title = new_id(), title_from(st.first_user())
        try:
            st.title = self.store.save(st.conv_id, st.title, data)  # a new one's title is made distinct
        except StoreError as exc:
            return str(exc)
        return None

    def _drop_unanswered(self, st: SessionState) -> str | None:
        """Remove a conversation saved only for the message being answered, when that answer kept nothing."""
        if st.conv_id is None:
            return None
        conv_id, st.conv_id, st.title = st.conv_id, None, ""
        try:
            if any(s.id == conv_id for s in self.store.list()):
                self.store.delete(conv_id)
        except StoreError as exc:
            return str(exc)
        return None

    def listing(self, st: SessionState) -> Choices:
        """The conversation list, filtered by the session's search (the picker shows this chat when listed)."""
        try:
            listed = self.store.search(st.search) if st.search else self.store.list()
        except StoreError:
            listed = []
        shown = st.conv_id if any(s.id == st.conv_id for s in listed) else None
        return Choices([(s.label, s.id) for s in listed], shown)

    def values(self, st: SessionState) -> Reply:
        """The conversation list, this tab's conversation id and its title."""
        return Reply(conv_pick=self.listing(st), conv_key=st.conv_id or "", conv_title=st.title)

    def open(self, st: SessionState, conv_id: str) -> None:
        """Make the saved conversation ``conv_id`` the session's (``SdaError`` when it cannot be read)."""
        title, data = self.store.load(conv_id)
        st.restore(self.host, data, conv_id, title)

    def note(self) -> str:
        return store_note(self.store)

    @property
    def problem(self) -> str:
        """Why conversations are kept in memory only (a database that could not be used), or ""."""
        return "" if self.store.persistent else getattr(self.store, "problem", "")
