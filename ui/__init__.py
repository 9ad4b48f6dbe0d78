"""The Gradio chat for sda-local (``python -m sda_local.chat``), shipped in the wheel as ``sda_local.ui``.

- ``host``       the one loaded model shared by every browser session, model switching, evaluator cache
- ``fields``     the Advanced settings, derived from ``SamplingParams`` and ``TurnSettings``' options
- ``controls``   the settings widgets' values, by name → ``TurnSettings`` and an evaluator choice
- ``state``      one browser session: its ``ChatSession``, the stop flag, what the view shows
- ``render``     the conversation as HTML (base and aligned answers side by side, or blind A/B in arena mode)
- ``markdown``   answers as Markdown with raw HTML off (untrusted model output), code blocks with Copy
- ``inspector``  the token inspector: an answer's tokens, and a clicked token's three top-5 lists
- ``pick``       which token a click on a word of a rendered answer landed on
- ``library``    saved conversations (list, open, rename, delete) and arena votes → preference pairs
- ``plots``      per-token diagnostics of an aligned answer as plot and table data
- ``reply``      what a callback returns: output values by widget name, and toasts
- ``controller`` every callback as a method (named inputs → ``Reply``); no SDA math: it consumes turn events
- ``layout``     the page's widgets, by name (the Advanced settings generated from ``fields``)
- ``app``        ``build_app``: the layout wired to the controller, by name
- ``page``       the page script: clicks, copying, the conversation pane that follows the answer
- ``offline``    keeps the page from loading anything from other hosts

Gradio itself is imported only by ``layout`` and ``app``.
"""
