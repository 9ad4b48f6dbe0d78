"""Issue 20, items 4–5 and the session's history, through ``ChatController`` on the tiny random-weight GGUF
(mechanics only) and the renderer: a click on a word of an aligned answer finds the token behind it (Markdown
syntax the page does not show included), Enter or Regenerate while an answer is on its way is refused at once,
said, and not run later, the plot is never emptied to None (Gradio's plot throws then), and an interrupted turn
is shown but kept out of the history the model is sent.  The browser side: test_ui_browser_pane."""
from __future__ import annotations

from sda_local.ui.conversations import ConversationStore
from sda_local.ui.render import chat_html
from ui_support import controller

FAST = dict(evaluator="fixed", fixed_by="lam", fixed_lam=0.6, max_tokens=6, seed=3)


def toks(*texts: str) -> list[dict]:
    return [{"i": i, "text": t, "js": 0.1, "temperature": 1.0, "prob": 0.5} for i, t in enumerate(texts)]


def turn(aligned_tokens: list[dict], **kw) -> dict:
    aligned = "".join(t["text"] for t in aligned_tokens)
    return {"user": "Hi", "base": "b", "aligned": aligned, "score": None, "lam": 0.25, "lam_source": "fixed",
            "evaluator": "fixed", "warnings": [], "settings": {"preset": {"name": "x"}}, "timings": {},
            "aligned_tokens": aligned_tokens, "finish_reason": "stop", **kw}


# -- 4. a click on a word ----------------------------------------------------------------------------------------
def test_a_visible_character_maps_to_the_token_that_wrote_it():
    from sda_local.ui.pick import token_at

    bold = toks("**Hel", "lo**", " world")  # shown: "Hello world"
    assert [token_at(bold, "**Hello** world", n) for n in (0, 4, 5, 9, 99)] == [0, 1, 2, 2, 2]
    code = toks("```py\n", "x", " =", " 1", "\n```")  # shown: "x = 1" and the block's Copy button, not counted
    assert [token_at(code, "```py\nx = 1\n```", n) for n in (0, 1, 2)] == [1, 2, 3]
    listed = toks("- one", "\n- two &", " three")  # shown: "one", "two &", "three" (an entity is one character)
    assert [token_at(listed, "- one\n- two & three", n) for n in (0, 3, 6, 7)] == [0, 1, 1, 2]
    assert token_at([], "text", 0) is None


def test_a_click_on_a_word_of_the_answer_opens_the_inspector_on_its_token(host):
    from sda_local.ui.render import chat_html
    from sda_local.ui.state import SessionState

    c = controller(host)
    st = SessionState()
    st.restore(host, {"format": "sda-local-chat/1", "turns": [turn(toks("A **bold", "** move", " wins."))]}, None, "")

    html = chat_html(st)
    assert 'data-pick="1"' in html and "Click a word" in html  # the aligned answer takes clicks; the base not
    assert html.count("data-pick=") == 1
    reply = c.act(st, "word 1 6 1700000000")  # visible "Aboldmovewins.": the 7th character, "m" of "move"
    assert 'class="sda-tok sda-tok-sel" data-act="tok 1 1"' in reply["inspector"]
    assert st.inspected == (1, 1)
    assert "did not name a turn" in c.act(st, "word 1 x")["status"]  # a malformed click is a notice
    unpicked = {**turn(toks("x")), "aligned_tokens": []}  # an imported answer without tokens: nothing to click
    st.restore(host, {"format": "sda-local-chat/1", "turns": [unpicked]}, None, "")
    assert "data-pick=" not in chat_html(st)


# -- 5. Enter (or Regenerate) while an answer is on its way --------------------------------------------------------
def test_enter_while_an_answer_runs_says_so_keeps_the_message_and_sends_nothing_later(host):
    from sda_local.ui.state import SessionState

    c = controller(host)
    st = SessionState()
    taken = c.begin_send(st, "First?")
    assert taken["message"] == "" and "First?" in taken["chat"]  # the box is free at once
    running = c.send(st, "", **FAST)  # what the page runs next (the box is empty by now)
    next(running)
    assert st.live is not None and st.live.user == "First?"
    busy = c.begin_send(st, "Second?")
    assert "still being generated" in busy["status"] and "message" not in busy  # the message stays in the box
    assert [t.level for t in busy.toasts] == ["info"]
    assert "still being generated" in c.begin_regenerate(st)["status"]
    list(running)
    assert [t.user for t in st.turns] == ["First?"]
    # Gradio may still run the refused clicks' queued steps once the answer ends: they do nothing
    assert [dict(r) for r in c.send(st, "Second?", **FAST)] == [{}]
    assert [dict(r) for r in c.regenerate(st, **FAST)] == [{}]
    assert [t.user for t in st.turns] == ["First?"] and st.turns[0].regenerations == 0
    c.begin_regenerate(st)  # taken now: the turn shows as waiting, then is sampled again
    assert list(c.regenerate(st, **FAST))[-1]["status"].startswith("Regenerated")
    c.begin_send(st, "Second?")
    assert list(c.send(st, "", **FAST))[-1]["record"]["user"] == "Second?"


