"""The chat's callbacks, through the real app on 127.0.0.1 and Gradio's own client (each Client is one session).

One model (SmolLM2, embedded) is loaded for the module; most turns use a fixed λ or score and few tokens so
the module stays quick on 2 cores.
"""
from __future__ import annotations

import itertools
import json
import re
import threading
import time
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("gradio")

from servers import bad_server  # noqa: E402
from ui_support import app_in_process  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    # Gradio's queue builds its error map with Starlette's HTTP_422_UNPROCESSABLE_ENTITY, which newer Starlette
    # deprecates, at every event it queues: Gradio's code, not ours, and harmless
    pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated:DeprecationWarning"),
]

OUTPUTS = ("chat", "status", "message", "plot", "plot_summary", "table", "turn", "record", "inspector", "conv_pick",
           "conv_key", "conv_title")
FAST = dict(evaluator="fixed", fixed_by="lam", fixed_lam=0.6, max_tokens=6, seed=3)


@pytest.fixture(scope="module")
def host():
    from sda_local.ui.host import ModelHost

    h = ModelHost(None, n_ctx=512, n_threads=1)  # one thread: steady when other jobs share the cores
    yield h
    h.close()


@pytest.fixture(scope="module")
def served(host):
    with app_in_process(host) as (u, demo):
        yield u, demo


@pytest.fixture
def url(served):
    return served[0]


class TickClock:
    """``time`` for the turn trace and the λ decision, except that ``perf_counter`` moves one whole second at each
    reading: a turn's recorded timings are whole numbers (rounding leaves them as they are) counting readings,
    so they compare exactly and in the order of the events, however fast the machine is.  The app runs in this
    process, so patching the modules reaches its turns."""

    def __init__(self):
        self._ticks = itertools.count(1)

    def perf_counter(self) -> float:
        return float(next(self._ticks))

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def tick_clock(monkeypatch):
    from sda_local import turn
    from sda_local.judges import decision

    clock = TickClock()
    monkeypatch.setattr(turn, "time", clock)
    monkeypatch.setattr(decision, "time", clock)
    return clock


def in_event_order(t: dict) -> bool:
    """A turn's timings (on the tick clock) follow its events: base done, then the judge, then λ, then the first
    aligned token, then the end."""
    lam_at = t["total_s"] - t["aligned_s"]  # the aligned phase is timed from the λ event
    if t.get("together"):  # λ known first (a fixed score or λ): both answers decoded together, after it
        return 0 <= lam_at < t["first_aligned_token_s"] < t["total_s"] and 0 < t["base_s"] <= t["total_s"]
    return 0 < t["base_s"] <= t["base_s"] + t["judge_s"] <= lam_at < t["first_aligned_token_s"] < t["total_s"]


def client(url):
    return gradio_client.Client(url, verbose=False)


def named(result) -> dict:
    return dict(zip(OUTPUTS, result))


def send(c, message, **kw):
    return named(c.predict(message=message, **{**FAST, **kw}, api_name="/send"))


def texts(html: str, cls: str) -> list[str]:
    return re.findall(rf'<div class="{cls}"><div class="sda-who">.*?</div><div class="sda-txt[^"]*"[^>]*>(.*?)</div>',
                      html, flags=re.S)


# -- the Advanced settings come from the settings' declarations ----------------------------------------------
def test_advanced_settings_are_generated_from_sampling_params_and_turn_options():
    from sda_local.ui.fields import SAMPLING, SETTING_FIELDS, TURN

    from sda_local import core
    from sda_local.runtime.prompts import PLACEMENTS
    from sda_local.turn import turn_options

    fields = {f.name: f for f in SETTING_FIELDS}
    assert [f.name for f in SETTING_FIELDS] == ([n for n, *_ in core.sampling_options()] +
                                                 [n for n, *_ in turn_options()])
    assert {f.group for f in SETTING_FIELDS if f.name in ("k", "plausibility", "seed")} == {SAMPLING}
    assert fields["placement"].group == TURN and fields["placement"].choices == ("auto", *PLACEMENTS)
    assert fields["mapping"].choices == tuple(core.LAMBDA_MAPPINGS)
    assert fields["temperature_mode"].choices == core.TEMPERATURE_MODES
    a = fields["plausibility"]  # α ∈ [0, 1): a slider from 0 to one step below 1
    assert a.widget == "slider" and a.minimum == 0 and a.maximum == 1 - a.step and a.default == 0
    assert fields["t0"].minimum > 0  # T0 > 0: the slider starts one step above 0
    assert fields["max_tokens"].integer and fields["max_tokens"].maximum == 2048
    assert fields["seed"].widget == "number" and fields["seed"].optional


