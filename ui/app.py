"""The chat's Gradio Blocks: layout and callbacks.  No SDA math here: callbacks drive a ``ChatSession`` and turn
its events (base tokens, score, λ, aligned tokens, timings) into what the page shows.

Every event that uses the engine (send, regenerate, model and control-vector changes) is queued in one
concurrency group of size 1, so generations run one at a time; each browser session has its own
``SessionState`` (a ``gr.State``), so sessions never see each other's history or settings.
"""
from __future__ import annotations

import inspect
import json
import logging
import os
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no phoning home

import gradio as gr  # noqa: E402

from sda_local import core  # noqa: E402
from sda_local.errors import PromptTooLongError, SdaError  # noqa: E402
from sda_local.presets import all_presets, custom_preset, save_user_preset  # noqa: E402

from . import plots  # noqa: E402
from .controls import CHAT_MODEL_JUDGE, CONTROL_NAMES, CUSTOM, EVALUATORS, Controls  # noqa: E402
from .host import ModelHost  # noqa: E402
from .render import CSS, chat_html, timings_text  # noqa: E402
from .state import LiveTurn, SessionState  # noqa: E402

log = logging.getLogger("sda_local.ui")

ENGINE_GROUP = "engine"  # the concurrency group of everything that runs the model
STREAM_INTERVAL_S = 0.08  # at most ~12 page updates a second while tokens arrive
EXPORT_DIR = Path(tempfile.gettempdir()) / "sda-local-exports"


def _named(fn, *names):
    """Give a ``*args`` callback named, optional parameters (what the Gradio API and its clients show)."""
    fn.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for n in names])
    return fn


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text


def _notice(kind: str, text: str) -> str:
    return f"**{kind}:** {text}"


def _record_summary(rec) -> dict:
    d = rec.to_dict()
    d["aligned_tokens"] = len(rec.aligned_tokens)
    return d


def _inspect_outputs(st: SessionState, turn_no: int | None = None):
    """Plot, plot summary, table, turn selector and record JSON for one turn (default: the last)."""
    turns = st.turns
    if not turns:
        return (None, "No turn yet.", plots.table_rows([]),
                gr.update(choices=[], value=None), None)
    n = len(turns) if turn_no is None else max(1, min(int(turn_no), len(turns)))
    rec = turns[n - 1]
    choices = [str(i) for i in range(1, len(turns) + 1)]
    frame = plots.plot_frame(rec.aligned_tokens) if rec.aligned_tokens else None  # None: an empty plot
    return (frame, f"Turn {n}: " + plots.summary(rec.aligned_tokens),
            plots.table_rows(rec.aligned_tokens), gr.update(choices=choices, value=str(n)), _record_summary(rec))


