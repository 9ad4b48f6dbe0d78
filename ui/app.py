"""The chat's Gradio Blocks: the layout (``layout``) wired to the callbacks (``ChatController``).

Wiring is by name: each event names the widgets it reads (they become the method's keyword arguments and the
Gradio API's parameter names) and the widgets it writes (a ``Reply``'s keys); nothing depends on list order.
Every event that uses the engine (send, regenerate, model and control-vector changes) is queued in one
concurrency group of size 1, so generations run one at a time; each browser session has its own
``SessionState`` (a ``gr.State``), so sessions never see each other's history or settings.
"""
from __future__ import annotations

import inspect
import os
import warnings
from contextlib import contextmanager
from typing import Callable, Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no phoning home

import gradio as gr  # noqa: E402

from .controller import OPEN_OUTPUTS, TURN_OUTPUTS, ChatController  # noqa: E402
from .controls import CONTROL_NAMES, EVALUATOR_TIPS, EVALUATORS  # noqa: E402
from .layout import Widgets, build_layout  # noqa: E402
from .page import page_js  # noqa: E402
from .render import CSS  # noqa: E402
from .reply import KEEP, Choices, Reply, Visible  # noqa: E402

ENGINE_GROUP = "engine"  # the concurrency group of everything that runs the model
ENGINE_QUEUE = dict(concurrency_limit=1, concurrency_id=ENGINE_GROUP)
LIGHT = dict(concurrency_limit=None)

Input = str | tuple[str, str]  # a widget name, or (argument name, widget name)

CONV_KEY = "sda-local-conversation"  # this tab's conversation id, in its sessionStorage
READ_KEY = f"(k) => sessionStorage.getItem('{CONV_KEY}') || ''"
WRITE_KEY = (f"(k) => {{ if (k) sessionStorage.setItem('{CONV_KEY}', k); "
             f"else sessionStorage.removeItem('{CONV_KEY}'); return []; }}")
FOLLOW_OUTPUTS = tuple(o for o in TURN_OUTPUTS if o != "message")  # the box stays the user's
LOAD_OUTPUTS = (FOLLOW_OUTPUTS + ("model_info", "db_info")
                + tuple(n for n in OPEN_OUTPUTS if n not in TURN_OUTPUTS))  # the settings, the preset included


def gradio_value(value):
    """A ``Reply`` value as Gradio wants it."""
    if value is KEEP:
        return gr.update()
    if isinstance(value, Choices):
        return gr.update(choices=value.choices) if value.value is KEEP else \
            gr.update(choices=value.choices, value=value.value)
    if isinstance(value, Visible):
        return gr.update(visible=value.visible)
    return value


def gradio_outputs(reply: Reply, outputs: Sequence[str]):
    """Pop up the reply's toasts; its values in the order of the event's ``outputs`` (the others unchanged)."""
    unknown = set(reply) - set(outputs)
    if unknown:
        raise KeyError(f"the callback set {sorted(unknown)}, which its event does not output")
    for t in reply.toasts:
        (gr.Warning if t.level == "warning" else gr.Info)(t.text)
    values = tuple(gradio_value(reply.get(name, KEEP)) for name in outputs)
    return values[0] if len(values) == 1 else values


def callback(method: Callable, params: Sequence[str], outputs: Sequence[str]) -> Callable:
    """A Gradio function for a controller method: positional widget values → the method's keyword arguments
    (``params``, which also name the API's parameters); its ``Reply`` (or each one it yields) → outputs."""
    params, outputs = tuple(params), tuple(outputs)
    if inspect.isgeneratorfunction(method):
        def fn(*values):
            replies = method(**dict(zip(params, values, strict=True)))
            try:
                for reply in replies:
                    yield gradio_outputs(reply, outputs)
            finally:  # Gradio closes this when the page goes away: the method saves what it had, now
                replies.close()
    else:
        def fn(*values):
            return gradio_outputs(method(**dict(zip(params, values, strict=True))), outputs)
    fn.__name__ = fn.__qualname__ = method.__name__
    fn.__doc__ = method.__doc__
    fn.__signature__ = inspect.Signature(
        [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for p in params])
    return fn