def test_a_new_sampling_option_becomes_a_widget_with_no_ui_edit():
    import gradio as gr
    from sda_local.ui.fields import setting_fields
    from sda_local.ui.layout import setting_widget

    from sda_local.core import Option, sampling_options

    extra = [("top_k", "int", 40, Option(help="keep the k most likely tokens", lo=1, step=1, ui_max=200)),
             ("style", "str", "plain", Option(help="a style", choices=("plain", "terse", "florid", "formal")))]
    fields = {f.name: f for f in setting_fields(sampling=[*sampling_options(), *extra], turn=[])}
    top_k, style = fields["top_k"], fields["style"]
    assert (top_k.widget, top_k.minimum, top_k.maximum, top_k.integer) == ("slider", 1, 200, True)
    assert top_k.value(12.0) == 12 and top_k.value(None) == 40 and style.widget == "dropdown"
    with gr.Blocks():
        w = setting_widget(top_k)
        d = setting_widget(style)
    assert isinstance(w, gr.Slider) and (w.minimum, w.maximum, w.value) == (1, 200, 40) and w.elem_id == "sda-top-k"
    assert isinstance(d, gr.Dropdown) and [c[1] for c in d.choices] == ["plain", "terse", "florid", "formal"]


def test_every_setting_reaches_turn_settings_by_name():
    from sda_local.ui.controls import Controls
    from sda_local.ui.fields import SAMPLING, SETTING_FIELDS

    def other(f):  # a valid value different from the default, as the widget would send it
        if f.choices:
            return next(c for c in reversed(f.choices) if c != f.default)
        if f.widget == "text":
            return "  Be brief.  "
        if f.optional:
            return 7.0
        return float(f.maximum) if f.maximum != f.default else float(f.minimum)

    values = {f.name: other(f) for f in SETTING_FIELDS}
    settings = Controls.from_named(values).settings()
    for f in SETTING_FIELDS:
        got = getattr(settings.sampling if f.group == SAMPLING else settings, f.name)
        want = f.value(values[f.name])
        assert got == want and got != f.default, f.name
    assert settings.system_prompt == "Be brief." and isinstance(settings.sampling.max_tokens, int)
    assert settings.preset.name == "helpfulness"  # presets.DEFAULT_PRESET
    with pytest.raises(TypeError, match="not a chat control: temperatur"):
        Controls.from_named({"temperatur": "ln2"})


# -- the controller's callbacks, called directly (no Gradio server) ------------------------------------------
def test_controller_is_free_of_gradio():
    import subprocess
    import sys

    code = "import sys, sda_local.ui.controller; print('gradio' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr[-2000:]


def test_controller_runs_a_turn_and_a_regeneration_without_gradio(host):
    from sda_local.ui.controller import TURN_OUTPUTS, ChatController
    from sda_local.ui.state import SessionState

    c = ChatController(host, stream_interval_s=0)
    st = SessionState()
    replies = list(c.send(st, "Name a fruit.", **{**FAST, "plausibility": 0.1, "k": 1.5}))
    assert all(set(r) <= set(TURN_OUTPUTS) for r in replies)
    assert replies[0]["message"] == "" and "record" not in replies[0]  # streaming: the plot waits for the end
    final = replies[-1]
    rec = final["record"]
    assert final["status"].startswith("Done · λ = 0.600"), final["status"]
    assert rec["settings"]["sampling"]["plausibility"] == 0.1 and rec["settings"]["sampling"]["k"] == 1.5
    assert rec["aligned"] == st.turns[-1].aligned and final["turn"].choices == ["1"]
    assert any("data-phase=\"aligned\"" in r["chat"] for r in replies[:-1])
    again = list(c.regenerate(st, **FAST))[-1]
    assert again["status"].startswith("Regenerated") and again["record"]["regenerations"] == 1
    assert again["record"]["base"] == rec["base"] and len(st.turns) == 1
    shown = c.inspect_turn(st, "1")
    assert set(shown) == {"plot", "plot_summary", "table", "inspector"} and shown["plot_summary"].startswith("Turn 1:")
    assert shown["inspector"].count('class="sda-tok') == len(st.turns[0].aligned_tokens)


