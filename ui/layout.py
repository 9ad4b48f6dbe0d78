"""The chat page's widgets (Gradio), by name.  ``build_layout`` must run inside a ``gr.Blocks`` context; it
returns every widget a callback reads or writes, keyed by the name the callbacks use (``Widgets``).

The Advanced settings are generated from ``fields.SETTING_FIELDS``: one widget per ``SamplingParams`` field and
``TurnSettings`` option, named like the field.
"""
from __future__ import annotations

import gradio as gr

from sda_local.core import CV_STREAMS, Option
from sda_local.judges import DEFAULT_EVALUATOR
from sda_local.presets import DEFAULT_PRESET, all_presets

from . import plots
from .controls import CHAT_MODEL_JUDGE, EVALUATOR_OPTIONS, EVALUATORS, FIXED_BY, Controls
from .fields import SETTING_FIELDS, SettingField
from .host import ModelHost
from .inspector import inspector_html
from .render import chat_html

Widgets = dict  # name → Gradio component (or a column whose visibility a callback sets)

PLACEHOLDER = "Type a message and press Enter (Shift+Enter: new line)"

ABOUT = """**SDA (Steering-Driven Distribution Alignment)** makes a model follow an instruction without training it.
For every token the model reads the conversation twice: once *with* the alignment instruction and once
*without* it.  The next token is drawn from the first reading pushed further away from the second, so what the
instruction changes is amplified:

`score = log p(with) + k·λ·(log p(with) − log p(without))`

**λ** (0 to 1) is how strongly an answer is steered, **k** how much each unit of λ pushes (2, as in the paper).
λ comes from the *evaluator*: a judge that rates the model's plain (base) answer — a poor answer gets more
steering — or simply each preset's own λ.  Each turn shows the base answer beside the aligned one; click a word
of the aligned answer to see the two readings it was chosen from."""
FIXED_LABELS = {"lam": "λ"}  # the fixed evaluator's radio: which value is fixed
LAM_INFO = "how strongly the answer is steered toward the instruction: 0 = not at all; the presets use about 0.25"
PLAIN_HELP = {  # the Advanced settings that deserve plain words first (the formula is in "What is SDA?")
    "k": "how hard each unit of λ pushes away from the answer without the instruction (2 = the paper's); "
         "k·λ above about 2 tends to give word salad",
}


def setting_widget(f: SettingField) -> gr.components.Component:
    """The widget for one Advanced setting."""
    common = dict(label=f.label, info=PLAIN_HELP.get(f.name, f.help), elem_id=f.elem_id)
    if f.widget == "slider":
        return gr.Slider(f.minimum, f.maximum, value=f.default, step=f.step, **common)
    if f.widget == "radio":
        return gr.Radio(choices=list(f.choices), value=f.default, **common)
    if f.widget == "dropdown":
        return gr.Dropdown(choices=list(f.choices), value=f.default, **common)
    if f.widget == "number":  # an optional one starts empty (a placeholder, or Gradio would show and send 0)
        return gr.Number(value=f.default, precision=0 if f.integer else None, minimum=f.minimum,
                         maximum=f.maximum, step=f.step or 1, placeholder=f.placeholder, **common)
    return gr.Textbox(value=f.default, lines=2, **common)


def _hidden(elem_id: str) -> gr.Textbox:
    """A text box the page script or the callbacks write to and the user never sees (kept in the page: a
    ``visible=False`` one would not be there for the script)."""
    return gr.Textbox(value="", show_label=False, container=False, elem_id=elem_id, elem_classes=["sda-hidden"])


def _conversation(w: Widgets) -> None:
    w["chat"] = gr.HTML(chat_html(None), elem_id="sda-chat", padding=False)
    w["status"] = gr.Markdown("", elem_id="sda-status")
    with gr.Row():
        # one line that grows: Enter sends (Gradio submits on Enter only when lines=1), Shift+Enter adds a line
        w["message"] = gr.Textbox(placeholder=PLACEHOLDER, show_label=False, lines=1, max_lines=8, scale=6,
                                  elem_id="sda-input")
        with gr.Column(scale=1, min_width=110):
            w["send_btn"] = gr.Button("Send", variant="primary", elem_id="sda-send")
            w["stop_btn"] = gr.Button("Stop", variant="stop", elem_id="sda-stop")
    with gr.Row():
        w["regen_btn"] = gr.Button("Regenerate aligned", size="sm", elem_id="sda-regenerate")
        w["regen_base_btn"] = gr.Button("Regenerate base", size="sm", elem_id="sda-regenerate-base")
        w["clear_btn"] = gr.Button("New chat", size="sm", elem_id="sda-clear")
        w["export_btn"] = gr.Button("Export JSON", size="sm", elem_id="sda-export")
        w["file"] = gr.UploadButton("Import JSON", file_types=[".json"], type="filepath", size="sm",
                                    elem_id="sda-import")
        w["show_base"] = gr.Checkbox(value=True, label="Show base answer", elem_id="sda-show-base")
        w["arena"] = gr.Checkbox(value=False, label="Arena: blind A/B, vote", elem_id="sda-arena")
    # shown once it holds a file (render.CSS hides it while empty): before the first turn the conversation has
    # the space
    w["export_file"] = gr.File(label="Exported chat (JSON)", interactive=False, elem_id="sda-export-file",
                               height=80, elem_classes=["sda-file"])
    w["action"] = _hidden("sda-action")      # a click in the chat or the inspector (see app.PAGE_JS)
    w["conv_key"] = _hidden("sda-conv-key")  # this tab's conversation id (kept in its sessionStorage)


