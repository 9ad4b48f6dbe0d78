"""The conversation sidebar through ``ChatController`` on the tiny random-weight GGUF (no Gradio): the search box
filters the saved conversations by title and message text, and titles stay distinct (a new chat whose first
message another one has, a rename to a taken title).  The store's side: test_conversations."""
from __future__ import annotations

import pytest
from sda_local.ui.conversations import ConversationStore, MemoryStore
from ui_support import controller

FAST = dict(evaluator="fixed", fixed_by="lam", fixed_lam=0.6, max_tokens=4, seed=3)


def chat(c, text: str):
    """A new conversation of one turn; its last reply."""
    from sda_local.ui.state import SessionState

    st = SessionState()
    c.begin_send(st, text)
    return list(c.send(st, "", **FAST))[-1]


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_the_search_box_filters_the_list_and_titles_stay_distinct(host, tmp_path, kind):
    store = ConversationStore(tmp_path / "chats.sqlite3") if kind == "sqlite" else MemoryStore()
    c = controller(host, store)
    tea, again, bike = chat(c, "Brewing green tea?"), chat(c, "Brewing green tea?"), chat(c, "A flat tyre?")
    assert (tea["conv_title"], again["conv_title"]) == ("Brewing green tea?", "Brewing green tea? (2)")
    st = bike["state"]
    listed = lambda reply: [v for _, v in reply["conv_pick"].choices]  # noqa: E731
    found = c.search_conversations(st, "GREEN TEA")
    assert listed(found) == [again["conv_key"], tea["conv_key"]] and found["conv_pick"].value is None
    assert listed(c.search_conversations(st, "tyre")) == [bike["conv_key"]]  # by its message
    answer = st.turns[0].aligned.strip()[:3] or st.turns[0].aligned
    assert bike["conv_key"] in listed(c.search_conversations(st, answer))  # by its answer's text
    c.search_conversations(st, "tyre")
    renamed = c.rename_conversation(st, "Brewing green tea?")  # a taken title: made distinct, and said
    assert renamed["conv_title"] == "Brewing green tea? (3)" and "another chat has that title" in renamed["status"]
    assert listed(renamed) == [bike["conv_key"]] == listed(c.search_conversations(st, "(3)"))  # the search stays
    assert renamed["conv_pick"].value == bike["conv_key"]
    assert len(listed(c.search_conversations(st, ""))) == 3  # an empty search lists them all