def test_controller_refusals_keep_the_chat_usable(host):
    from sda_local.ui.controller import ChatController
    from sda_local.ui.state import SessionState

    c = ChatController(host)
    st = SessionState()
    nothing = list(c.regenerate(st, **FAST))
    assert len(nothing) == 1 and "send a message first" in nothing[0]["status"]
    assert [t.level for t in nothing[0].toasts] == ["info"]
    bad = list(c.send(st, "Hello?", **{**FAST, "top_p": 0}))[-1]  # an invalid setting: named, message kept
    assert "top_p" in bad["status"] and bad["message"] == "Hello?" and bad.toasts[0].level == "warning"
    negative = list(c.send(st, "Hello?", **{**FAST, "seed": -1}))[-1]
    assert "seed must be in [0" in negative["status"] and not st.turns
    assert "nothing is being generated" in c.stop(st)["status"]
    c.begin_send(st, "Stop me while I wait.")  # Stop pressed while the turn waits in the queue
    assert "Stopping" in c.stop(st)["status"]
    stopped = list(c.send(st, "Stop me while I wait.", **FAST))[-1]  # the message stays, as a stopped turn
    assert "your message was kept" in stopped["status"] and not st.pending and st.live is None
    assert [(t.user, t.finish_reason, t.aligned) for t in st.turns] == [("Stop me while I wait.", "stopped", "")]
    c.begin_send(st, "Hi.")  # as the page sends: the message moves into the session, the box is emptied
    assert list(c.send(st, "", **FAST))[-1]["record"]["user"] == "Hi."


def test_controller_presets_on_page_load(host):
    from sda_local.ui.controller import ChatController
    from sda_local.ui.reply import KEEP

    c = ChatController(host)
    loaded = c.on_load(None)
    assert "preset" not in loaded and "smollm2-135m" in loaded["model_info"]  # nothing new: the dropdown stays
    picked = c.pick_preset("honesty")
    assert set(picked) == {"instruction", "rubric"} and picked["instruction"]
    assert c.pick_preset("(custom)") == {}
    saved = c.save_preset("  brief  ", "Answer in one sentence.", "")
    assert saved["preset"].value == "brief" and "Saved" in saved["status"]
    assert "brief" in c.on_load(None)["preset"].choices and c.on_load(None)["preset"].value is KEEP
    refused = c.save_preset("(custom)", "x", "")
    assert "reserved" in refused["status"] and refused.toasts[0].level == "warning"


def test_app_runs_generations_in_one_queue_of_one(served):
    from sda_local.ui.app import ENGINE_GROUP

    url, demo = served
    engine_users = {"send", "regenerate", "regenerate_base", "load_model", "apply_control"}
    fns = [f for f in demo.fns.values() if f.name in engine_users]
    assert {f.name for f in fns} == engine_users
    for f in fns:  # every event that runs the model shares one queue slot
        assert f.concurrency_id == ENGINE_GROUP and f.concurrency_limit == 1 and f.queue is not False, f.name
    info = client(url).view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/send", "/regenerate", "/regenerate_base", "/stop", "/clear", "/export", "/import", "/load_model",
            "/search_conversations"} <= set(info)
    params = [p["parameter_name"] for p in info["/send"]["parameters"]]
    assert params[:4] == ["message", "preset", "instruction", "rubric"] and "openai_api_key" in params
    # every Advanced setting is a named parameter, the plausibility α included
    from sda_local.ui.controls import CONTROL_NAMES

    assert params == ["message", *CONTROL_NAMES] and "plausibility" in params
    assert [p["parameter_name"] for p in info["/regenerate"]["parameters"]] == list(CONTROL_NAMES)

    def names(endpoint):
        return [p["parameter_name"] for p in info[endpoint]["parameters"]]

    # widgets read under another name keep the API's parameter names and order
    assert names("/save_preset") == ["name", "instruction", "rubric"] and names("/show_base") == ["show"]
    assert names("/control_vectors") == ["vectors", "scale", "layers", "streams"]
    assert names("/load_model") == ["choice", "path"] and names("/import") == ["file"]