class Wiring:
    """Connects widget events to controller methods by name."""

    def __init__(self, widgets: Widgets):
        self.w = widgets

    def args(self, method: Callable, outputs: Sequence[str], inputs: Sequence[Input] = ()) -> dict:
        """``fn``, ``inputs`` and ``outputs`` of an event running ``method``: it reads the widgets ``inputs``
        (a name: passed as the same-named argument; an (argument, widget) pair: under another name) and
        writes the widgets ``outputs``."""
        pairs = [(i, i) if isinstance(i, str) else i for i in inputs]
        return dict(fn=callback(method, [p for p, _ in pairs], outputs), inputs=[self.w[name] for _, name in pairs],
                    outputs=[self.w[name] for name in outputs])

    def on(self, trigger: Callable, method: Callable, outputs: Sequence[str], inputs: Sequence[Input] = (),
           **kwargs):
        """``trigger`` (a widget's event) runs ``method``; ``kwargs`` go to Gradio (API name, queue…)."""
        return trigger(**self.args(method, outputs, inputs), **kwargs)


def _wire_turns(wire: Wiring, c: ChatController) -> None:
    w = wire.w
    for trigger, api in ((w["send_btn"].click, "send"), (w["message"].submit, False)):
        queued = wire.on(trigger, c.begin_send, ("state", "chat", "status", "message"), ("state", "message"),
                         queue=False, show_api=False)
        queued.then(**wire.args(c.send, TURN_OUTPUTS, ("state", "message", *CONTROL_NAMES)), api_name=api,
                    show_progress="hidden", **ENGINE_QUEUE)
    queued = wire.on(w["regen_btn"].click, c.begin_regenerate, ("state", "chat", "status"), ("state",), queue=False,
                     show_api=False)
    queued.then(**wire.args(c.regenerate, TURN_OUTPUTS, ("state", *CONTROL_NAMES)), api_name="regenerate",
                show_progress="hidden", **ENGINE_QUEUE)
    queued = wire.on(w["regen_base_btn"].click, c.begin_regenerate_base, ("state", "chat", "status"), ("state",),
                     queue=False, show_api=False)
    queued.then(**wire.args(c.regenerate_base, TURN_OUTPUTS, ("state", *CONTROL_NAMES)),
                api_name="regenerate_base", show_progress="hidden", **ENGINE_QUEUE)
    wire.on(w["stop_btn"].click, c.stop, ("status",), ("state",), queue=False, api_name="stop")
    wire.on(w["clear_btn"].click, c.clear, TURN_OUTPUTS, ("state",), api_name="clear", **LIGHT)
    wire.on(w["show_base"].change, c.toggle_base, ("state", "chat"), ("state", ("show", "show_base")),
            api_name="show_base", **LIGHT)
    wire.on(w["turn"].input, c.inspect_turn, ("plot", "plot_summary", "table", "inspector"), ("state", "turn"),
            api_name="inspect", **LIGHT)
    wire.on(w["export_btn"].click, c.export_chat, ("export_file", "status"), ("state", "openai_api_key"),
            api_name="export", **LIGHT)
    wire.on(w["file"].upload, c.import_chat, TURN_OUTPUTS, ("state", "file"), api_name="import", **LIGHT)
    wire.on(w["action"].input, c.act, TURN_OUTPUTS, ("state", "action"), api_name="act", trigger_mode="always_last",
            **LIGHT)
    wire.on(w["arena"].change, c.toggle_arena, ("state", "chat", "inspector"), ("state", "arena"),
            api_name="arena", **LIGHT)


