"""The chat's token inspector, saved conversations and arena votes, through ``ChatController`` (no Gradio, no
browser; the browser test covers the page), on the embedded SmolLM2; and the Markdown renderer's safety."""
from __future__ import annotations

import sqlite3

import pytest
from sda_local.ui import conversations
from sda_local.ui.conversations import ConversationStore, open_store

from sda_local.palrs.pairs import load_pairs

FAST = dict(evaluator="fixed", fixed_by="lam", fixed_lam=0.6, max_tokens=6, seed=3)


@pytest.fixture(scope="module")
def host():
    from sda_local.ui.host import ModelHost

    h = ModelHost(None, n_ctx=512, n_threads=1)
    yield h
    h.close()


def controller(host, store=None, tmp_path=None):
    from sda_local.ui.controller import ChatController

    return ChatController(host, stream_interval_s=0, store=store, export_dir=tmp_path or conversations.data_dir())


def turn(c, st, text, **kw):
    return list(c.send(st, text, **{**FAST, **kw}))[-1]


# -- Markdown: rendered, raw HTML and script URLs inert ------------------------------------------------------
def test_markdown_renders_and_keeps_payloads_as_text():
    from sda_local.ui.markdown import render_markdown

    html = render_markdown("- one\n- **two**\n\n<script>alert(1)</script> <img src=x onerror=alert(2)>\n\n"
                           "[bad](javascript:alert(3)) [ok](https://example.org) ![pic](http://example.org/a.png)\n\n"
                           "```python\nprint('<b>')\n```\n")
    assert "<li><strong>two</strong></li>" in html
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html and "&lt;img" in html
    assert 'href="javascript' not in html.lower() and "[bad](javascript:alert(3))" in html
    assert '<a href="https://example.org" target="_blank" rel="noopener noreferrer nofollow">ok</a>' in html
    assert 'class="sda-copy"' in html and "print(&#x27;&lt;b&gt;&#x27;)" in html.replace("'", "&#x27;")


# -- the token inspector --------------------------------------------------------------------------------------
def test_clicking_a_token_shows_its_three_top_five_lists(host, tmp_path):
    from sda_local.ui.state import SessionState

    c = controller(host, tmp_path=tmp_path)
    st = SessionState()
    final = turn(c, st, "Name a fruit.", plausibility=0.1)
    assert final["inspector"].count('class="sda-tok') == len(st.turns[0].aligned_tokens) > 0
    shown = c.act(st, "tok 1 0 1700000000")
    panel = shown["inspector"]
    assert panel.count('class="sda-top"') == 3 and "sda-tok-sel" in panel and "JS divergence" in panel
    assert "removed by the plausibility constraint" in panel  # α = 0.1: candidates were removed
    top = st.turns[0].aligned_tokens[0]["top"]
    assert len(top["instructed"]) == len(top["uninstructed"]) == 5 and 1 <= len(top["steered"]) <= 5
    assert top["n_removed"] > 0
    assert c.act(st, "turn 1")["turn"].value == "1"
    assert "did not name a turn" in c.act(st, "tok x")["status"]
    assert "not in this chat" in c.act(st, "tok 9 0")["status"]