def _diagnostics(w: Widgets) -> None:
    with gr.Accordion("Token inspector: why SDA chose each token", open=True, elem_id="sda-inspector-box"):
        with gr.Row():
            w["turn"] = gr.Dropdown(choices=[], value=None, label="Turn", scale=0, min_width=90,
                                    elem_id="sda-turn-pick")
            w["inspector"] = gr.HTML(inspector_html(None, []), elem_id="sda-inspector", padding=False)
    with gr.Accordion("Per-token plot and table", open=False, elem_id="sda-plot-box"):
        w["plot_summary"] = gr.Markdown("No turn yet.", elem_id="sda-plot-summary")
        w["plot"] = gr.LinePlot(None, x="token #", y="value", color="series", tooltip=["token", "series", "value"],
                                label="JS divergence, temperature and chosen-token probability per token",
                                elem_id="sda-plot")
        w["table"] = gr.Dataframe(headers=plots.TABLE_HEADERS, value=[], interactive=False, max_height=260,
                                  label="Tokens", elem_id="sda-token-table", wrap=True, row_count=1)
    with gr.Accordion("Turn record (as exported)", open=False):
        w["record"] = gr.JSON(label="Last turn", elem_id="sda-record")


def _library(w: Widgets, note: str) -> None:
    with gr.Accordion("Conversations", open=True, elem_id="sda-library"):
        w["conv_search"] = gr.Textbox(placeholder="Search titles and messages…", show_label=False, max_lines=1,
                                      container=False, elem_id="sda-conv-search")
        with gr.Row():
            w["conv_pick"] = gr.Dropdown(choices=[], value=None, label="Saved conversations", scale=4,
                                         elem_id="sda-conv-pick")
            with gr.Column(scale=1, min_width=90):
                w["open_btn"] = gr.Button("Open", size="sm", elem_id="sda-conv-open")
                w["delete_btn"] = gr.Button("Delete", size="sm", elem_id="sda-conv-delete")
        with gr.Row():
            w["conv_title"] = gr.Textbox(label="Title of this chat", max_lines=1, scale=4, elem_id="sda-conv-title")
            w["rename_btn"] = gr.Button("Rename", size="sm", scale=1, min_width=90, elem_id="sda-conv-rename")
        w["db_info"] = gr.Markdown(note, elem_id="sda-db-info")
        w["prefs_btn"] = gr.Button("Export preferences (arena votes → JSONL pairs)", size="sm",
                                   elem_id="sda-export-prefs")
        w["prefs_report"] = gr.Markdown("", elem_id="sda-prefs-report")
        w["prefs_file"] = gr.File(label="Preference pairs (JSONL)", interactive=False, height=80,
                                  elem_id="sda-prefs-file", elem_classes=["sda-file"])


def _preset(w: Widgets, choices: list[str]) -> None:
    presets = all_presets()
    first = DEFAULT_PRESET if DEFAULT_PRESET in presets else next(iter(presets))
    with gr.Group():
        w["preset"] = gr.Dropdown(choices=choices, value=first, label="Alignment preset",
                                  elem_id="sda-preset")
        w["instruction"] = gr.Textbox(value=presets[first].instruction, lines=3,
                                      label="Instruction (edit it for a custom one)", elem_id="sda-instruction")
        with gr.Accordion("Judge rubric and saving", open=False):
            w["rubric"] = gr.Textbox(value=presets[first].rubric, lines=4, label="Rubric the evaluator scores by",
                                     elem_id="sda-rubric")
            with gr.Row():
                w["preset_name"] = gr.Textbox(label="Save as preset named", scale=3, elem_id="sda-preset-name")
                w["save_btn"] = gr.Button("Save preset", size="sm", scale=1, elem_id="sda-save-preset")


