"""The Gradio chat for sda-local (``python -m sda_local.chat``), shipped in the wheel as ``sda_local.ui``.

- ``host``     the one loaded model shared by every browser session, model switching, evaluator cache
- ``controls`` what the settings widgets say → ``TurnSettings`` and an evaluator choice
- ``state``    one browser session: its ``ChatSession``, the stop flag, what the view shows
- ``render``   the conversation as HTML (base and aligned answers side by side), timings
- ``plots``    per-token diagnostics of an aligned answer as plot and table data
- ``app``      the Blocks layout and the callbacks (no SDA math: they consume pipeline events)

Gradio itself is imported only by ``app``.
"""