def test_send_streams_base_then_score_then_aligned(url, tick_clock):
    c = client(url)
    job = c.submit(message="Name a colour.", **{**FAST, "fixed_by": "score", "fixed_score": 30, "max_tokens": 12},
                   api_name="/send")
    final = named(job.result(timeout=300))
    outs = [named(o) for o in job.outputs() if isinstance(o, (list, tuple))]
    steps = [o["chat"] for o in outs]
    phases = [re.search(r'data-phase="(\w+)"', h).group(1) for h in steps if 'data-phase="' in h]
    # the live turn goes base → (judge) → aligned → done, never backwards
    order = {"base": 0, "judge": 1, "aligned": 2, "done": 3}
    seen = [order[p] for p in phases if p in order]
    assert seen == sorted(seen) and seen[-1] == 3, phases
    rec = final["record"]
    assert rec["user"] == "Name a colour." and rec["score"]["value"] == 30
    assert rec["base"].strip() and rec["aligned"].strip()
    assert rec["settings"]["preset"]["name"] == "helpfulness" and rec["settings"]["sampling"]["max_tokens"] == 12
    assert texts(final["chat"], "sda-base") and texts(final["chat"], "sda-aligned")
    assert "score 30/100" in final["chat"] and "λ = " in final["chat"]
    assert outs[0]["message"] == ""  # the input box is cleared once the turn starts
    t = rec["timings"]
    assert in_event_order(t), t
    assert "tok/s" in final["status"] and "judge" in final["status"]
    # per-token data for the plot and the table: one row per aligned token and series, with the token's text
    plot = final["plot"]
    assert plot["columns"] == ["token #", "value", "series", "token"]
    assert len(plot["data"]) == 3 * rec["aligned_tokens"]
    assert len(final["table"]["data"]) == rec["aligned_tokens"]


def test_local_evaluator_turn_reports_time_to_first_aligned_token(url, tmp_path, tick_clock):
    c = client(url)
    t0 = time.perf_counter()  # the real clock (the tick clock only replaces the turn trace's and the judge's)
    out = send(c, "How do I boil an egg?", evaluator="local", max_tokens=32, seed=7)
    wall_s = time.perf_counter() - t0
    rec = out["record"]
    assert rec["evaluator"].startswith("local:") and rec["lam_source"] in ("score", "fallback")
    t = rec["timings"]
    assert in_event_order(t) and t["judge_s"] >= 1, t  # the judge ran after the base answer, before λ
    assert f"first aligned token after {t['first_aligned_token_s']:.2f} s" in out["status"]
    from conftest import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "ui-first-aligned-token.json").write_text(json.dumps(
        {"model": "smollm2-135m", "evaluator": rec["evaluator"], "score": rec["score"], "lam": rec["lam"],
         "timings_in_clock_readings": t, "request_wall_s": round(wall_s, 2)}, indent=2))


def test_empty_message_is_ignored_with_a_notice(url):
    c = client(url)
    out = send(c, "   ")
    assert "empty" in out["status"].lower() and out["record"] is None
    assert "sda-turn" not in out["chat"]


def test_too_long_message_gets_token_counts_and_the_chat_stays_usable(url):
    c = client(url)
    long = "Please repeat these words back to me exactly. " * 120
    out = send(c, long)
    assert "too long" in out["status"].lower()
    m = re.search(r"(\d+) tokens .* holds (\d+)", out["status"])
    assert m and int(m.group(1)) > int(m.group(2)) == 512
    assert out["message"] == long  # kept, to be shortened
    ok = send(c, "Hi!")
    assert ok["record"]["user"] == "Hi!" and ok["chat"].count('class="sda-turn"') == 1