def test_an_api_send_needs_no_begin_and_still_refuses_while_busy(host):
    from sda_local.ui.state import SessionState

    c = controller(host)
    st = SessionState()
    running = c.send(st, "Via the API?", **FAST)
    next(running)
    busy = list(c.send(st, "Meanwhile?", **FAST))[-1]
    assert "still being generated" in busy["status"] and busy["message"] == "Meanwhile?"
    assert list(running)[-1]["status"].startswith("Done")


# -- the JavaScript error on the plot ---------------------------------------------------------------------------------
def test_the_plot_is_emptied_with_an_empty_frame_never_none(host):
    from sda_local.ui.state import SessionState

    c = controller(host)
    st = SessionState()
    for reply in (c.on_load(None), c.clear(st), c.inspect_turn(st, None)):
        assert reply["plot"] is not None and list(reply["plot"].columns) == ["token #", "value", "series", "token"]
        assert reply["plot"].empty
    st.restore(host, {"format": "sda-local-chat/1", "turns": [turn([])]}, None, "")  # a turn without tokens
    assert c.inspect_turn(st, "1")["plot"].empty


# -- the history: an interrupted turn is not sent to the model ----------------------------------------------------
def test_an_interrupted_turn_is_shown_but_kept_out_of_the_history(host, tmp_path):
    from sda_local.session import ChatSession
    from sda_local.ui.state import SessionState

    turns = [turn(toks("Fine.")), turn(toks("Half an ans"), user="Cut off?", finish_reason="interrupted"),
             turn(toks("Sto"), user="Stopped?", finish_reason="stopped"),
             turn(toks(""), user="Failed?", finish_reason="error")]
    chat = ChatSession(host.engine, None)
    chat.load({"format": "sda-local-chat/1", "turns": turns})
    said = [m["content"] for m in chat.messages() if m["role"] != "system"]
    assert said == ["Hi", "Fine.", "Stopped?", "Sto"]  # a stopped answer stays: the user chose to end it there
    # after a restart: the interrupted turn comes back, shown as such, and the next turn's prompt lacks it
    store = ConversationStore(tmp_path / "chats.sqlite3")
    store.save("k1", "t", {"format": "sda-local-chat/1", "turns": turns[:2]})
    c = controller(host, store)
    loaded = c.on_load("k1")
    st: SessionState = loaded["state"]
    assert 'data-phase="interrupted"' in loaded["chat"]
    assert "Cut off?" not in str(st.chat.messages())
    done = list(c.send(st, "Again?", **FAST))[-1]
    assert done["status"].startswith("Done") and [t.user for t in st.turns] == ["Hi", "Cut off?", "Again?"]
    sent = [m["content"] for m in st.chat.messages()]
    assert "Cut off?" not in sent and "Again?" in sent


# -- what people expect: warnings, presets, tips ------------------------------------------------------------------
def test_strong_steering_is_warned_in_the_turn_and_as_a_toast(host):
    from sda_local.ui.render import STRONG_KLAM, _record_html, strength_warning
    from sda_local.session import TurnRecord
    from sda_local.ui.state import SessionState

    assert strength_warning(2.0, 0.25) == "" and strength_warning(2.0, 0.5) == ""  # the defaults, and λ 0.5
    assert "word salad" in strength_warning(4.0, 0.9) and "3.60" in strength_warning(4.0, 0.9)
    assert strength_warning(STRONG_KLAM, 1.0) == "" and strength_warning(None, 0.9) == ""
    rec = TurnRecord(**{**turn(toks("x")), "lam": 0.9, "settings": {"sampling": {"k": 4.0}}})
    assert "Strong steering" in _record_html(1, rec)
    c = controller(host)
    st = SessionState()
    replies = list(c.send(st, "Hello?", **{**FAST, "k": 4.0, "fixed_lam": 0.9}))
    assert any("Strong steering" in t.text for r in replies for t in r.toasts)
    assert "Strong steering" in replies[-1]["chat"]
    calm = list(c.send(st, "Hello?", **FAST))  # k 2 × λ 0.6
    assert not any("Strong steering" in t.text for r in calm for t in r.toasts)


def test_an_edited_instruction_shows_the_preset_as_custom():
    from sda_local.presets import all_presets
    from sda_local.ui.controller import ChatController
    from sda_local.ui.controls import CUSTOM, Controls

    p = all_presets()["harmlessness"]
    assert ChatController.edit_preset("harmlessness", p.instruction, p.rubric) == {}
    assert ChatController.edit_preset("harmlessness", p.instruction + " Be brief.", p.rubric) == {"preset": CUSTOM}
    assert ChatController.edit_preset("harmlessness", p.instruction, "Score brevity.") == {"preset": CUSTOM}
    assert ChatController.edit_preset(CUSTOM, "anything", "") == {}  # already custom
    chosen = Controls(preset=CUSTOM, instruction="Answer in French.", rubric=p.rubric).chosen_preset()
    assert chosen.instruction == "Answer in French." and chosen.rubric == p.rubric


