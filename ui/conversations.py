"""Saved chat conversations: a small SQLite database in the user's data directory.

One row per conversation: an id, a title, creation and update times, and the conversation as JSON (the chat's
export: turns with their settings, per-token data and arena votes).  The path is ``default_db_path()``
(``$SDA_LOCAL_CHAT_DB``, else ``$XDG_DATA_HOME/sda-local/chats.sqlite3``, ``~/.local/share/…`` by default;
``%LOCALAPPDATA%`` on Windows), or any path given to ``ConversationStore``.

Titles are distinct: a new conversation whose title another one has, or a rename to such a title, gets " (2)",
" (3)"… (``distinct_title``).  ``search`` finds conversations by title and by the text of their turns (the
messages and both answers, older versions included), ignoring case.

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
from typing import Iterable, Iterator

from sda_local.errors import SdaError

DB_ENV = "SDA_LOCAL_CHAT_DB"
DB_NAME = "chats.sqlite3"
LOCK_TIMEOUT_S = 2.0  # how long a write waits for another program's lock before giving up
TITLE_MAX = 80
SCHEMA = """CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL, data TEXT NOT NULL)"""


TEXT_KEYS = ("user", "base", "aligned")  # what ``search`` reads of a turn (and of its versions: ui.versions)
LIST_SQL = "SELECT id, title, updated, json_array_length(data, '$.turns') FROM conversations"
SEARCH_SQL = (LIST_SQL + " AS c WHERE instr(sda_fold(title), ?1) > 0 OR CASE WHEN json_valid(c.data) THEN EXISTS "
              "(SELECT 1 FROM json_tree(c.data) AS j WHERE j.key IN ('user', 'base', 'aligned') AND j.type = 'text' "
              "AND instr(sda_fold(j.value), ?1) > 0) ELSE 0 END")


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


def distinct_title(title: str, taken: Iterable[str]) -> str:
    """``title`` (as ``title_from`` makes it), or, when another conversation has it, ``title (2)``, ``(3)``…: the
    first that none has (shortened to stay within ``TITLE_MAX``)."""
    title, taken = title_from(title) or "untitled", set(taken)
    name, n = title, 1
    while name in taken:
        n += 1
        suffix = f" ({n})"
        head = title if len(title) + len(suffix) <= TITLE_MAX else title[:TITLE_MAX - len(suffix) - 1] + "…"
        name = head + suffix
    return name


def fold(text) -> str:
    """``text`` for a search that ignores case (anything that is not text: "")."""
    return text.casefold() if isinstance(text, str) else ""


def turn_texts(turn) -> Iterator[str]:
    """The message and answers of a saved turn, then those of its other versions."""
    if not isinstance(turn, dict):
        return
    yield from (turn[k] for k in TEXT_KEYS if isinstance(turn.get(k), str))
    for branch in turn.get("versions") if isinstance(turn.get("versions"), list) else ():
        for t in branch if isinstance(branch, list) else ():
            yield from turn_texts(t)


def matches(query: str, title: str, data: dict) -> bool:
    """Whether a conversation's title or turns hold ``query`` (already ``fold``ed)."""
    turns = data.get("turns") if isinstance(data, dict) else None
    return query in fold(title) or any(query in fold(x) for t in turns or () for x in turn_texts(t))


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
        db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
        db.create_function("sda_fold", 1, fold, deterministic=True)
        return db

    def _with(self, fn):
        """``fn(connection)``, under the lock; sqlite3 and OS errors as ``StoreError``."""
        with self._lock:
            try:
                db = self._connect()
                try:
                    return fn(db)
                finally:
                    db.close()
            except (sqlite3.Error, OSError) as exc:
                raise _problem(self.path, exc) from None

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._with(lambda db: db.execute(sql, args).fetchall())

    def _transaction(self, fn):
        """``fn(connection)`` in one write transaction (rolled back if it raises)."""
        def run(db):
            db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(db)
                db.execute("COMMIT")
                return out
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return self._with(run)

    def list(self) -> list[Summary]:
        rows = self._run(LIST_SQL + " ORDER BY updated DESC")
        return [Summary(i, t, u, int(n or 0)) for i, t, u, n in rows]

    def search(self, query: str) -> list[Summary]:
        """The conversations whose title or turns hold ``query`` (ignoring case), most recent first; all of them
        for an empty query."""
        q = fold((query or "").strip())
        if not q:
            return self.list()
        rows = self._run(SEARCH_SQL + " ORDER BY updated DESC", (q,))
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

    def save(self, conv_id: str, title: str, data: dict) -> str:
        """Save a conversation; returns its title (``title``, made distinct, for a new one; a saved one keeps
        its own)."""
        now, blob = time.time(), json.dumps(data, ensure_ascii=False)

        def save(db) -> str:
            row = db.execute("SELECT title FROM conversations WHERE id = ?", (conv_id,)).fetchone()
            if row:
                db.execute("UPDATE conversations SET updated = ?, data = ? WHERE id = ?", (now, blob, conv_id))
                return row[0]
            name = distinct_title(title, (t for (t,) in db.execute("SELECT title FROM conversations")))
            db.execute("INSERT INTO conversations (id, title, created, updated, data) VALUES (?, ?, ?, ?, ?)",
                       (conv_id, name, now, now, blob))
            return name
        return self._transaction(save)

    def rename(self, conv_id: str, title: str) -> str:
        """Rename a conversation; returns the title it got (made distinct from the others')."""
        def rename(db) -> str:
            if not db.execute("SELECT 1 FROM conversations WHERE id = ?", (conv_id,)).fetchone():
                raise StoreError(f"no saved conversation {conv_id!r} (deleted?)")
            taken = (t for (t,) in db.execute("SELECT title FROM conversations WHERE id != ?", (conv_id,)))
            name = distinct_title(title, taken)
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (name, conv_id))
            return name
        return self._transaction(rename)

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

    def search(self, query: str) -> list[Summary]:
        q = fold((query or "").strip())
        if not q:
            return self.list()
        with self._lock:
            found = {i for i, (t, _, d) in self._rows.items() if matches(q, t, d)}
        return [s for s in self.list() if s.id in found]

    def load(self, conv_id: str) -> tuple[str, dict]:
        with self._lock:
            if conv_id not in self._rows:
                raise StoreError(f"no saved conversation {conv_id!r} (deleted?)")
            title, _, data = self._rows[conv_id]
        return title, json.loads(json.dumps(data))

    def save(self, conv_id: str, title: str, data: dict) -> str:
        copy = json.loads(json.dumps(data))
        with self._lock:
            old = self._rows.get(conv_id)
            name = old[0] if old else distinct_title(title, (t for t, _, _ in self._rows.values()))
            self._rows[conv_id] = (name, time.time(), copy)
        return name

    def rename(self, conv_id: str, title: str) -> str:
        self.load(conv_id)
        with self._lock:
            _, updated, data = self._rows[conv_id]
            name = distinct_title(title, (t for i, (t, _, _) in self._rows.items() if i != conv_id))
            self._rows[conv_id] = (name, updated, data)
        return name

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