def test_regenerate_reuses_the_base_answer_and_score(url, tick_clock):
    c = client(url)
    first = send(c, "Give me one tip for sleeping well.", fixed_by="score", fixed_score=40, max_tokens=10, seed=None)
    again = named(c.predict(**{**FAST, "fixed_by": "score", "fixed_score": 40, "max_tokens": 10, "seed": None},
                            api_name="/regenerate"))
    a, b = first["record"], again["record"]
    assert b["base"] == a["base"] and b["score"] == a["score"] and b["lam"] == a["lam"]
    assert b["regenerations"] == 1
    base_keys = ("base_s", "judge_s", "base_tokens", "base_tokens_per_s")  # the reused answer keeps its timings
    assert [b["timings"][k] for k in base_keys] == [a["timings"][k] for k in base_keys]
    assert b["timings"]["base_s"] >= 1 and b["timings"]["base_tokens"] > 0  # ticks: exact, never rounded to 0
    base_line = f"base {a['timings']['base_s']:.2f} s"
    assert base_line in first["chat"] and base_line in again["chat"] and "base 0.00 s" not in again["chat"]
    assert again["chat"].count('class="sda-turn"') == 1  # replaced, not appended


def test_stop_keeps_the_partial_aligned_answer(url):
    c = client(url)
    job = c.submit(message="Write a long story about a lighthouse keeper.", **{**FAST, "max_tokens": 2000},
                   api_name="/send")
    deadline = time.time() + 240
    while time.time() < deadline:
        outs = [o for o in job.outputs() if isinstance(o, (list, tuple))]
        if outs and 'data-phase="aligned"' in named(outs[-1])["chat"] and texts(named(outs[-1])["chat"], "sda-aligned"):
            break
        time.sleep(0.2)
    status = c.predict(api_name="/stop")
    assert "stopping" in status.lower()
    final = named(job.result(timeout=120))
    rec = final["record"]
    assert rec["finish_reason"] == "stopped" and 0 < rec["aligned_tokens"] < 2000
    assert "stopped" in final["status"].lower()
    assert send(c, "Thanks.")["record"]["user"] == "Thanks."  # usable afterwards


def test_evaluator_failure_is_a_visible_warning_with_the_fallback_lambda_and_the_key_stays_secret(url, tmp_path):
    key = "sk-test-SECRET-4242"
    c = client(url)
    with bad_server("401") as base_url:  # a server that echoes the Authorization header in its error
        out = send(c, "Is the sky blue?", evaluator="openai", openai_base_url=base_url, openai_model="judge",
                   openai_api_key=key, fallback_lam=0.25)
    rec = out["record"]
    assert rec["lam_source"] == "fallback" and rec["lam"] == 0.25
    assert rec["warnings"] and "401" in rec["warnings"][0]
    assert 'class="sda-warn"' in out["chat"] and "fallback" in out["chat"]
    assert key not in json.dumps(out, default=str)
    path, status = c.predict(openai_api_key=key, api_name="/export")
    data = json.loads(Path(path).read_text("utf-8"))
    assert key not in Path(path).read_text("utf-8") and "Exported" in status
    # what an export holds, per turn: messages, preset, evaluator, score, λ, settings
    assert data["format"] == "sda-local-chat/1"
    assert data["messages"][-2:] == [{"role": "user", "content": "Is the sky blue?"},
                                     {"role": "assistant", "content": rec["aligned"]}]
    t = data["turns"][-1]
    assert t["evaluator"].startswith("openai:") and t["lam"] == 0.25 and t["settings"]["preset"]["name"]
    from sda_local.core import sampling_options

    assert {name for name, *_ in sampling_options()} == set(t["settings"]["sampling"])
    assert {"mapping", "fallback_lam", "placement", "system_prompt"} <= set(t["settings"])

    # clear, then import it back: the same conversation
    cleared = named(c.predict(api_name="/clear"))
    assert "sda-turn" not in cleared["chat"]
    back = named(c.predict(file=gradio_client.handle_file(path), api_name="/import"))
    assert "Imported" in back["status"] and back["record"]["aligned"] == rec["aligned"]
    assert back["chat"].count('class="sda-turn"') == 1
    # a broken file is refused with a message, and the chat is untouched
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    refused = named(c.predict(file=gradio_client.handle_file(str(bad)), api_name="/import"))
    assert "Import failed" in refused["status"] and refused["chat"].count('class="sda-turn"') == 1
    damaged = dict(data, turns=[dict(data["turns"][0], timings="soon", settings=[])])
    bad.write_text(json.dumps(damaged))
    refused = named(c.predict(file=gradio_client.handle_file(str(bad)), api_name="/import"))
    assert "damaged" in refused["status"] and refused["record"]["aligned"] == rec["aligned"]


