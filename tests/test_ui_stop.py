"""Issue 29's Stop and reload fixes, through ``ChatController`` on the tiny random-weight GGUF (mechanics only: its
words are noise) with conversations in SQLite: Stop keeps the base answer that was on screen (shown, saved, marked
as stopped), a message stopped before any answer stays in the chat as a stopped turn (and in the history the
model is sent), a regeneration stopped before its new answer leaves the turn as it was, and a page that goes away
mid-answer (a reload) leaves the answer going on: the reloaded page follows it to its end, or stops it.  The
browser side: test_ui_browser_stop (Stop) and test_ui_browser_turns (the reload)."""
from __future__ import annotations

import threading
import time

from sda_local.ui.conversations import ConversationStore
from ui_support import controller, start_saved_turn

FAST = dict(evaluator="fixed", fixed_by="lam", fixed_lam=0.6, max_tokens=6, seed=3)
LONG = dict(FAST, max_tokens=120)  # both answers stream together (λ is known first), well past a few tokens
JUDGED = dict(LONG, evaluator="local")  # a judge reads the base answer: it streams alone, before λ


def saved_turns(store: ConversationStore, key: str) -> list[dict]:
    return store.load(key)[1]["turns"]


def until(replies, cond) -> None:
    for _ in replies:
        if cond():
            return
    raise AssertionError("the turn ended before the condition held")


# -- 1. Stop keeps the base answer that was on screen ----------------------------------------------------------
def test_stop_while_both_answers_stream_keeps_the_base_answer_shown_and_saved(host, tmp_path):
    c, st, store, replies, key = start_saved_turn(host, tmp_path, "Write a long story about a dragon.", **LONG)
    until(replies, lambda: st.live is not None and len(st.live.base) > 10 and len(st.live.aligned) > 5)
    shown = st.live.base
    assert st.live.base_finish == ""  # the base answer was still streaming
    c.stop(st)
    final = list(replies)[-1]
    rec = st.turns[-1]
    assert rec.finish_reason == "stopped" and rec.base.startswith(shown) and rec.aligned
    assert rec.base_finish_reason == "stopped" and rec.timings["base_s"] > 0 and rec.timings["base_tokens"] > 0
    (saved,) = saved_turns(store, key)
    assert saved["base"] == rec.base and saved["base_finish_reason"] == "stopped"
    assert "the partial answer was kept" in final["status"]
    base_col = final["chat"].split('<div class="sda-base">')[1].split('<div class="sda-aligned">')[0]
    assert 'class="sda-cut">stopped<' in base_col  # (its time is no longer 0: ``base_s`` above)


# -- 2. a message stopped before its answer stays -------------------------------------------------------------
def test_stop_while_a_judge_waits_for_the_base_answer_keeps_the_message_and_the_partial_base(host, tmp_path):
    c, st, store, replies, key = start_saved_turn(host, tmp_path, "What is the capital of Peru?", **JUDGED)
    until(replies, lambda: st.live is not None and len(st.live.base) > 10)
    assert st.live.phase == "base"  # no score, no λ yet
    shown = st.live.base
    c.stop(st)
    final = list(replies)[-1]
    (rec,) = st.turns
    assert rec.user == "What is the capital of Peru?" and rec.finish_reason == "stopped"
    assert rec.base.startswith(shown) and rec.aligned == "" and rec.lam is None
    assert "your message was kept with the partial base answer" in final["status"]
    assert 'data-phase="stopped"' in final["chat"] and "stopped before this answer started" in final["chat"]
    (saved,) = saved_turns(store, key)
    assert saved["user"] == rec.user and saved["base"] == rec.base and saved["finish_reason"] == "stopped"
    # the chat goes on, and the model is sent the stopped question (a turn you stopped is in the history)
    again = list(c.send(st, "And of Chile?", **FAST))[-1]
    assert again["status"].startswith("Done") and [t.user for t in st.turns] == [rec.user, "And of Chile?"]
    assert {"role": "user", "content": rec.user} in st.chat.messages()
    # Regenerate aligned has no λ to reuse for it; Regenerate base answers it afresh
    from sda_local.ui.state import SessionState

    c2 = controller(host)
    st2 = SessionState()
    replies = c2.send(st2, "Stopped at once?", **JUDGED)
    next(replies)
    c2.stop(st2)
    list(replies)
    assert "Regenerate base" in list(c2.regenerate(st2, **FAST))[-1]["status"]
    redone = list(c2.regenerate_base(st2, **FAST))[-1]
    assert redone["status"].startswith("Base regenerated") and st2.turns[-1].finish_reason in ("stop", "length")
    assert st2.version_count(1) == 2  # the stopped one stays, as the older version


def test_stop_right_after_enter_keeps_the_message_as_a_stopped_turn(host, tmp_path):
    """As the page does it: Enter (``begin_send`` empties the box), Stop while the turn waits, then the queued
    ``send`` runs."""
    from sda_local.ui.state import SessionState

    store = ConversationStore(tmp_path / "chats.sqlite3")
    c = controller(host, store)
    st = SessionState()
    taken = c.begin_send(st, "What is the capital of Peru?")
    assert taken["message"] == ""
    assert "Stopping" in c.stop(st)["status"]
    replies = list(c.send(st, "", **LONG))
    final = replies[-1]
    (rec,) = st.turns
    assert rec.user == "What is the capital of Peru?" and rec.finish_reason == "stopped" and rec.aligned == ""
    assert "nothing new was kept" not in final["status"] and "your message was kept" in final["status"]
    assert "message" not in final  # the box is left as it is (empty, or what was typed since)
    assert "What is the capital of Peru?" in final["chat"] and 'data-phase="stopped"' in final["chat"]
    (saved,) = saved_turns(store, final["conv_key"])
    assert saved["user"] == rec.user and saved["finish_reason"] == "stopped"
    assert not st.pending and st.live is None and not st.stop.is_set()
    c.begin_send(st, "Hello?")
    assert list(c.send(st, "", **FAST))[-1]["status"].startswith("Done")  # the chat is usable


