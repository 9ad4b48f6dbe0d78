"""The chat's turns as a user sees them (issue 20), through ``ChatController`` on the tiny random-weight GGUF
(mechanics only: its words are noise) and the renderer: a new chat has no fixed seed, Markdown tables render,
λ stays lowercase, both answers say when they hit max tokens, Stop looks idle while nothing runs, building the
page prints none of our warnings, and a turn is saved while it runs, so a reload, a closed page or a killed app
keeps it (the kill is real: `python -m sda_local.chat` on SmolLM2, killed mid-answer)."""
from __future__ import annotations

import re
import time
import warnings

import pytest
from sda_local.ui.conversations import ConversationStore
from ui_support import controller, start_saved_turn

from sda_local.session import TurnRecord

FAST = dict(evaluator="fixed", fixed_by="lam", fixed_lam=0.6, max_tokens=6, seed=3)
LONG = dict(FAST, max_tokens=120)  # a few of these fit in the tiny model's 1024-token context


def record(**kw) -> TurnRecord:
    base = dict(user="Hi", base="b", aligned="a", score=None, lam=0.25, lam_source="fixed", evaluator="fixed",
                warnings=[], settings={"preset": {"name": "helpfulness"}}, timings={}, finish_reason="stop")
    return TurnRecord(**{**base, **kw})


def saved_turns(store: ConversationStore, key: str) -> list[dict]:
    return store.load(key)[1]["turns"]


# -- 2. no fixed seed by default ----------------------------------------------------------------------------
def test_a_new_chat_has_no_fixed_seed_and_a_typed_one_still_counts():
    import gradio as gr
    from sda_local.ui.controls import Controls
    from sda_local.ui.fields import SETTING_FIELDS
    from sda_local.ui.layout import setting_widget

    seed = next(f for f in SETTING_FIELDS if f.name == "seed")
    assert seed.default is None and seed.placeholder == "none"
    with gr.Blocks():
        widget = setting_widget(seed)
    # Gradio shows (and sends) 0 for an empty number box without a placeholder
    assert widget.value is None and widget.placeholder == "none"
    assert Controls.from_named({"seed": None}).settings().sampling.seed is None
    assert Controls.from_named({"seed": ""}).settings().sampling.seed is None
    assert Controls.from_named({"seed": 7.0}).settings().sampling.seed == 7


# -- 3. Markdown ----------------------------------------------------------------------------------------------
def test_markdown_renders_tables_and_strikethrough_and_shows_images_as_their_alt_text():
    from sda_local.ui.markdown import render_markdown

    html = render_markdown("| fruit | price |\n|---|--:|\n| <b>apple</b> | ~~2~~ 1 |\n\n"
                           "![a <i>cat</i> photo](http://example.org/cat.png) and ![](x.png)")
    assert "<table>" in html and "<th>fruit</th>" in html and '<td style="text-align:right"><s>2</s> 1</td>' in html
    assert "<td>&lt;b&gt;apple&lt;/b&gt;</td>" in html  # raw HTML stays text, in tables too
    assert "<img" not in html and "example.org" not in html  # nothing to load, not even as a link
    assert '<span class="sda-img-alt" title="image not loaded">a &lt;i&gt;cat&lt;/i&gt; photo</span>' in html
    assert '<span class="sda-img-alt" title="image not loaded">image</span>' in html  # no alt text: "image"


# -- 4. headers, max-tokens notes, the Stop button --------------------------------------------------------------
def test_lambda_in_a_header_is_kept_out_of_the_uppercase_style():
    from sda_local.ui.render import CSS, _record_html

    html = _record_html(1, record(lam=0.25))
    head = re.search(r'<div class="sda-aligned"><div class="sda-who">(.*?)</div>', html).group(1)
    assert '<span class="sda-nocase">λ 0.250</span>' in head
    assert re.search(r"\.sda-who \{[^}]*text-transform: uppercase", CSS)  # why the span is needed
    assert ".sda-nocase { text-transform: none; }" in CSS


def test_both_answers_say_when_they_hit_max_tokens():
    from sda_local.ui.render import _live_html, _record_html
    from sda_local.ui.state import LiveTurn

    def notes(html):
        base = re.search(r'<div class="sda-base">(.*?)</div><div class="sda-aligned">', html, re.S).group(1)
        return "hit max tokens" in base, "hit max tokens" in html.split('<div class="sda-aligned">')[1]

    assert notes(_record_html(1, record(base_finish_reason="length", finish_reason="stop"))) == (True, False)
    assert notes(_record_html(1, record(base_finish_reason="stop", finish_reason="length"))) == (False, True)
    assert notes(_record_html(1, record(base_finish_reason="length", finish_reason="length"))) == (True, True)
    live = LiveTurn(user="Hi", base="b", phase="aligned", base_finish="length")
    assert notes(_live_html(1, live, "sigmoid"))[0]