def _wire_library(wire: Wiring, c: ChatController) -> None:
    w = wire.w
    wire.on(w["open_btn"].click, c.open_conversation, OPEN_OUTPUTS, ("state", "conv_pick"),
            api_name="open_conversation", **LIGHT)
    wire.on(w["delete_btn"].click, c.delete_conversation, TURN_OUTPUTS, ("state", "conv_pick"),
            api_name="delete_conversation", **LIGHT)
    wire.on(w["rename_btn"].click, c.rename_conversation, ("status", "conv_pick", "conv_key", "conv_title"),
            ("state", "conv_title"), api_name="rename_conversation", **LIGHT)
    wire.on(w["conv_title"].submit, c.rename_conversation, ("status", "conv_pick", "conv_key", "conv_title"),
            ("state", "conv_title"), show_api=False, **LIGHT)  # Enter in the title renames too
    wire.on(w["conv_search"].input, c.search_conversations, ("state", "conv_pick", "status"),
            ("state", "conv_search"),
            api_name="search_conversations", trigger_mode="always_last", **LIGHT)
    wire.on(w["prefs_btn"].click, c.export_preferences, ("prefs_file", "prefs_report", "status"), ("state",),
            api_name="export_preferences", **LIGHT)
    w["conv_key"].change(None, inputs=[w["conv_key"]], outputs=None, js=WRITE_KEY, show_api=False, queue=False)


def _wire_settings(wire: Wiring, c: ChatController) -> None:
    w = wire.w
    wire.on(w["preset"].input, c.pick_preset, ("instruction", "rubric"), ("preset",), api_name="pick_preset",
            **LIGHT)
    for box in ("instruction", "rubric"):
        wire.on(w[box].input, c.edit_preset, ("preset",), ("preset", "instruction", "rubric"), show_api=False,
                trigger_mode="always_last", **LIGHT)
    wire.on(w["save_btn"].click, c.save_preset, ("preset", "status"),
            (("name", "preset_name"), "instruction", "rubric"), api_name="save_preset", **LIGHT)
    wire.on(w["evaluator"].change, c.show_evaluator, ("local_box", "openai_box", "fixed_box"), ("evaluator",),
            show_api=False, **LIGHT)
    wire.on(w["load_btn"].click, c.load_model, ("model_info", "status"),
            (("choice", "model_pick"), ("path", "model_path")), api_name="load_model", **ENGINE_QUEUE)
    wire.on(w["cv_btn"].click, c.apply_control, ("model_info", "status"),
            (("vectors", "cv_files"), ("scale", "cv_scale"), ("layers", "cv_layers"), ("streams", "cv_streams")),
            api_name="control_vectors", **ENGINE_QUEUE)


def build_app(host, controller: ChatController | None = None, *, store=None) -> gr.Blocks:
    """The Blocks for one ``ModelHost`` (``store``: where conversations are saved; default in memory).
    Launch with ``.queue().launch(...)`` (see ``sda_local.chat``)."""
    controller = controller or ChatController(host, store=store)
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "Consolas", "monospace"])  # no web fonts to fetch
    with gradio6_notices_silenced():
        demo = gr.Blocks(title="sda-local chat", css=CSS, theme=theme, analytics_enabled=False)
        with demo:
            wire = Wiring(build_layout(host, controller.page_presets, controller.shelf.note()))
            _wire_turns(wire, controller)
            _wire_settings(wire, controller)
            _wire_library(wire, controller)
            tips = {EVALUATORS[k]: tip for k, tip in EVALUATOR_TIPS.items() if k in EVALUATORS}
            demo.load(None, js=page_js(tips), show_api=False, queue=False)  # the page script, once per page load
            loaded = wire.on(demo.load, controller.on_load, LOAD_OUTPUTS, ("conv_key",), js=READ_KEY,
                             show_api=False, **LIGHT)
            # a reload while its answer is still being generated: the page shows that answer as it grows
            loaded.then(**wire.args(controller.follow, FOLLOW_OUTPUTS, ("state",)), show_api=False,
                        show_progress="hidden", **LIGHT)
    return demo


# Gradio 5 (pyproject pins gradio<6) announces that these arguments move in 6.0, where ``theme`` and ``css`` go
# to ``launch()`` and ``show_api=False`` becomes ``api_visibility``; 5.x has no other way to pass them, so only
# these announcements are silenced, only while the page is built.
GRADIO6_NOTICES = (r"The '(theme|css)' parameter in the Blocks constructor will be removed in Gradio 6\.0",
                   r".*(show_api|api_name=False).*Gradio 6\.0")


@contextmanager
def gradio6_notices_silenced():
    with warnings.catch_warnings():
        for message in GRADIO6_NOTICES:
            warnings.filterwarnings("ignore", message=message, category=DeprecationWarning)
        yield
