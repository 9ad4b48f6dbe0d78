"""The chat's conversation store (SQLite): round trip, rename, delete, reopen, and clear errors for a damaged or
locked database (with the in-memory stand-in that keeps the chat working)."""
from __future__ import annotations

import sqlite3

import pytest
from sda_local.ui import conversations
from sda_local.ui.conversations import (
    ConversationStore,
    MemoryStore,
    StoreError,
    default_db_path,
    open_store,
)

DATA = {"format": "sda-local-chat/1", "turns": [{"user": "Hi <b>there</b>", "aligned": "Hello ✓"}]}


@pytest.fixture(autouse=True)
def _quick_locks(monkeypatch):
    monkeypatch.setattr(conversations, "LOCK_TIMEOUT_S", 0.2)


@pytest.mark.parametrize("make", [lambda p: ConversationStore(p), lambda p: MemoryStore()])
def test_save_list_load_rename_delete(tmp_path, make):
    store = make(tmp_path / "sub" / "chats.sqlite3")
    store.save("a1", "First question\nwith a second line", DATA)
    store.save("b2", "x" * 200, {"turns": []})
    listed = store.list()
    assert [s.id for s in listed] == ["b2", "a1"]  # most recent first
    a = next(s for s in listed if s.id == "a1")
    assert a.title == "First question with a second line" and a.n_turns == 1 and "1 turn ·" in a.label
    assert len(next(s for s in listed if s.id == "b2").title) == conversations.TITLE_MAX
    assert store.load("a1") == ("First question with a second line", DATA)
    store.save("a1", "ignored: the title stays", {**DATA, "turns": DATA["turns"] * 2})
    assert store.load("a1")[0] == "First question with a second line" and store.list()[0].n_turns == 2
    store.rename("a1", "  Renamed  ")
    assert store.load("a1")[0] == "Renamed"
    store.delete("b2")
    assert [s.id for s in store.list()] == ["a1"]
    for bad in (lambda: store.load("b2"), lambda: store.rename("b2", "x"), lambda: store.delete("b2")):
        with pytest.raises(StoreError, match="no saved conversation 'b2'"):
            bad()


def test_conversations_survive_reopening_the_file(tmp_path):
    path = tmp_path / "chats.sqlite3"
    ConversationStore(path).save("c", "Kept?", DATA)
    again = open_store(path)
    assert again.persistent and again.load("c") == ("Kept?", DATA)


def test_default_path_is_in_the_data_directory_and_overridable(tmp_path, monkeypatch):
    monkeypatch.delenv(conversations.DB_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == tmp_path / "xdg" / "sda-local" / "chats.sqlite3"
    monkeypatch.setenv(conversations.DB_ENV, str(tmp_path / "mine.db"))
    assert default_db_path() == tmp_path / "mine.db"
    assert open_store().path == tmp_path / "mine.db"


def test_a_damaged_file_gives_a_clear_message_and_a_memory_store(tmp_path):
    path = tmp_path / "chats.sqlite3"
    path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError, match="damaged or not an SQLite database"):
        ConversationStore(path)
    store = open_store(path)
    assert isinstance(store, MemoryStore) and not store.persistent
    assert str(path) in store.problem and "in memory" in store.problem
    store.save("m", "Still works", DATA)  # the chat goes on in memory
    assert store.load("m")[1] == DATA
    assert path.read_bytes().startswith(b"this is not a database")  # the user's file is left as it was


def test_a_locked_database_gives_a_clear_message(tmp_path):
    path = tmp_path / "chats.sqlite3"
    store = ConversationStore(path)
    store.save("a", "Before the lock", DATA)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another program holds the database
    try:
        with pytest.raises(StoreError, match="locked by another program") as err:
            store.save("b", "During the lock", DATA)
        assert str(path) in str(err.value) and "in memory" in str(err.value)
        locked = open_store(path)
        assert isinstance(locked, MemoryStore) and "locked" in locked.problem
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.save("b", "After the lock", DATA)
    assert [s.id for s in store.list()] == ["b", "a"]


def test_an_unwritable_location_is_a_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot be used"):
        ConversationStore(blocker / "chats.sqlite3")  # its folder would be inside a file


# -- the sidebar: search and distinct titles -------------------------------------------------------------------------
def _chat(*turns: dict) -> dict:
    return {"format": "sda-local-chat/1", "turns": list(turns)}


@pytest.mark.parametrize("make", [lambda p: ConversationStore(p), lambda p: MemoryStore()])
def test_search_finds_conversations_by_title_and_by_message_text(tmp_path, make):
    store = make(tmp_path / "chats.sqlite3")
    store.save("tea", "Green TEA brewing", _chat({"user": "How hot?", "base": "Hot.", "aligned": "About 80 °C."}))
    store.save("bike", "Bikes", _chat({"user": "Fix a flat TYRE?", "base": "Patch it.", "aligned": "Use levers."}))
    older = {"user": "Zebra?", "base": "Stripes.", "aligned": "Äpfel und Birnen"}  # only in an older version
    store.save("zoo", "Zoo", _chat({"user": "Zebra?", "base": "b", "aligned": "a", "version": 2,
                                    "versions": [[older], None]}))
    found = lambda q: sorted(s.id for s in store.search(q))  # noqa: E731
    assert found("tea") == ["tea"]                   # the title, ignoring case
    assert found("tyre") == ["bike"]                 # the user's message
    assert found("80 °c") == ["tea"] and found("PATCH") == ["bike"]  # the aligned and the base answer
    assert found("äPFEL") == ["zoo"]                 # another version's answer, case folded beyond ASCII
    assert found("nowhere") == [] and found("format") == []  # JSON keys and values outside the turns are not text
    assert found("  ") == ["bike", "tea", "zoo"]     # an empty search lists them all
    assert [s.id for s in store.search("e")] == [s.id for s in store.list() if s.id in {"tea", "bike", "zoo"}]


@pytest.mark.parametrize("make", [lambda p: ConversationStore(p), lambda p: MemoryStore()])
def test_titles_are_made_distinct_on_save_and_on_rename(tmp_path, make):
    store = make(tmp_path / "chats.sqlite3")
    assert [store.save(i, "Hello", DATA) for i in ("a", "b", "c")] == ["Hello", "Hello (2)", "Hello (3)"]
    assert store.save("b", "ignored", DATA) == "Hello (2)"  # a saved one keeps its title
    assert store.rename("c", "Hello") == "Hello (3)" and store.load("c")[0] == "Hello (3)"  # its own is free
    assert store.rename("a", "Hello") == "Hello"     # its own title is not taken
    assert store.rename("a", "Other") == "Other" and store.save("d", "Hello", DATA) == "Hello"
    assert sorted(s.title for s in store.list()) == ["Hello", "Hello (2)", "Hello (3)", "Other"]
    long = "x" * 200
    assert store.save("e", long, DATA) == "x" * (conversations.TITLE_MAX - 1) + "…"
    second = store.save("f", long, DATA)
    assert second.endswith("… (2)") and len(second) == conversations.TITLE_MAX