def test_a_real_turn_cut_at_max_tokens_notes_it_under_both_answers(host):
    from sda_local.ui.state import SessionState

    c = controller(host)
    st = SessionState()
    final = list(c.send(st, "Tell me a long story.", **{**FAST, "max_tokens": 3}))[-1]
    rec = st.turns[-1]
    assert rec.base_finish_reason == "length" and rec.finish_reason == "length"
    assert final["chat"].count('<div class="sda-cut">hit max tokens</div>') == 2


def test_send_becomes_stop_only_while_an_answer_is_on_its_way():
    from sda_local.ui.render import CSS

    hidden = r"\{ display: none !important; \}"
    assert re.search(r"\.gradio-container:not\(:has\(#sda-chat \.sda-live\)\) #sda-stop " + hidden, CSS)
    assert re.search(r"\.gradio-container:has\(#sda-chat \.sda-live\) #sda-send " + hidden, CSS)
    # the browser tests check what is shown (test_ui_browser_turns, test_ui_browser_pane)


# -- 6. our warnings --------------------------------------------------------------------------------------------
def test_building_the_page_warns_about_nothing_of_ours(host):
    from sda_local.ui.app import build_app

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        build_app(host)
    # ResourceWarning aside: asyncio's "unclosed event loop" is an event loop another library left for the
    # garbage collector, which may run during any test (not ours, and only shown with -W default)
    ours = [f"{w.filename}:{w.lineno}: {w.message}" for w in seen if not issubclass(w.category, ResourceWarning)]
    assert not ours, ours


# -- 5. a turn is saved while it runs -------------------------------------------------------------------------------
def test_the_message_is_saved_when_sent_and_the_answer_as_it_grows(host, tmp_path):
    from sda_local.ui.state import SessionState

    store = ConversationStore(tmp_path / "chats.sqlite3")
    c = controller(host, store, save_interval_s=0)
    st = SessionState()
    replies = c.send(st, "Keep this question.", **LONG)
    first = next(replies)
    key = first["conv_key"]
    assert key and first["message"] == ""  # the tab learns the id at once (a reload finds the conversation)
    (saved,) = saved_turns(store, key)
    assert saved["user"] == "Keep this question." and saved["finish_reason"] == "interrupted"
    for reply in replies:
        if st.live is not None and len(st.live.aligned) > 5:
            break
    (saved,) = saved_turns(store, key)
    assert saved["aligned"] and st.live.aligned.startswith(saved["aligned"]) and saved["lam"] == 0.6
    assert saved["base"] == st.live.base and saved["base"]
    for reply in replies:
        pass
    (saved,) = saved_turns(store, key)  # the finished record replaced the interrupted one
    assert saved["finish_reason"] != "interrupted" and saved["aligned"] == st.turns[-1].aligned
    assert saved["aligned_tokens"] and saved["timings"]


def test_saving_while_tokens_arrive_is_throttled(host, tmp_path, monkeypatch):
    from sda_local.ui.state import SessionState

    store = ConversationStore(tmp_path / "chats.sqlite3")
    saves = []
    save = store.save
    monkeypatch.setattr(store, "save", lambda *a: (saves.append(time.monotonic()), save(*a)))
    c = controller(host, store, save_interval_s=3600)
    list(c.send(SessionState(), "Count the saves.", **LONG))
    # the start, each phase event (base done, λ, aligned done: no token in between), and the end; not per token
    assert len(saves) <= 5


def test_a_page_that_goes_away_mid_answer_keeps_what_was_generated(host, tmp_path):
    from sda_local.ui.state import SessionState

    store = ConversationStore(tmp_path / "chats.sqlite3")
    c = controller(host, store, save_interval_s=3600)
    st = SessionState()
    replies = c.send(st, "Write a poem.", **LONG)
    key = next(replies)["conv_key"]
    for reply in replies:
        if st.live is not None and len(st.live.aligned) > 5:
            break
    shown = st.live.aligned
    replies.close()  # what Gradio does when the page is reloaded or closed
    assert st.live is None and not st.pending  # the session is usable again
    (saved,) = saved_turns(store, key)
    assert saved["finish_reason"] == "stopped" and saved["aligned"].startswith(shown)

    # closed before the aligned answer started: the question is kept, marked as interrupted
    replies = c.send(st, "And another?", **LONG)
    next(replies)
    replies.close()
    assert [t["finish_reason"] for t in saved_turns(store, key)] == ["stopped", "interrupted"]
    assert saved_turns(store, key)[1]["user"] == "And another?"


