"""Issue 29's smaller chat fixes, through ``ChatController`` on the tiny random-weight GGUF (mechanics only), the
page's style sheet and the built app: the status line keeps a notice ("still being generated", "Stopping") while
the answer streams instead of blanking it at the next token, a search with no match says so, a conversation is
named in quotes with its turn count ("“…home.” (5 turns)", not "…home.: 5 turn(s)"), Enter in the title field
renames, and the style keeps wide tables inside their answer, notes legible and buttons 24 px or more.  What a
browser measures (contrast, sizes, the table scrolling): test_ui_browser_stop."""
from __future__ import annotations

import re

from sda_local.ui.conversations import ConversationStore
from ui_support import controller

FAST = dict(evaluator="fixed", fixed_by="lam", fixed_lam=0.6, max_tokens=6, seed=3)
LONG = dict(FAST, max_tokens=120)


def test_a_notice_stays_up_while_the_answer_streams(host):
    from sda_local.ui.state import SessionState

    c = controller(host)
    st = SessionState()
    c.begin_send(st, "First?")
    running = c.send(st, "", **LONG)
    assert next(running)["status"] == ""  # a new turn clears the previous turn's status
    next(running)
    busy = c.begin_send(st, "Second?")  # Enter while the answer streams
    assert "still being generated" in busy["status"]
    replies = list(running)
    streamed, final = replies[:-1], replies[-1]
    assert streamed and all("status" not in r for r in streamed)  # the notice is not blanked by the next token
    assert final["status"].startswith("Done")


def test_a_search_with_no_match_says_so_and_the_next_match_clears_it(host):
    from sda_local.ui.state import SessionState

    c = controller(host)
    st = SessionState()
    c.begin_send(st, "Brewing green tea?")
    list(c.send(st, "", **FAST))
    missed = c.search_conversations(st, "zebra")
    assert missed["conv_pick"].choices == [] and "no saved conversation matches “zebra”" in missed["status"]
    found = c.search_conversations(st, "tea")
    assert len(found["conv_pick"].choices) == 1 and found["status"] == ""
    assert "status" not in c.search_conversations(st, "green")  # another match leaves the status line alone


def test_a_resumed_or_opened_chat_is_named_in_quotes_with_its_turns(host, tmp_path):
    from sda_local.ui.state import SessionState

    c = controller(host, ConversationStore(tmp_path / "chats.sqlite3"))
    st = SessionState()
    for text in ("How can I get back home.", "And then?"):
        c.begin_send(st, text)
        last = list(c.send(st, "", **FAST))[-1]
    shown = lambda status: status.replace("\\", "")  # the status is Markdown: "." is escaped
    resumed = shown(c.on_load(last["conv_key"])["status"])
    assert resumed == "**Resumed:** “How can I get back home.” (2 turns)" and ".:" not in resumed
    opened = shown(c.open_conversation(SessionState(), last["conv_key"])["status"])
    assert opened == "**Opened:** “How can I get back home.” (2 turns)"


def test_enter_in_the_title_field_renames(host):
    from sda_local.ui.app import build_app

    demo = build_app(host)
    (title,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "sda-conv-title"]
    renames = [f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "rename_conversation"]
    triggers = {(t[0], t[1]) for f in renames for t in f.targets}
    assert (title._id, "submit") in triggers


def test_the_style_keeps_wide_tables_in_their_answer_notes_legible_and_buttons_large():
    from sda_local.ui.render import CSS

    assert ".sda-pair > * { min-width: 0; }" in CSS  # a grid column no longer grows to its widest table
    assert re.search(r"\.sda-md table \{[^}]*display: block;[^}]*overflow-x: auto;", CSS)
    assert "opacity: .92" not in CSS  # the base column's text was faded on top of its grey
    assert "color-mix(in srgb, var(--body-text-color) 78%, var(--background-fill-primary))" in CSS
    assert re.search(r"\.sda-act, \.sda-copy \{[^}]*min-height: 24px; min-width: 24px;", CSS)