def test_a_regeneration_stopped_before_its_new_answer_leaves_the_turn_as_it_was(host):
    from sda_local.ui.state import SessionState

    c = controller(host)
    st = SessionState()
    list(c.send(st, "Hi there.", **FAST))
    old = st.turns[0]
    for begin, run in ((c.begin_regenerate, c.regenerate), (c.begin_regenerate_base, c.regenerate_base)):
        begin(st)
        c.stop(st)
        final = list(run(st, **LONG))[-1]
        assert st.turns == [old] and st.version_count(1) == 1, begin.__name__
        assert "the turn is as it was" in final["status"]


# -- 3. a reload mid-answer: the answer goes on, the reloaded page follows it -------------------------------------
def _page_turn(c, st, text: str):
    """A turn sent as the page sends it (``begin_send``, then ``send``), run until its aligned answer shows."""
    c.begin_send(st, text)
    replies = c.send(st, "", **LONG)
    key = next(replies)["conv_key"]
    until(replies, lambda: st.live is not None and len(st.live.aligned) > 5)
    return replies, key


def test_a_page_reloaded_mid_answer_follows_the_answer_to_its_end(host, tmp_path):
    from sda_local.ui.state import SessionState

    store = ConversationStore(tmp_path / "chats.sqlite3")
    c = controller(host, store, save_interval_s=0)
    st = SessionState()
    replies, key = _page_turn(c, st, "Write a long story about a dragon.")
    shown = st.live.aligned
    with st.guard:  # (the turn waits for it at its next token, so it cannot end while this looks)
        replies.close()  # what Gradio does when the page is reloaded
        assert st.live is not None and host.detached_running()  # the answer goes on
        loaded = c.on_load(key)  # the reloaded page
        assert loaded["state"] is st and "still being generated" in loaded["status"]
        assert 'class="sda-turn sda-live"' in loaded["chat"]
        following = c.follow(loaded["state"])
        follow = [next(following)]
    follow += list(following)
    assert len(follow) >= 2 and all("status" not in r for r in follow[:-1])  # "Resumed…" stays up meanwhile
    assert follow[-1]["status"].startswith("Done") and st.live is None
    rec = st.turns[-1]
    assert rec.finish_reason in ("length", "stop") and rec.aligned.startswith(shown) and len(rec.aligned) > len(shown)
    (saved,) = saved_turns(store, key)
    assert saved["finish_reason"] == rec.finish_reason and saved["aligned"] == rec.aligned
    host.wait_detached(30)
    assert not host.detached_running()
    assert list(c.follow(st)) == [{}]  # nothing to follow any more


def test_stop_on_the_reloaded_page_ends_the_answer_it_follows(host, tmp_path):
    from sda_local.ui.state import SessionState

    store = ConversationStore(tmp_path / "chats.sqlite3")
    c = controller(host, store)
    st = SessionState()
    replies, key = _page_turn(c, st, "Write a long story about a dragon.")
    with st.guard:  # the answer cannot end before Stop is pressed
        replies.close()
        loaded = c.on_load(key)
        follow = c.follow(loaded["state"])
        next(follow)
        assert "Stopping" in c.stop(loaded["state"])["status"]
    final = list(follow)[-1]
    assert "the partial answer was kept" in final["status"] and st.turns[-1].finish_reason == "stopped"
    (saved,) = saved_turns(store, key)
    assert saved["finish_reason"] == "stopped" and saved["aligned"] == st.turns[-1].aligned


def test_a_model_switch_or_closing_the_host_stops_an_answer_nobody_follows(host, tmp_path):
    from sda_local.ui.state import SessionState

    store = ConversationStore(tmp_path / "chats.sqlite3")
    c = controller(host, store)
    st = SessionState()
    replies, key = _page_turn(c, st, "Write a long story about a dragon.")
    with st.guard:  # the answer cannot end before it is stopped
        replies.close()  # the tab was closed: nobody follows the answer
        assert host.detached_running()
        # what a model switch and closing the app do first (ModelHost.switch, close)
        stopper = threading.Thread(target=host.stop_detached)
        stopper.start()
        assert st.stop.wait(30)
    stopper.join(60)
    assert not host.detached_running() and st.live is None
    (saved,) = saved_turns(store, key)
    assert saved["finish_reason"] == "stopped" and saved["aligned"]


def test_a_new_turn_waits_for_an_answer_still_going_on_for_a_page_that_went_away(host):
    from sda_local.ui.state import SessionState

    c = controller(host)
    st = SessionState()
    replies, _ = _page_turn(c, st, "Write a long story about a dragon.")
    other, out = SessionState(), []
    with st.guard:  # the answer going on cannot move while this holds
        replies.close()
        meanwhile = threading.Thread(target=lambda: out.append(list(c.send(other, "Meanwhile?", **FAST))[-1]))
        meanwhile.start()
        time.sleep(0.5)
        assert not out and st.live is not None  # the new turn waits (never two on the engine at once)
    meanwhile.join(120)
    assert out[0]["status"].startswith("Done") and st.live is None and st.turns[-1].finish_reason != "stopped"