def test_every_evaluator_choice_has_a_one_line_tip_on_the_page(host):
    from sda_local.ui.app import build_app
    from sda_local.ui.controls import EVALUATOR_TIPS, EVALUATORS
    from sda_local.ui.page import page_js

    assert set(EVALUATOR_TIPS) == set(EVALUATORS)
    assert all("\n" not in tip and len(tip) < 140 for tip in EVALUATOR_TIPS.values())
    js = page_js({EVALUATORS[k]: t for k, t in EVALUATOR_TIPS.items()})
    assert EVALUATOR_TIPS["preset"] in js and "TIPS" not in js and "STICK_PX" not in js
    config = build_app(host).get_config_file()
    labels = {c["props"].get("label"): c["props"] for c in config["components"] if "label" in c["props"]}
    assert "What is SDA?" in labels and "k·λ above about 2" in labels["k"]["info"]
    assert labels["λ"]["info"].startswith("how strongly the answer is steered")


# -- the settings come back with their conversation ------------------------------------------------------------------
def test_a_conversation_brings_back_the_settings_it_was_answered_with(host, tmp_path):
    from sda_local.ui.controls import CUSTOM, restored_controls
    from sda_local.ui.state import SessionState

    path = tmp_path / "chats.sqlite3"
    c = controller(host, ConversationStore(path))
    st = SessionState()
    used = {**FAST, "preset": "harmlessness", "instruction": "Be kind.", "rubric": "", "max_tokens": 5, "k": 1.5,
            "openai_api_key": "sk-SECRET-1234", "temperature_mode": "sharp"}
    key = list(c.send(st, "Hello?", **used))[-1]["conv_key"]
    saved = ConversationStore(path).load(key)[1]
    assert saved["controls"]["max_tokens"] == 5 and "openai_api_key" not in saved["controls"]
    assert "SECRET" not in str(saved)
    loaded = controller(host, ConversationStore(path)).on_load(key)  # a reload, or a restart
    assert (loaded["evaluator"], loaded["fixed_lam"], loaded["max_tokens"], loaded["k"]) == ("fixed", 0.6, 5, 1.5)
    assert loaded["preset"] == "harmlessness" and loaded["instruction"] == "Be kind."
    assert loaded["temperature_mode"] == "sharp" and "openai_api_key" not in loaded
    other = controller(host, ConversationStore(path))
    fresh = other.on_load("")
    assert "max_tokens" not in fresh  # a new tab keeps the page's defaults
    opened = other.open_conversation(fresh["state"], key)
    assert opened["max_tokens"] == 5 and opened["evaluator"] == "fixed"
    # what a widget would refuse stays out; a preset that is gone shows as custom
    assert restored_controls({"evaluator": "nope", "temperature_mode": "warm", "seed": None, "top_p": [1],
                              "preset": "deleted-one", "unknown": 1}) == {"seed": None, "preset": CUSTOM}


# -- edit a past message and resend ---------------------------------------------------------------------------------
def test_an_edited_message_is_resent_in_a_copy_and_the_original_stays(host, tmp_path):
    from sda_local.ui.state import SessionState

    store = ConversationStore(tmp_path / "chats.sqlite3")
    c = controller(host, store)
    st = SessionState()
    for text in ("First?", "Second?", "Third?"):
        c.begin_send(st, text)
        list(c.send(st, "", **FAST))
    original = st.conv_id
    assert 'data-act="edit 2"' in chat_html(st)
    editing = c.act(st, "edit 2 1700000000")
    assert editing["message"] == "Second?" and "replaces turn 2 and the 1 turn(s) after it" in editing["status"]
    c.begin_send(st, "Second, edited?")
    done = list(c.send(st, "", **FAST))[-1]
    assert [t.user for t in st.turns] == ["First?", "Second, edited?"] and done["status"].startswith("Done")
    assert st.conv_id not in (None, original) and done["conv_key"] == st.conv_id
    assert [t["user"] for t in store.load(original)[1]["turns"]] == ["First?", "Second?", "Third?"]  # kept
    assert [t["user"] for t in store.load(st.conv_id)[1]["turns"]] == ["First?", "Second, edited?"]
    assert [m["content"] for m in st.chat.messages() if m["role"] == "user"] == ["First?", "Second, edited?"]
    c.begin_send(st, "Fourth?")  # no longer editing: an ordinary turn
    list(c.send(st, "", **FAST))
    assert [t.user for t in st.turns][-1] == "Fourth?" and len(st.turns) == 3
