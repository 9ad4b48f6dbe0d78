"""The chat's saved conversations and arena votes: the callbacks ``ChatController`` gets from ``LibraryCallbacks``.

A session's conversation is saved (``sda_local.ui.conversations``) when a message is sent, while its answer
streams (throttled: ``ChatController``), after every finished, stopped or abandoned turn, vote, rename and
import; the page keeps the id of its conversation in the browser tab's ``sessionStorage`` (``conv_key``), so a
reload, or a restart of the app, opens it again.  Other sessions' conversations appear only in the list, and
only open when the user picks one.  When the database cannot be used, a ``MemoryStore`` stands in (the chat and
the list work until the app stops) and every failure shows as a warning: nothing a user does is lost at once.
"""
from __future__ import annotations

import os
import re
import tempfile
from datetime import datetime
from pathlib import Path

from sda_local.errors import SdaError

from .arena import VOTES, export_preferences, win_rate
from .controls import restored_controls
from .conversations import MemoryStore, Store, StoreError, new_id, title_from
from .reply import Choices, Reply, notice
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


class LibraryCallbacks:
    """Mixed into ``ChatController`` (which sets ``store``, ``host``, ``export_dir`` and ``_turn_reply``)."""

    store: Store

    # -- saving ----------------------------------------------------------------------------------------------
    def _persist(self, st: SessionState) -> str | None:
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

    def _conversations(self, st: SessionState) -> Choices:
        """The conversation list, filtered by the session's search (the picker shows this chat when listed)."""
        try:
            listed = self.store.search(st.search) if st.search else self.store.list()
        except StoreError:
            listed = []
        shown = st.conv_id if any(s.id == st.conv_id for s in listed) else None
        return Choices([(s.label, s.id) for s in listed], shown)

    def library_values(self, st: SessionState) -> Reply:
        return Reply(conv_pick=self._conversations(st), conv_key=st.conv_id or "", conv_title=st.title)

    def _open(self, st: SessionState, conv_id: str) -> None:
        title, data = self.store.load(conv_id)
        st.restore(self.host, data, conv_id, title)

    # -- callbacks -------------------------------------------------------------------------------------------
    def open_conversation(self, state: SessionState | None, conv_pick: str | None) -> Reply:
        st = state or SessionState()
        if st.live is not None:
            msg = "stop the current answer before opening another chat"
            return self._turn_reply(st, notice("Notice", msg)).inform(msg[0].upper() + msg[1:] + ".")
        if not conv_pick:
            return self._turn_reply(st, notice("Notice", "pick a saved conversation first"))
        try:
            self._open(st, conv_pick)
        except SdaError as exc:
            return self._turn_reply(st, notice("Not opened", str(exc))).warn(str(exc))
        reply = self._turn_reply(st, notice("Opened", titled(st)))
        reply.update(restored_controls(st.controls))  # and the settings it was last answered with
        return reply

    def new_conversation(self, state: SessionState | None) -> Reply:
        st = state or SessionState()
        if st.live is not None:
            msg = "stop the current answer before starting a new chat"
            return self._turn_reply(st, notice("Notice", msg)).inform(msg[0].upper() + msg[1:] + ".")
        st.forget()
        return self._turn_reply(st, notice("New chat", "the previous conversation stays in the list"))

    def rename_conversation(self, state: SessionState | None, conv_title: str | None) -> Reply:
        st = state or SessionState()
        title = (conv_title or "").strip()
        if st.conv_id is None or not title:
            msg = "send a message first (a chat is saved at its first turn)" if st.conv_id is None else "type a title"
            return Reply(status=notice("Not renamed", msg)).inform(msg)
        try:
            st.title = self.store.rename(st.conv_id, title)
        except StoreError as exc:
            return Reply(status=notice("Not renamed", str(exc))).warn(str(exc))
        taken = "" if st.title == title_from(title) else " (another chat has that title)"
        return Reply(status=notice("Renamed", plain(st.title) + taken), **self.library_values(st))

    def search_conversations(self, state: SessionState | None, conv_search: str | None) -> Reply:
        """Filter the conversation list by title and message text (ignoring case; empty: all of them)."""
        st = state or SessionState()
        st.search = (conv_search or "").strip()
        found = self._conversations(st)
        missed, st.search_missed = st.search_missed, bool(st.search and not found.choices)
        if st.search_missed:
            return Reply(state=st, conv_pick=found,
                         status=notice("Search", f"no saved conversation matches “{plain(st.search)}”"))
        return Reply(state=st, conv_pick=found, **({"status": ""} if missed else {}))  # that notice is over

    def delete_conversation(self, state: SessionState | None, conv_pick: str | None) -> Reply:
        st = state or SessionState()
        target = conv_pick or st.conv_id
        if not target:
            return self._turn_reply(st, notice("Notice", "pick a saved conversation to delete"))
        if target == st.conv_id and st.live is not None:
            return self._turn_reply(st, notice("Notice", "stop the current answer before deleting this chat"))
        try:
            self.store.delete(target)
        except StoreError as exc:
            return self._turn_reply(st, notice("Not deleted", str(exc))).warn(str(exc))
        if target == st.conv_id:
            st.forget()
        return self._turn_reply(st, notice("Deleted", "the conversation was removed from the list"))

    def _vote(self, st: SessionState, turn_no: int, vote: str) -> Reply:
        arenas = st.arenas()
        if vote not in VOTES or not 1 <= turn_no <= len(arenas):
            return Reply(status=notice("Notice", "that vote does not belong to a turn of this chat"))
        arenas[turn_no - 1]["vote"] = vote
        warning = self._persist(st)
        wr = win_rate(st.data()["turns"])
        reply = self._turn_reply(st, notice("Voted", f"turn {turn_no}: {vote}. This chat: {wr.text()}"))
        return reply.warn(warning) if warning else reply

    def export_preferences(self, state: SessionState | None) -> Reply:
        """Every vote of every saved conversation (and this session's, saved or not) as preference pairs."""
        st = state or SessionState()
        turns, seen = [], set()
        try:
            listed = [s.id for s in self.store.list()]
        except StoreError:
            listed = []
        for conv_id in listed:
            try:
                turns += self.store.load(conv_id)[1].get("turns", [])
                seen.add(conv_id)
            except StoreError:
                continue
        if st.chat is not None and st.conv_id not in seen:
            turns += st.data()["turns"]
        self.export_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        fd, path = tempfile.mkstemp(prefix=f"sda-preferences-{stamp}-", suffix=".jsonl", dir=self.export_dir)
        os.close(fd)
        n, wr = export_preferences(turns, path)
        text = f"{n} preference pair(s) → {Path(path).name} (for `sda-local palrs extract --pairs`). {wr.text()}"
        return Reply(prefs_file=path, prefs_report=wr.text(), status=notice("Preferences exported", text))


def fallback_store(store: Store | None) -> Store:
    return store if store is not None else MemoryStore()