def build_app(host: ModelHost) -> gr.Blocks:
    """The Blocks for one ``ModelHost``.  Launch with ``.queue().launch(...)`` (see ``sda_local.chat``)."""

    # -- callbacks -------------------------------------------------------------------------------------------
    def _begin(state):
        st = state or SessionState()
        st.stop.clear()
        st.pending = True
        return st

    def _begin_send(state, message):
        """Runs at once (not queued): show the message as waiting while other tabs' answers are generated."""
        st = _begin(state)
        text = (message or "").strip()
        if text and st.live is None:
            st.live = LiveTurn(user=text, phase="queued")
        return st, chat_html(st)

    def _finish(st: SessionState, status: str, message_box=None):
        box = gr.update() if message_box is None else message_box
        return (st, chat_html(st), status, box, *_inspect_outputs(st))

    def _refuse(st: SessionState, status: str, message_box=None):
        """End a send/regenerate that did not start: a stop pressed meanwhile has nothing left to stop."""
        if st.live is not None and st.live.phase == "queued":
            st.live = None
        if st.live is None:
            st.pending = False
            st.stop.clear()
        return _finish(st, status, message_box)

    def _stream(st: SessionState, status: str, message_box=None):
        box = gr.update() if message_box is None else message_box
        return (st, chat_html(st), status, box, *(gr.update() for _ in range(5)))

    def _run(st: SessionState, events, key: str | None, done_verb: str):
        """Feed pipeline events into ``st.live`` and yield page updates; always leaves the chat usable."""
        live = st.live
        before = st.turns[-1] if st.turns else None
        last = 0.0
        outcome = ""
        try:
            for ev in events:
                if st.stop.is_set():
                    outcome = "stopped"
                    break
                k = ev.kind
                if k == "base_token":
                    live.base += ev.token.text
                elif k == "phase_done" and ev.phase == "base":
                    live.base = ev.finished.text
                    live.phase = "judge"
                elif k == "score":
                    s = ev.score
                    live.score = s.value
                    live.score_detail = f"{s.evaluator}: {s.raw} ({s.latency_s:.2f} s)"
                elif k == "warning":
                    msg = _scrub(ev.message, key)
                    live.warnings.append(msg)
                    gr.Warning(msg)
                elif k == "lambda":
                    live.lam, live.lam_source = ev.lam, ev.source
                    live.phase = "aligned"
                elif k == "aligned_token":
                    live.aligned += ev.token.text
                elif k == "done":
                    t = ev.turn
                    outcome = (f"{done_verb} · λ = {t.lam:.3f} ({t.lam_source}) · {timings_text(t.timings)}")
                    continue
                now = time.monotonic()
                if k not in ("base_token", "aligned_token") or now - last >= STREAM_INTERVAL_S:
                    last = now
                    yield _stream(st, "")
        except SdaError as exc:
            outcome = "error:" + _scrub(str(exc), key)
        except Exception as exc:  # a bug or llama.cpp failure: say so, keep the app alive
            log.exception("turn failed")
            outcome = "error:" + _scrub(f"{type(exc).__name__}: {exc}", key)
        finally:
            events.close()  # a stopped turn keeps what was generated so far (the pipeline records it)
            st.live = None
            st.pending = False
            st.stop.clear()
        if outcome == "stopped":
            kept = bool(st.turns) and st.turns[-1] is not before and st.turns[-1].finish_reason == "stopped"
            status = _notice("Stopped", "the partial answer was kept" if kept else
                             "before the aligned answer started; nothing new was kept")
        elif outcome.startswith("error:"):
            gr.Warning(outcome[6:])
            status = _notice("Error", outcome[6:] + " — the chat is still usable")
        else:
            status = outcome
        yield _finish(st, status)

    def _prepare(st: SessionState, controls):
        ctrl = Controls.from_values(controls)
        settings = ctrl.settings()
        chat = st.session(host)
        return ctrl, settings, chat

    def send(state, message, *controls):
        st = state or SessionState()
        st.pending = False
        text = (message or "").strip()
        key = controls[CONTROL_NAMES.index("openai_api_key")] if len(controls) == len(CONTROL_NAMES) else None
        if not text:
            gr.Info("Empty message: nothing was sent.")
            yield _refuse(st, _notice("Notice", "the message is empty, nothing was sent"))
            return
        if st.live is not None and st.live.phase != "queued":
            yield _refuse(st, _notice("Notice", "an answer is still being generated; stop it or wait"), message)
            return
        try:
            ctrl, settings, chat = _prepare(st, controls)
            chat.evaluator = host.evaluator(ctrl.evaluator_spec())
            events = chat.send(text, settings)
        except PromptTooLongError as exc:
            msg = (f"the message is too long for the model's context: {exc.n_prompt} tokens for the {exc.stream}, "
                   f"the context holds {exc.n_ctx} per stream. Shorten it (or clear the chat, or restart with a "
                   f"larger --n-ctx).")
            gr.Warning(msg)
            yield _refuse(st, _notice("Too long", msg), message)
            return
        except SdaError as exc:
            msg = _scrub(str(exc), key)
            gr.Warning(msg)
            yield _refuse(st, _notice("Error", msg), message)
            return
        except Exception as exc:
            log.exception("send failed")
            msg = _scrub(f"{type(exc).__name__}: {exc}", key)
            gr.Warning(msg)
            yield _refuse(st, _notice("Error", msg), message)
            return
        st.live = LiveTurn(user=text)
        yield _stream(st, "", "")
        yield from _run(st, events, key, "Done")

    def regenerate(state, *controls):
        st = state or SessionState()
        st.pending = False
        key = controls[CONTROL_NAMES.index("openai_api_key")] if len(controls) == len(CONTROL_NAMES) else None
        if st.live is not None:
            yield _refuse(st, _notice("Notice", "an answer is still being generated; stop it or wait"))
            return
        try:
            _, settings, chat = _prepare(st, controls)
            previous = chat.turns[-1] if chat.turns else None
            events = chat.regenerate(settings)
        except SdaError as exc:
            msg = str(exc)
            if "nothing to regenerate" in msg:
                msg = ("nothing to regenerate: send a message first (after an import or a model switch, "
                       "regenerate needs a new turn)")
            gr.Info(msg)
            yield _refuse(st, _notice("Notice", msg))
            return
        st.live = LiveTurn(user=previous.user, base=previous.base, phase="aligned", regenerating=True,
                           previous=previous)
        yield _stream(st, "")
        yield from _run(st, events, key, "Regenerated")

    def stop(state):
        if state is not None and (state.pending or state.live is not None):
            state.stop.set()
            return _notice("Stopping", "the answer ends after the current token")
        return _notice("Notice", "nothing is being generated")

    def clear(state):
        st = state or SessionState()
        if st.live is not None:
            return _finish(st, _notice("Notice", "stop the current answer before clearing"))
        if st.chat is not None:
            st.chat.clear()
        return _finish(st, _notice("Cleared", "the conversation is empty"))

    def toggle_base(state, show):
        st = state or SessionState()
        st.show_base = bool(show)
        return st, chat_html(st)

    def inspect_turn(state, turn):
        st = state or SessionState()
        return _inspect_outputs(st, int(turn) if turn else None)[:3]

    def export_chat(state, openai_api_key=None):
        st = state or SessionState()
        if not st.turns:
            gr.Info("Nothing to export yet.")
            return None, _notice("Notice", "nothing to export yet")
        data = st.chat.export()
        data["exported_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        data["app"] = "sda-local chat"
        text = _scrub(json.dumps(data, ensure_ascii=False, indent=2), openai_api_key)
        EXPORT_DIR.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        fd, path = tempfile.mkstemp(prefix=f"sda-chat-{stamp}-", suffix=".json", dir=EXPORT_DIR)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return path, _notice("Exported", f"{len(st.turns)} turn(s) — download the JSON file below")

    def import_chat(state, file):
        st = state or SessionState()
        if st.live is not None:
            return _finish(st, _notice("Notice", "stop the current answer before importing"))
        if not file:
            return _finish(st, _notice("Notice", "no file was given"))
        path = file if isinstance(file, str) else getattr(file, "name", str(file))
        chat = st.session(host)
        before = list(chat.turns)
        try:
            data = json.loads(Path(path).read_text("utf-8"))
            chat.load(data)
            chat_html(st), _inspect_outputs(st)  # fields of the wrong type fail here, not in the page
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            msg = f"cannot read that file as JSON ({type(exc).__name__}: {exc})"
            gr.Warning(msg)
            return _finish(st, _notice("Import failed", msg))
        except SdaError as exc:
            chat.turns = before
            gr.Warning(str(exc))
            return _finish(st, _notice("Import failed", str(exc)))
        except Exception as exc:  # a well-formed file whose turns hold values of the wrong type
            chat.turns = before
            msg = f"the chat export is damaged ({type(exc).__name__}: {exc})"
            gr.Warning(msg)
            return _finish(st, _notice("Import failed", msg))
        return _finish(st, _notice("Imported", f"{len(st.turns)} turn(s) from {Path(path).name}"))

    def pick_preset(name):
        p = all_presets().get(name)
        if p is None:
            return gr.update(), gr.update()
        return p.instruction, p.rubric

    def save_preset(name, instruction, rubric):
        name = (name or "").strip()
        try:
            if not name:
                raise SdaError("give the preset a name")
            if name == CUSTOM:
                raise SdaError(f"{CUSTOM!r} is reserved; choose another name")
            path = save_user_preset(custom_preset(instruction, rubric or None, name=name))
        except SdaError as exc:
            gr.Warning(str(exc))
            return gr.update(), _notice("Not saved", str(exc))
        choices = list(all_presets()) + [CUSTOM]
        return gr.update(choices=choices, value=name), _notice("Saved", f"preset {name!r} in {path}")

    def refresh_presets():
        return gr.update(choices=list(all_presets()) + [CUSTOM])

    def show_evaluator(kind):
        return (gr.update(visible=kind == "local"), gr.update(visible=kind == "openai"),
                gr.update(visible=kind == "fixed"))

    def load_model(choice, path):
        spec = (path or "").strip() or (choice or "")
        try:
            info = host.switch(spec)
        except SdaError as exc:
            gr.Warning(str(exc))
            return gr.update(), _notice("Model not loaded", f"{exc} — still using {host.model_name}")
        except Exception as exc:
            log.exception("model load failed")
            return gr.update(), _notice("Model not loaded", f"{type(exc).__name__}: {exc} — still using "
                                        f"{host.model_name}")
        return info, _notice("Model loaded", f"{host.model_name}; every open chat now uses it")

    def apply_control(vectors, scale, layers, streams):
        lines = [ln.strip() for ln in (vectors or "").splitlines() if ln.strip()]
        control = None
        if lines:
            control = {"vectors": lines, "scale": float(scale if scale is not None else 1.0),
                       "layers": (layers or "").strip() or None, "streams": streams or "aligned"}
        try:
            info = host.set_control(control)
        except (SdaError, ValueError, OSError) as exc:
            gr.Warning(str(exc))
            return gr.update(), _notice("Control vectors not applied", str(exc))
        return info, _notice("Control vectors", "applied" if control else "off")

    def on_load(state):
        st = state or SessionState()
        return st, host.describe(), chat_html(st), refresh_presets()

    # -- layout ----------------------------------------------------------------------------------------------
    presets = all_presets()
    first = "helpfulness" if "helpfulness" in presets else next(iter(presets))
    models = host.model_choices()
    model_values = [v for _, v in models]
    current = host.engine.name if host.engine.name in model_values else None
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "Consolas", "monospace"])  # no web fonts to fetch

    with gr.Blocks(title="sda-local chat", css=CSS, theme=theme, analytics_enabled=False) as demo:
        state = gr.State(None)
        gr.Markdown("## sda-local chat — training-free alignment (SDA) on a local model")
        model_info = gr.Markdown(host.describe(), elem_id="sda-model-info")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chat = gr.HTML(chat_html(None), elem_id="sda-chat")
                status = gr.Markdown("", elem_id="sda-status")
                with gr.Row():
                    message = gr.Textbox(placeholder="Type a message and press Enter (Shift+Enter: new line)",
                                         show_label=False, lines=2, scale=6, elem_id="sda-input")
                    with gr.Column(scale=1, min_width=110):
                        send_btn = gr.Button("Send", variant="primary", elem_id="sda-send")
                        stop_btn = gr.Button("Stop", variant="stop", elem_id="sda-stop")
                with gr.Row():
                    regen_btn = gr.Button("Regenerate aligned", size="sm", elem_id="sda-regenerate")
                    clear_btn = gr.Button("Clear", size="sm", elem_id="sda-clear")
                    export_btn = gr.Button("Export JSON", size="sm", elem_id="sda-export")
                    import_btn = gr.UploadButton("Import JSON", file_types=[".json"], type="filepath", size="sm",
                                                 elem_id="sda-import")
                    show_base = gr.Checkbox(value=True, label="Show base answer", elem_id="sda-show-base")
                export_file = gr.File(label="Exported chat (JSON)", interactive=False, elem_id="sda-export-file",
                                      height=80)
                with gr.Accordion("Per-token diagnostics of the aligned answer", open=True):
                    with gr.Row():
                        turn_pick = gr.Dropdown(choices=[], value=None, label="Turn", scale=1, min_width=90,
                                                elem_id="sda-turn-pick")
                        plot_summary = gr.Markdown("No turn yet.", elem_id="sda-plot-summary")
                    plot = gr.LinePlot(None, x="token #", y="value", color="series",
                                       tooltip=["token", "series", "value"], height=330,
                                       label="JS divergence, temperature and chosen-token probability per token",
                                       elem_id="sda-plot")
                    table = gr.Dataframe(headers=plots.TABLE_HEADERS, value=[], interactive=False, max_height=260,
                                         label="Tokens", elem_id="sda-token-table", wrap=True)
                with gr.Accordion("Turn record (as exported)", open=False):
                    record = gr.JSON(label="Last turn", elem_id="sda-record")

            with gr.Column(scale=2):
                with gr.Group():
                    preset = gr.Dropdown(choices=list(presets) + [CUSTOM], value=first, label="Alignment preset",
                                         elem_id="sda-preset")
                    instruction = gr.Textbox(value=presets[first].instruction, lines=3,
                                             label="Instruction (edit it for a custom one)", elem_id="sda-instruction")
                    with gr.Accordion("Judge rubric and saving", open=False):
                        rubric = gr.Textbox(value=presets[first].rubric, lines=4,
                                            label="Rubric the evaluator scores by", elem_id="sda-rubric")
                        with gr.Row():
                            preset_name = gr.Textbox(label="Save as preset named", scale=3, elem_id="sda-preset-name")
                            save_btn = gr.Button("Save preset", size="sm", scale=1, elem_id="sda-save-preset")
                with gr.Group():
                    evaluator = gr.Radio(choices=[(v, k) for k, v in EVALUATORS.items()], value="local",
                                         label="Evaluator (scores the base answer; the score sets λ)",
                                         elem_id="sda-evaluator")
                    with gr.Column(visible=True) as local_box:
                        judge_model = gr.Dropdown(choices=[CHAT_MODEL_JUDGE] + model_values, value=CHAT_MODEL_JUDGE,
                                                  allow_custom_value=True, label="Judge model (or a .gguf path)",
                                                  elem_id="sda-judge")
                    with gr.Column(visible=False) as openai_box:
                        openai_base_url = gr.Textbox(label="Base URL (empty: $OPENAI_BASE_URL or api.openai.com)",
                                                     elem_id="sda-openai-url")
                        openai_model = gr.Textbox(label="Model (empty: gpt-4.1)", elem_id="sda-openai-model")
                        openai_api_key = gr.Textbox(label="API key (empty: $OPENAI_API_KEY); never shown or saved",
                                                    type="password", elem_id="sda-openai-key")
                    with gr.Column(visible=False) as fixed_box:
                        fixed_by = gr.Radio(choices=[("λ", "lam"), ("score", "score")], value="lam",
                                            label="Fix", elem_id="sda-fixed-by")
                        fixed_lam = gr.Slider(0, 1, value=0.5, step=0.01, label="λ", elem_id="sda-fixed-lam")
                        fixed_score = gr.Slider(1, 100, value=50, step=1, label="score (mapped to λ)",
                                                elem_id="sda-fixed-score")
                with gr.Accordion("Advanced settings", open=False):
                    k = gr.Slider(0, 8, value=2.0, step=0.1, label="k (steering gain)", elem_id="sda-k")
                    t0 = gr.Slider(0.05, 2.0, value=0.6, step=0.05, label="T0 (base temperature)", elem_id="sda-t0")
                    top_p = gr.Slider(0.05, 1.0, value=0.95, step=0.01, label="top-p", elem_id="sda-top-p")
                    temperature_mode = gr.Radio(choices=list(core.TEMPERATURE_MODES), value="ln2",
                                                label="Temperature mode (how T falls as the streams disagree)",
                                                elem_id="sda-temp-mode")
                    mapping = gr.Dropdown(choices=list(core.LAMBDA_MAPPINGS), value="sigmoid",
                                          label="λ mapping (score → λ)", elem_id="sda-mapping")
                    fallback_lam = gr.Slider(0, 1, value=0.5, step=0.01, label="Fallback λ (when the evaluator fails)",
                                             elem_id="sda-fallback-lam")
                    max_tokens = gr.Slider(1, 2048, value=256, step=1, label="Max tokens per answer",
                                           elem_id="sda-max-tokens")
                    seed = gr.Number(value=None, precision=0, label="Seed (empty: random)", elem_id="sda-seed")
                    placement = gr.Radio(choices=[("user turn", "user"), ("system message", "system")], value="user",
                                         label="Instruction placement", elem_id="sda-placement")
                    system_prompt = gr.Textbox(label="System prompt (both streams)", lines=2, elem_id="sda-system")
                with gr.Accordion("Model", open=False):
                    model_pick = gr.Dropdown(choices=models, value=current, label="Model (registry and models/*.gguf)",
                                             elem_id="sda-model-pick")
                    model_path = gr.Textbox(label="…or a path to a .gguf file", elem_id="sda-model-path",
                                            value="" if current else str(host.engine.choice.path))
                    load_btn = gr.Button("Load model", size="sm", elem_id="sda-load-model")
                    gr.Markdown("Control vectors (PaLRS residual steering; files from `sda-local palrs extract`)")
                    cv_files = gr.Textbox(label="Control vectors, one PATH[:SCALE] per line (empty: off)", lines=2,
                                          elem_id="sda-cv-files")
                    with gr.Row():
                        cv_scale = gr.Number(value=1.0, label="Scale", elem_id="sda-cv-scale")
                        cv_layers = gr.Textbox(label="Layers A-B (empty: all)", elem_id="sda-cv-layers")
                        cv_streams = gr.Radio(choices=["aligned", "both"], value="aligned", label="Streams",
                                              elem_id="sda-cv-streams")
                    cv_btn = gr.Button("Apply control vectors", size="sm", elem_id="sda-cv-apply")

        controls = [preset, instruction, rubric, evaluator, judge_model, openai_base_url, openai_model,
                    openai_api_key, fixed_by, fixed_lam, fixed_score, k, t0, top_p, temperature_mode, mapping,
                    fallback_lam, max_tokens, seed, placement, system_prompt]
        assert len(controls) == len(CONTROL_NAMES)
        turn_outputs = [state, chat, status, message, plot, plot_summary, table, turn_pick, record]

        # -- wiring --------------------------------------------------------------------------------------------
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*(show_api|api_name=False).*")
        engine_q = dict(concurrency_limit=1, concurrency_id=ENGINE_GROUP)
        light = dict(concurrency_limit=None)
        _named(send, "state", "message", *CONTROL_NAMES)
        _named(regenerate, "state", *CONTROL_NAMES)
        for trigger, api in ((send_btn.click, "send"), (message.submit, False)):
            trigger(_begin_send, [state, message], [state, chat], queue=False, show_api=False).then(
                send, [state, message, *controls], turn_outputs, api_name=api, show_progress="hidden", **engine_q)
        regen_btn.click(_begin, [state], [state], queue=False, show_api=False).then(
            regenerate, [state, *controls], turn_outputs, api_name="regenerate", show_progress="hidden", **engine_q)
        stop_btn.click(stop, [state], [status], queue=False, api_name="stop")
        clear_btn.click(clear, [state], turn_outputs, api_name="clear", **light)
        show_base.change(toggle_base, [state, show_base], [state, chat], api_name="show_base", **light)
        turn_pick.input(inspect_turn, [state, turn_pick], [plot, plot_summary, table], api_name="inspect", **light)
        export_btn.click(export_chat, [state, openai_api_key], [export_file, status], api_name="export", **light)
        import_btn.upload(import_chat, [state, import_btn], turn_outputs, api_name="import", **light)
        preset.input(pick_preset, [preset], [instruction, rubric], api_name="pick_preset", **light)
        save_btn.click(save_preset, [preset_name, instruction, rubric], [preset, status], api_name="save_preset",
                       **light)
        evaluator.change(show_evaluator, [evaluator], [local_box, openai_box, fixed_box], show_api=False, **light)
        load_btn.click(load_model, [model_pick, model_path], [model_info, status], api_name="load_model", **engine_q)
        cv_btn.click(apply_control, [cv_files, cv_scale, cv_layers, cv_streams], [model_info, status],
                     api_name="control_vectors", **engine_q)
        demo.load(on_load, [state], [state, model_info, chat, preset], show_api=False, **light)
    return demo