def test_custom_instruction_and_saved_preset(url, tmp_path):
    from sda_local.presets import user_presets, user_presets_path

    c = client(url)
    out = send(c, "Say hello.", preset="(custom)", instruction="Answer like a pirate.")
    assert out["record"]["settings"]["preset"] == {"name": "custom", "instruction": "Answer like a pirate.",
                                                   "rubric": out["record"]["settings"]["preset"]["rubric"]}
    update, status = c.predict(name="pirate", instruction="Answer like a pirate.", rubric="",
                               api_name="/save_preset")
    assert "Saved" in status and user_presets_path().is_file()
    assert user_presets()["pirate"].instruction == "Answer like a pirate."
    used = send(c, "Say hello.", preset="pirate", instruction="Answer like a pirate.",
                rubric=user_presets()["pirate"].rubric)
    assert used["record"]["settings"]["preset"]["name"] == "pirate"
    _, refused = c.predict(name="helpfulness", instruction="x", rubric="", api_name="/save_preset")
    assert "built-in" in refused


def test_ten_concurrent_sessions_each_get_their_own_answer(url):
    n = 10
    clients = [client(url) for _ in range(n)]
    results: dict[int, dict] = {}
    errors: list[BaseException] = []

    def run(i):
        try:
            results[i] = send(clients[i], f"Session {i}: say the number {i}.", max_tokens=4)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors and len(results) == n
    for i, out in results.items():
        assert out["record"]["user"] == f"Session {i}: say the number {i}."
        users = re.findall(r'<div class="sda-user"><div class="sda-who">You.*?</div><div class="sda-txt">(.*?)</div>',
                           out["chat"])
        assert users == [f"Session {i}: say the number {i}."]  # nobody else's messages
    # and each session's history stays its own afterwards
    path, _ = clients[3].predict(api_name="/export")
    data = json.loads(Path(path).read_text("utf-8"))
    assert [m["content"] for m in data["messages"] if m["role"] == "user"] == ["Session 3: say the number 3."]


def test_control_vectors_turn_on_and_off(host, url, tmp_path):
    import numpy as np

    from sda_local.palrs.cvec import write_control_vector

    e = host.engine
    vec = write_control_vector(tmp_path / "v.gguf", {i: np.full(e.model.n_embd, 0.01, np.float32)
                                                    for i in range(1, e.model.n_layer)}, "llama")
    c = client(url)
    info, status = c.predict(vectors=f"{vec}:0.5", scale=1.0, layers="2-10", streams="aligned",
                             api_name="/control_vectors")
    assert "not applied" not in status and "applied" in status
    assert "control vectors on the aligned stream" in info
    assert host.engine.control.layers == (2, 10) and host.engine.layout == "contexts"
    assert send(c, "Hello there.", max_tokens=3)["record"]["aligned"] is not None
    _, status = c.predict(vectors=str(tmp_path / "missing.gguf"), scale=1.0, layers="", streams="both",
                          api_name="/control_vectors")
    assert "not applied" in status and "missing.gguf" in status
    info, status = c.predict(vectors="", scale=1.0, layers="", streams="aligned", api_name="/control_vectors")
    assert "off" in status and host.engine.control is None


def test_model_switch_reloads_and_a_bad_file_is_refused_clearly(host, url, tiny_gguf, tmp_path):
    c = client(url)
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x05" * 40)
    info, status = c.predict(choice=None, path=str(bad), api_name="/load_model")
    assert "Model not loaded" in status and "broken.gguf" in status and "still using smollm2-135m" in status
    assert host.model_name == "smollm2-135m"
    junk = tmp_path / "notes.gguf"
    junk.write_text("not a model")
    _, status = c.predict(choice=None, path=str(junk), api_name="/load_model")
    assert "not a GGUF file" in status
    info, status = c.predict(choice=None, path=str(tiny_gguf), api_name="/load_model")
    assert "Model loaded" in status and "tiny.gguf" in info and host.model_name == "tiny.gguf"
    out = send(c, "hello", max_tokens=3)
    assert out["record"]["user"] == "hello"
    info, status = c.predict(choice="smollm2-135m", path="", api_name="/load_model")
    assert "Model loaded" in status and host.model_name == "smollm2-135m"
