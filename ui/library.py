"""The chat's conversations (``Library``): open, new, rename, search and delete saved conversations; export and
import a chat as JSON; every arena vote as preference pairs.  Saving itself is the ``Shelf``'s
(``ui.shelf``)."""
from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from sda_local.errors import SdaError

from .arena import export_preferences
from .controls import restored_controls
from .conversations import StoreError, title_from
from .host import ModelHost
from .render import chat_html
from .reply import Reply, notice
from .shelf import Shelf, plain, titled
from .state import SessionState
from .views import inspect_values, scrub, turn_reply

EXPORT_DIR = Path(tempfile.gettempdir()) / "sda-local-exports"


def unwanted(verb: str) -> tuple[str, str]:
    """A status line and a toast: ``verb`` is refused while an answer is on its way."""
    msg = f"stop the current answer before {verb}"
    return notice("Notice", msg), msg[0].upper() + msg[1:] + "."


class Library:
    """The conversation callbacks: conversations on ``shelf`` (opened on ``host``'s model), files written to
    ``export_dir``."""

    def __init__(self, host: ModelHost, shelf: Shelf, export_dir: Path = EXPORT_DIR):
        self.host, self.shelf = host, shelf
        self.export_dir = Path(export_dir)

    def _reply(self, st: SessionState, status: str) -> Reply:
        return turn_reply(st, status, self.shelf)

    # -- saved conversations ---------------------------------------------------------------------------------
    def open_conversation(self, state: SessionState | None, conv_pick: str | None) -> Reply:
        st = state or SessionState()
        if st.live is not None:
            status, toast = unwanted("opening another chat")
            return self._reply(st, status).inform(toast)
        if not conv_pick:
            return self._reply(st, notice("Notice", "pick a saved conversation first"))
        try:
            self.shelf.open(st, conv_pick)
        except SdaError as exc:
            return self._reply(st, notice("Not opened", str(exc))).warn(str(exc))
        reply = self._reply(st, notice("Opened", titled(st)))
        reply.update(restored_controls(st.controls))  # and the settings it was last answered with
        return reply

    def new_conversation(self, state: SessionState | None) -> Reply:
        """A new, empty conversation (the previous one stays saved, in the list)."""
        st = state or SessionState()
        if st.live is not None:
            status, toast = unwanted("starting a new chat")
            return self._reply(st, status).inform(toast)
        st.forget()
        return self._reply(st, notice("New chat", "the previous conversation stays in the list"))

    def rename_conversation(self, state: SessionState | None, conv_title: str | None) -> Reply:
        st = state or SessionState()
        title = (conv_title or "").strip()
        if st.conv_id is None or not title:
            msg = "send a message first (a chat is saved at its first turn)" if st.conv_id is None else "type a title"
            return Reply(status=notice("Not renamed", msg)).inform(msg)
        try:
            st.title = self.shelf.store.rename(st.conv_id, title)
        except StoreError as exc:
            return Reply(status=notice("Not renamed", str(exc))).warn(str(exc))
        taken = "" if st.title == title_from(title) else " (another chat has that title)"
        return Reply(status=notice("Renamed", plain(st.title) + taken), **self.shelf.values(st))

    def search_conversations(self, state: SessionState | None, conv_search: str | None) -> Reply:
        """Filter the conversation list by title and message text (ignoring case; empty: all of them)."""
        st = state or SessionState()
        st.search = (conv_search or "").strip()
        found = self.shelf.listing(st)
        missed, st.search_missed = st.search_missed, bool(st.search and not found.choices)
        if st.search_missed:
            return Reply(state=st, conv_pick=found,
                         status=notice("Search", f"no saved conversation matches “{plain(st.search)}”"))
        return Reply(state=st, conv_pick=found, **({"status": ""} if missed else {}))  # that notice is over

    def delete_conversation(self, state: SessionState | None, conv_pick: str | None) -> Reply:
        st = state or SessionState()
        target = conv_pick or st.conv_id
        if not target:
            return self._reply(st, notice("Notice", "pick a saved conversation to delete"))
        if target == st.conv_id and st.live is not None:
            return self._reply(st, notice("Notice", "stop the current answer before deleting this chat"))
        try:
            self.shelf.store.delete(target)
        except StoreError as exc:
            return self._reply(st, notice("Not deleted", str(exc))).warn(str(exc))
        if target == st.conv_id:
            st.forget()
        return self._reply(st, notice("Deleted", "the conversation was removed from the list"))

    # -- files -----------------------------------------------------------------------------------------------
    def _new_file(self, prefix: str, suffix: str) -> tuple[int, str]:
        self.export_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return tempfile.mkstemp(prefix=f"{prefix}-{stamp}-", suffix=suffix, dir=self.export_dir)

    def export_chat(self, state: SessionState | None, openai_api_key: str | None = None) -> Reply:
        st = state or SessionState()
        if not st.turns:
            return Reply(export_file=None, status=notice("Notice", "nothing to export yet")).inform(
                "Nothing to export yet.")
        data = st.data()
        data["exported_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        data["app"] = "sda-local chat"
        text = scrub(json.dumps(data, ensure_ascii=False, indent=2), openai_api_key)
        fd, path = self._new_file("sda-chat", ".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return Reply(export_file=path,
                     status=notice("Exported", f"{len(st.turns)} turn(s) — download the JSON file below"))

    def import_chat(self, state: SessionState | None, file) -> Reply:
        st = state or SessionState()
        if st.live is not None:
            return self._reply(st, notice("Notice", "stop the current answer before importing"))
        if not file:
            return self._reply(st, notice("Notice", "no file was given"))
        path = Path(file if isinstance(file, str) else getattr(file, "name", str(file)))
        st.session(self.host)
        before = st.snapshot()
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            msg = f"cannot read that file as JSON ({type(exc).__name__}: {exc})"
            return self._reply(st, notice("Import failed", msg)).warn(msg)
        try:
            st.restore(self.host, data, None, "")  # a new conversation, saved under a new id
            chat_html(st), inspect_values(st)  # fields of the wrong type fail here, not in the page
        except Exception as exc:  # SdaError: not an export; anything else: turns holding values of the wrong type
            st.rewind(before)
            msg = str(exc) if isinstance(exc, SdaError) else f"the chat export is damaged ({type(exc).__name__}: {exc})"
            return self._reply(st, notice("Import failed", msg)).warn(msg)
        unsaved = self.shelf.persist(st)
        reply = self._reply(st, notice("Imported", f"{len(st.turns)} turn(s) from {path.name}"))
        return reply.warn(unsaved) if unsaved else reply

    def export_preferences(self, state: SessionState | None) -> Reply:
        """Every vote of every saved conversation (and this session's, saved or not) as preference pairs."""
        st = state or SessionState()
        store = self.shelf.store
        turns, seen = [], set()
        try:
            listed = [s.id for s in store.list()]
        except StoreError:
            listed = []
        for conv_id in listed:
            try:
                turns += store.load(conv_id)[1].get("turns", [])
                seen.add(conv_id)
            except StoreError:
                continue
        if st.chat is not None and st.conv_id not in seen:
            turns += st.data()["turns"]
        fd, path = self._new_file("sda-preferences", ".jsonl")
        os.close(fd)
        n, wr = export_preferences(turns, path)
        text = f"{n} preference pair(s) → {Path(path).name} (for `sda-local palrs extract --pairs`). {wr.text()}"
        return Reply(prefs_file=path, prefs_report=wr.text(), status=notice("Preferences exported", text))