def _evaluator(w: Widgets, model_values: list[str]) -> None:
    """The evaluator widgets: their kinds, help and ranges are ``JudgeSpec``'s (``controls.EVALUATOR_OPTIONS``)."""
    opt, default = EVALUATOR_OPTIONS, Controls()
    with gr.Group():
        w["evaluator"] = gr.Radio(choices=[(v, k) for k, v in EVALUATORS.items()], value=DEFAULT_EVALUATOR,
                                  label="Evaluator (scores the base answer; the score sets λ)",
                                  info="where λ comes from; point at a choice to see what it does",
                                  elem_id="sda-evaluator")
        with gr.Column(visible=True) as w["local_box"]:
            w["judge_model"] = gr.Dropdown(choices=[CHAT_MODEL_JUDGE] + model_values, value=CHAT_MODEL_JUDGE,
                                           allow_custom_value=True, label="Judge model (or a .gguf path)",
                                           info=opt["judge_model"].help, elem_id="sda-judge")
        with gr.Column(visible=False) as w["openai_box"]:
            w["openai_base_url"] = gr.Textbox(label="Base URL", info=opt["openai_base_url"].help,
                                              elem_id="sda-openai-url")
            w["openai_model"] = gr.Textbox(label="Model", info=opt["openai_model"].help, elem_id="sda-openai-model")
            w["openai_api_key"] = gr.Textbox(label="API key", info=opt["openai_api_key"].help, type="password",
                                             elem_id="sda-openai-key")
        with gr.Column(visible=False) as w["fixed_box"]:
            w["fixed_by"] = gr.Radio(choices=[(FIXED_LABELS.get(f, f), f) for f in FIXED_BY], value=default.fixed_by,
                                     label="Fix", elem_id="sda-fixed-by")
            w["fixed_lam"] = _range_slider(opt["fixed_lam"], default.fixed_lam, "λ", LAM_INFO, "sda-fixed-lam")
            w["fixed_score"] = _range_slider(opt["fixed_score"], default.fixed_score, "score (mapped to λ)",
                                             opt["fixed_score"].help, "sda-fixed-score")


def _range_slider(opt: Option, value: float, label: str, info: str, elem_id: str) -> gr.Slider:
    """A slider over an ``Option``'s range, in its steps."""
    return gr.Slider(opt.lo, opt.hi, value=value, step=opt.step, label=label, info=info, elem_id=elem_id)


def _advanced(w: Widgets) -> None:
    with gr.Accordion("Advanced settings", open=False):
        for f in SETTING_FIELDS:
            w[f.name] = setting_widget(f)


def _model(w: Widgets, host: ModelHost, models: list[tuple[str, str]]) -> None:
    current = host.engine.name if host.engine.name in [v for _, v in models] else None
    with gr.Accordion("Model", open=False):
        w["model_pick"] = gr.Dropdown(choices=models, value=current, label="Model (registry and models/*.gguf)",
                                      elem_id="sda-model-pick")
        w["model_path"] = gr.Textbox(label="…or a path to a .gguf file", elem_id="sda-model-path",
                                     value="" if current else str(host.engine.choice.path))
        w["load_btn"] = gr.Button("Load model", size="sm", elem_id="sda-load-model")
        gr.Markdown("Control vectors (PaLRS residual steering; files from `sda-local palrs extract`)")
        w["cv_files"] = gr.Textbox(label="Control vectors, one PATH[:SCALE] per line (empty: off)", lines=2,
                                   elem_id="sda-cv-files")
        with gr.Row():
            w["cv_scale"] = gr.Number(value=1.0, label="Scale", elem_id="sda-cv-scale")
            w["cv_layers"] = gr.Textbox(label="Layers A-B (empty: all)", elem_id="sda-cv-layers")
            w["cv_streams"] = gr.Radio(choices=list(CV_STREAMS), value=CV_STREAMS[0], label="Streams",
                                       elem_id="sda-cv-streams")
        w["cv_btn"] = gr.Button("Apply control vectors", size="sm", elem_id="sda-cv-apply")


def build_layout(host: ModelHost, preset_choices: list[str], store_note: str = "") -> Widgets:
    """Every widget of the page, by name (call inside ``with gr.Blocks(...)``)."""
    w: Widgets = {"state": gr.State(None)}
    models = host.model_choices()
    gr.Markdown("## sda-local chat — training-free alignment (SDA) on a local model")
    w["model_info"] = gr.Markdown(host.describe(), elem_id="sda-model-info")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            _conversation(w)
            _diagnostics(w)
        with gr.Column(scale=2):
            with gr.Accordion("What is SDA?", open=False, elem_id="sda-about"):
                gr.Markdown(ABOUT)
            _library(w, store_note)
            _preset(w, preset_choices)
            _evaluator(w, [v for _, v in models])
            _advanced(w)
            _model(w, host, models)
    return w
