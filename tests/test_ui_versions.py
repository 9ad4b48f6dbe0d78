"""A turn's versions (‹ 1/2 ›) and Regenerate base, through ``ChatController`` on the tiny random-weight GGUF
(mechanics only, no Gradio): a regeneration keeps the answer it replaces as version 1, ‹ › shows another version
and the chat continues from the one shown, versions are saved, reloaded and exported, and Regenerate base draws
a new base answer and a new aligned answer through the same turn as a send.  The page: test_ui_browser_pane."""
from __future__ import annotations

import json
from pathlib import Path

from sda_local.ui.conversations import ConversationStore
from ui_support import controller

FAST = dict(evaluator="fixed", fixed_by="lam", fixed_lam=0.6, max_tokens=6, seed=3)


def send(c, st, text):
    c.begin_send(st, text)
    return list(c.send(st, "", **FAST))[-1]


def regenerate(c, st):
    c.begin_regenerate(st)
    return list(c.regenerate(st, **FAST))[-1]


def regenerate_base(c, st):
    c.begin_regenerate_base(st)
    return list(c.regenerate_base(st, **FAST))[-1]


def history(st) -> list[str]:
    """The assistant messages the next turn is sent with."""
    return [m["content"] for m in st.chat.messages() if m["role"] == "assistant"]


def test_regenerate_keeps_version_1_and_shows_version_2(host):
    from sda_local.ui.state import SessionState

    c = controller(host)
    st = SessionState()
    send(c, st, "Hello?")
    first = st.turns[0]
    done = regenerate(c, st)
    second = st.turns[0]
    assert done["status"].startswith("Regenerated") and len(st.turns) == 1 and second is not first
    assert second.base == first.base and second.aligned != first.aligned  # the base answer and score are reused
    versions = st.versions()[0]
    assert (versions.count, versions.shown) == (2, 1)
    assert versions.branches[0][0]["aligned"] == first.aligned and versions.branches[1] is None
    html = done["chat"]
    assert 'data-version="2" data-versions="2"' in html and ">2/2<" in html
    assert 'data-act="version 1 1"' in html and 'data-act="version 1 3"' not in html  # ‹ only: 2 is the last
    assert history(st) == [second.aligned]


def test_the_arrows_show_another_version_and_the_chat_continues_from_it(host):
    from sda_local.ui.state import SessionState

    c = controller(host)
    st = SessionState()
    send(c, st, "Hello?")
    first = st.turns[0]
    regenerate(c, st)
    second = st.turns[0]
    back = c.act(st, "version 1 1 1700000000")  # ‹ (the page adds the click time)
    assert st.turns[0].aligned == first.aligned and st.turns[0].base == first.base
    assert "1 of 2" in back["status"] and ">1/2<" in back["chat"] and 'data-act="version 1 2"' in back["chat"]
    assert history(st) == [first.aligned]  # the version shown is the one the chat continues from
    send(c, st, "And then?")
    assert [t.user for t in st.turns] == ["Hello?", "And then?"] and history(st)[0] == first.aligned
    later = st.turns[1]
    c.act(st, "version 1 2 1700000001")  # ›: version 2 had no second turn; turn 2 stays with version 1
    assert [t.aligned for t in st.turns] == [second.aligned] and history(st) == [second.aligned]
    c.act(st, "version 1 1 1700000002")
    assert [t.aligned for t in st.turns] == [first.aligned, later.aligned]
    # the aligned answer of the version shown can be regenerated again: a third version, on version 1's base answer
    c.act(st, "version 1 2 1700000003")
    regenerate(c, st)
    third = st.turns[0]
    assert third.base == second.base == first.base and st.versions()[0].count == 3
    assert "no version 9" in c.act(st, "version 1 9 1700000004")["status"] and len(st.turns) == 1