def test_after_a_restart_an_interrupted_turn_shows_as_such(host, tmp_path):
    from sda_local.ui.state import SessionState

    path = tmp_path / "chats.sqlite3"
    c = controller(host, ConversationStore(path), save_interval_s=0)
    st = SessionState()
    replies = c.send(st, "Lost in a crash?", **LONG)
    key = next(replies)["conv_key"]
    for reply in replies:
        if st.live is not None and st.live.aligned:
            break
    partial = saved_turns(ConversationStore(path), key)[0]["aligned"]
    # the app dies here (the generator is never resumed nor closed); a new one opens the same database
    after = controller(host, ConversationStore(path))
    loaded = after.on_load(key)
    assert "Resumed" in loaded["status"]
    assert 'data-phase="interrupted"' in loaded["chat"] and "interrupted: the app stopped" in loaded["chat"]
    assert "Lost in a crash?" in loaded["chat"] and partial and loaded["state"].turns[0].aligned == partial
    replies.close()  # (frees the engine this process shares with the "new app")
    again = list(after.send(loaded["state"], "Still here?", **FAST))[-1]  # the chat goes on after it
    assert again["status"].startswith("Done") and len(loaded["state"].turns) == 2


def test_a_first_message_stopped_before_any_answer_keeps_its_conversation(host, tmp_path):
    """(Issue 29: it used to vanish, conversation and all.)"""
    c, st, store, replies, key = start_saved_turn(host, tmp_path, "Never mind.", **LONG)
    assert [s.id for s in store.list()] == [key]
    c.stop(st)
    final = list(replies)[-1]
    assert "your message was kept" in final["status"] and final["conv_key"] == key
    (saved,) = saved_turns(store, key)
    assert saved["user"] == "Never mind." and saved["finish_reason"] == "stopped"


def test_a_reload_while_the_old_page_still_streams_takes_that_session_over(host, tmp_path):
    from sda_local.ui.state import SessionState

    c = controller(host, ConversationStore(tmp_path / "chats.sqlite3"))
    st = SessionState()
    replies = c.send(st, "Still going?", **LONG)
    key = next(replies)["conv_key"]
    next(replies)
    loaded = c.on_load(key)  # the old page never went away: its turn is still running
    assert loaded["state"] is st and "still being generated" in loaded["status"]
    list(replies)
    assert c.on_load(key)["state"] is not st  # once it ended, a reload opens the saved conversation


@pytest.mark.slow
def test_killing_the_app_mid_answer_keeps_the_question_and_the_partial_answer(host, tmp_path):
    gradio_client = pytest.importorskip("gradio_client")
    from ui_support import app_subprocess

    db = tmp_path / "chats.sqlite3"
    env = {"SDA_LOCAL_CHAT_DB": str(db), "GRADIO_ANALYTICS_ENABLED": "False",
           "SDA_LOCAL_CONFIG": str(tmp_path / "config")}
    question = "Write a long story about a lighthouse keeper."
    with app_subprocess("--n-ctx", "1024", "--threads", "1", env=env, log=tmp_path / "app.log") as (url, proc):
        c = gradio_client.Client(url, verbose=False)
        job = c.submit(message=question, evaluator="fixed", fixed_by="lam", fixed_lam=0.5, max_tokens=900,
                       api_name="/send")
        deadline = time.time() + 240
        partial = ""
        while not partial and time.time() < deadline:  # until the growing answer has been saved
            time.sleep(0.5)
            listed = ConversationStore(db).list() if db.exists() else []
            partial = saved_turns(ConversationStore(db), listed[0].id)[0]["aligned"] if listed else ""
        assert partial, (tmp_path / "app.log").read_text()[-3000:]
        assert not job.done()
        proc.kill()  # SIGKILL: no clean-up runs
        proc.wait(timeout=30)
    (summary,) = ConversationStore(db).list()
    (saved,) = saved_turns(ConversationStore(db), summary.id)
    assert saved["user"] == question and saved["finish_reason"] == "interrupted"
    assert saved["aligned"].startswith(partial) and saved["base"]
    loaded = controller(host, ConversationStore(db)).on_load(summary.id)  # the app started again
    assert 'data-phase="interrupted"' in loaded["chat"] and question in loaded["chat"]