# -- conversations ---------------------------------------------------------------------------------------------
def test_conversations_are_saved_resumed_renamed_and_deleted(host, tmp_path):
    from sda_local.ui.state import SessionState

    path = tmp_path / "chats.sqlite3"
    c = controller(host, ConversationStore(path), tmp_path)
    st = SessionState()
    final = turn(c, st, "Tell me about tea.")
    key = final["conv_key"]
    assert key and final["conv_title"] == "Tell me about tea." and final["conv_pick"].value == key
    # an app restart: a new controller on the same file; the tab's key brings the conversation back
    again = controller(host, open_store(path), tmp_path).on_load(key)
    resumed = again["state"]
    assert "Resumed" in again["status"] and [t.user for t in resumed.turns] == ["Tell me about tea."]
    assert resumed.turns[0].aligned == st.turns[0].aligned and resumed.turns[0].aligned_tokens[0]["top"]
    # another tab (no key) starts empty: it only sees the saved chat in the list
    other = c.on_load("")
    assert not other["state"].turns and [v for _, v in other["conv_pick"].choices] == [key]
    opened = c.open_conversation(other["state"], key)
    assert "Opened" in opened["status"] and len(opened["state"].turns) == 1
    renamed = c.rename_conversation(st, "Tea notes")
    assert renamed["conv_title"] == "Tea notes" and ConversationStore(path).load(key)[0] == "Tea notes"
    turn(c, st, "And coffee?")  # a second turn is saved into the same conversation
    assert ConversationStore(path).list()[0].n_turns == 2
    new = c.new_conversation(st)
    assert not st.turns and new["conv_key"] == "" and len(ConversationStore(path).list()) == 1
    gone = c.delete_conversation(st, key)
    assert "Deleted" in gone["status"] and ConversationStore(path).list() == []
    assert "Resumed" not in c.on_load(key)["status"]  # a deleted conversation's key starts afresh


def test_a_damaged_or_locked_database_keeps_the_chat_working(host, tmp_path, monkeypatch):
    from sda_local.ui.state import SessionState

    monkeypatch.setattr(conversations, "LOCK_TIMEOUT_S", 0.2)
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"garbage " * 200)
    c = controller(host, open_store(bad), tmp_path)
    loaded = c.on_load("")
    assert "damaged" in loaded["db_info"] and any("damaged" in t.text for t in loaded.toasts)
    st = loaded["state"]
    final = turn(c, st, "Still there?")
    assert final["status"].startswith("Done") and len(final["conv_pick"].choices) == 1  # kept in memory

    path = tmp_path / "chats.sqlite3"
    c = controller(host, ConversationStore(path), tmp_path)
    st = SessionState()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        locked = turn(c, st, "Saved later?")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert locked["status"].startswith("Done") and st.turns  # the turn is there
    assert any("locked by another program" in t.text for t in locked.toasts)
    turn(c, st, "Now?")
    assert ConversationStore(path).list()[0].n_turns == 2  # saved once the lock was gone


# -- arena -------------------------------------------------------------------------------------------------------
def test_arena_votes_become_preference_pairs_and_a_win_rate(host, tmp_path):
    from sda_local.ui.state import SessionState

    c = controller(host, ConversationStore(tmp_path / "chats.sqlite3"), tmp_path)
    st = SessionState()
    c.toggle_arena(st, True)
    final = turn(c, st, "Give me one tip for a tidy desk.", max_tokens=10)
    chat = final["chat"]
    assert "Answer A" in chat and "Answer B" in chat and "Aligned (SDA)" not in chat and 'data-act="vote 1 A"' in chat
    assert "vote on turn 1 first" in final["inspector"]  # the inspector would give the answer away
    a_is = st.arenas()[0]["a"]
    voted = c.act(st, "vote 1 A 1700000000")
    assert "N = 1" in voted["status"] and 'data-vote="A"' in voted["chat"]
    assert st.data()["turns"][0]["arena"] == {"a": a_is, "vote": "A"}
    assert "sda-tok" in voted["inspector"]  # revealed after the vote
    assert "does not belong" in c.act(st, "vote 5 A")["status"]
    exported = c.export_preferences(SessionState())  # another session: the saved votes count
    path = exported["prefs_file"]
    (pair,) = load_pairs(path)
    winner = st.turns[0].aligned if a_is == "aligned" else st.turns[0].base
    assert pair.prompt == "Give me one tip for a tidy desk." and pair.chosen == winner.strip()
    expected = "+1.00" if a_is == "aligned" else "-1.00"
    assert expected in exported["prefs_report"] and "N = 1" in exported["prefs_report"]