def test_versions_are_saved_reloaded_and_exported_and_old_chats_still_load(host, tmp_path):
    from sda_local.ui.state import SessionState

    path = tmp_path / "chats.sqlite3"
    c = controller(host, ConversationStore(path), export_dir=tmp_path)
    st = SessionState()
    send(c, st, "Hello?")
    first = st.turns[0]
    regenerate(c, st)
    regenerate_base(c, st)
    third = st.turns[0]
    key = c.act(st, "version 1 1 1700000000")["conv_key"]
    saved = ConversationStore(path).load(key)[1]["turns"][0]
    assert saved["version"] == 1 and len(saved["versions"]) == 3 and saved["versions"][0] is None
    assert saved["aligned"] == first.aligned and saved["versions"][2][0]["base"] == third.base
    resumed = controller(host, ConversationStore(path), export_dir=tmp_path).on_load(key)  # a reload, or a restart
    again = resumed["state"]
    assert again.turns[0].aligned == first.aligned and ">1/3<" in resumed["chat"]
    c.act(again, "version 1 3 1700000001")
    assert (again.turns[0].base, again.turns[0].aligned) == (third.base, third.aligned)
    exported = json.loads(Path(c.export_chat(again)["export_file"]).read_text("utf-8"))
    turn = exported["turns"][0]
    assert turn["version"] == 3 and turn["versions"][0][0]["aligned"] == first.aligned and turn["versions"][2] is None
    # a conversation saved before versions existed: one version each, no ‹ ›
    old = {k: v for k, v in saved.items() if k not in ("versions", "version")}
    ConversationStore(path).save("old1", "Old chat", {"format": "sda-local-chat/1", "turns": [old]})
    loaded = c.on_load("old1")
    assert loaded["state"].versions() == [None] and "sda-versions" not in loaded["chat"]


def test_regenerate_base_draws_a_new_base_and_aligned_answer_as_a_new_version(host):
    from sda_local.ui.state import SessionState

    c = controller(host)
    st = SessionState()
    send(c, st, "Hello?")
    first = st.turns[0]
    queued = c.begin_regenerate_base(st)
    assert "draw the base answer again" in queued["chat"]
    done = list(c.regenerate_base(st, **FAST))[-1]
    new = st.turns[0]
    assert done["status"].startswith("Base regenerated") and len(st.turns) == 1
    assert new.base != first.base and new.aligned != first.aligned and new.lam == 0.6
    assert new.regenerations == 1 and new.settings["sampling"]["seed"] == 3  # draw 1: the seed moved by 1
    versions = st.versions()[0]
    assert (versions.count, versions.shown) == (2, 1) and versions.branches[0][0]["base"] == first.base
    assert history(st) == [new.aligned]
    c.begin_regenerate_base(st)  # stopped before its aligned answer starts: the turn stays as it was
    st.stop.set()
    stopped = list(c.regenerate_base(st, **FAST))[-1]
    assert "Stopped" in stopped["status"] and st.turns == [new] and st.versions()[0].count == 2
    nothing = list(c.regenerate_base(SessionState(), **FAST))  # no turn yet: said, nothing runs
    assert len(nothing) == 1 and "send a message first" in nothing[0]["status"]


def test_regenerate_base_scores_the_new_base_answer_before_its_lambda(host):
    from sda_local.ui.state import SessionState

    judged = {**FAST, "evaluator": "self"}  # the self-score reads the base answer: λ follows from it
    c = controller(host)
    st = SessionState()
    c.begin_send(st, "Hello?")
    list(c.send(st, "", **judged))
    first = st.turns[0]
    c.begin_regenerate_base(st)
    replies = list(c.regenerate_base(st, **judged))
    new = st.turns[0]
    assert any('data-phase="judge"' in r.get("chat", "") for r in replies)  # scored after the new base answer
    assert new.lam_source == "score" and new.base != first.base and new.score["raw"] != first.score["raw"]
    assert st.versions()[0].branches[0][0]["score"] == first.score  # version 1 keeps its own score and λ


def test_a_fixed_seed_never_draws_a_version_of_the_turn_again(host, tmp_path):
    from sda_local.ui.state import SessionState

    path = tmp_path / "chats.sqlite3"
    c = controller(host, ConversationStore(path))
    st = SessionState()
    send(c, st, "Hello?")
    regenerate_base(c, st)
    second = st.turns[0]
    key = c.act(st, "version 1 1 1700000000")["conv_key"]  # back to version 1 (draw 0)
    regenerate_base(c, st)  # draw 2, not version 2's draw 1 again
    third = st.turns[0]
    assert (second.regenerations, third.regenerations) == (1, 2) and third.base != second.base
    again = controller(host, ConversationStore(path)).on_load(key)["state"]  # a reload: nothing kept in memory
    c.act(again, "version 1 1 1700000001")
    regenerate_base(c, again)
    fourth = again.turns[0]
    assert fourth.regenerations == 3 and fourth.base not in (second.base, third.base)
    assert again.versions()[0].count == 4
