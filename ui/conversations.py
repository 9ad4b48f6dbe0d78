"""Saved chat conversations: a small SQLite database in the user's data directory.

One row per conversation: an id, a title, creation and update times, and the conversation as JSON (the chat's
export: turns with their settings, per-token data and arena votes).  The path is ``default_db_path()``
(``$SDA_LOCAL_CHAT_DB``, else ``$XDG_DATA_HOME/sda-local/chats.sqlite3``, ``~/.local/share/…`` by default;
``%LOCALAPPDATA%`` on Windows), or any path given to ``ConversationStore``.

A database that cannot be used (not a database, locked by another program, unwritable) raises ``StoreError``
with the path and what to do; ``open_store`` then hands back a ``MemoryStore`` with the same methods, so the chat
keeps working for as long as the app runs.
"""
from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sda_local.errors import SdaError

DB_ENV = "SDA_LOCAL_CHAT_DB"
DB_NAME = "chats.sqlite3"
LOCK_TIMEOUT_S = 2.0  # how long a write waits for another program's lock before giving up
TITLE_MAX = 80
SCHEMA = """CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL, data TEXT NOT NULL)"""


class StoreError(SdaError):
    """The conversation database cannot be read or written."""


def data_dir() -> Path:
    """The user's data directory for sda-local."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "sda-local"
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "sda-local"


def default_db_path() -> Path:
    env = os.environ.get(DB_ENV)
    return Path(env).expanduser() if env else data_dir() / DB_NAME


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def title_from(text: str) -> str:
    """A conversation's default title: its first message, on one line, shortened."""
    line = " ".join((text or "").split())
    return line if len(line) <= TITLE_MAX else line[:TITLE_MAX - 1] + "…"


@dataclass(frozen=True)
class Summary:
    """One line of the conversation list."""

    id: str
    title: str
    updated: float
    n_turns: int

    @property
    def label(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.updated))
        return f"{self.title} · {self.n_turns} turn{'s' if self.n_turns != 1 else ''} · {when}"


def _problem(path: Path, exc: Exception) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        why = "is locked by another program (another sda-local chat?)"
    elif isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        why = "is damaged or not an SQLite database; move it away to start a new one"
    else:
        why = f"cannot be used ({type(exc).__name__}: {exc})"
    return StoreError(f"the conversation database {path} {why}; conversations are kept in memory only "
                      f"until the app stops (--db PATH or ${DB_ENV} picks another file)")


class ConversationStore:
    """Conversations in one SQLite file.  Every method raises ``StoreError`` (never a bare sqlite3 error)."""

    persistent = True

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute(SCHEMA)
                db.execute("SELECT count(*) FROM conversations").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise _problem(self.path, exc) from None

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S, isolation_level=None)

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                db = self._connect()
                try:
                    return db.execute(sql, args).fetchall()
                finally:
                    db.close()
            except (sqlite3.Error, OSError) as exc:
                raise _problem(self.path, exc) from None

    def list(self) -> list[Summary]:
        rows = self._run("SELECT id, title, updated, json_array_length(data, '$.turns') FROM conversations "
                         "ORDER BY updated DESC")
        return [Summary(i, t, u, int(n or 0)) for i, t, u, n in rows]

    def load(self, conv_id: str) -> tuple[str, dict]:
        """(title, data) of one conversation; ``StoreError`` if there is none with that id."""
        rows = self._run("SELECT title, data FROM conversations WHERE id = ?", (conv_id,))
        if not rows:
            raise StoreError(f"no saved conversation {conv_id!r} (deleted?)")
        try:
            return rows[0][0], json.loads(rows[0][1])
        except json.JSONDecodeError as exc:
            raise StoreError(f"saved conversation {conv_id!r} is damaged ({exc})") from None

    def save(self, conv_id: str, title: str, data: dict) -> None:
        now = time.time()
        self._run("INSERT INTO conversations (id, title, created, updated, data) VALUES (?, ?, ?, ?, ?) "
                  "ON CONFLICT(id) DO UPDATE SET updated = excluded.updated, data = excluded.data",
                  (conv_id, title_from(title) or "untitled", now, now, json.dumps(data, ensure_ascii=False)))

    def rename(self, conv_id: str, title: str) -> None:
        self._require(conv_id)
        self._run("UPDATE conversations SET title = ? WHERE id = ?", (title_from(title) or "untitled", conv_id))

    def delete(self, conv_id: str) -> None:
        self._require(conv_id)
        self._run("DELETE FROM conversations WHERE id = ?", (conv_id,))

    def _require(self, conv_id: str) -> None:
        if not self._run("SELECT 1 FROM conversations WHERE id = ?", (conv_id,)):
            raise StoreError(f"no saved conversation {conv_id!r} (deleted?)")


class MemoryStore:
    """The same methods, in memory: used when the database cannot be (``problem`` says why)."""

    persistent = False

    def __init__(self, problem: str = ""):
        self.problem = problem
        self.path = None
        self._rows: dict[str, tuple[str, float, dict]] = {}
        self._lock = threading.Lock()  # sessions save from several threads

    def list(self) -> list[Summary]:
        with self._lock:
            rows = sorted(self._rows.items(), key=lambda kv: -kv[1][1])
        return [Summary(i, t, u, len(d.get("turns", []))) for i, (t, u, d) in rows]

    def load(self, conv_id: str) -> tuple[str, dict]:
        with self._lock:
            if conv_id not in self._rows:
                raise StoreError(f"no saved conversation {conv_id!r} (deleted?)")
            title, _, data = self._rows[conv_id]
        return title, json.loads(json.dumps(data))

    def save(self, conv_id: str, title: str, data: dict) -> None:
        copy = json.loads(json.dumps(data))
        with self._lock:
            old = self._rows.get(conv_id)
            self._rows[conv_id] = (old[0] if old else title_from(title) or "untitled", time.time(), copy)

    def rename(self, conv_id: str, title: str) -> None:
        self.load(conv_id)
        with self._lock:
            _, updated, data = self._rows[conv_id]
            self._rows[conv_id] = (title_from(title) or "untitled", updated, data)

    def delete(self, conv_id: str) -> None:
        self.load(conv_id)
        with self._lock:
            self._rows.pop(conv_id, None)


Store = ConversationStore | MemoryStore


def open_store(path: str | os.PathLike | None = None) -> Store:
    """The database at ``path`` (default: ``default_db_path()``), or a ``MemoryStore`` carrying the reason
    (``.problem``) when it cannot be used."""
    path = Path(path) if path else default_db_path()
    try:
        return ConversationStore(path)
    except StoreError as exc:
        return MemoryStore(str(exc))
