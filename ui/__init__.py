"""The Gradio chat for sda-local (``python -m sda_local.chat``), shipped in the wheel as ``sda_local.ui``.

- ``host``       the one loaded model shared by every browser session, model switching, evaluator cache
- ``fields``     the Advanced settings, derived from ``SamplingParams`` and ``TurnSettings``' options
- ``controls``   the settings widgets' values, by name → ``TurnSettings`` and an evaluator choice
- ``state``      one browser session: its ``ChatSession``, the stop flag, what the view shows
- ``render``     the conversation as HTML (base and aligned answers side by side, or blind A/B in arena mode)
- ``markdown``   answers as Markdown with raw HTML off (untrusted model output), code blocks with Copy
- ``inspector``  the token inspector: an answer's tokens, and a clicked token's three top-5 lists
- ``pick``       which token a click on a word of a rendered answer landed on
- ``plots``      per-token diagnostics of an aligned answer as plot and table data
- ``reply``      what a callback returns: output values by widget name, and toasts
- ``conversations`` the conversation store (SQLite, or memory when the database cannot be used)
- ``arena``      blind A/B turns, votes, win rate, votes → preference pairs
- ``versions``   a turn's versions (‹ 1/2 ›): what a regeneration keeps of the answers it replaces
- ``views``      what the page shows of a session: the conversation outputs, one turn's diagnostics
- ``shelf``      a session's conversation in the store: saved as it changes, listed, opened
- ``streaming``  a turn's events on the page (``TurnStream``): shown, throttled, saved, its ending said
- ``turns``      send, Regenerate aligned / base, Stop (the turn and its seed are the ``ChatSession``'s)
- ``reload``     a page (re)opening: its conversation resumed, an answer still going on followed
- ``clicks``     clicks in the conversation and the inspector: tokens, edit, arena votes, versions
- ``library``    saved conversations (open, rename, search, delete), JSON export/import, preference pairs
- ``panel``      presets, the evaluator's widgets, the model and control vectors
- ``controller`` ``ChatController``: every callback as a method (named inputs → ``Reply``), handed to its job
- ``layout``     the page's widgets, by name (the Advanced settings generated from ``fields``)
- ``app``        ``build_app``: the layout wired to the controller, by name
- ``page``       the page script: clicks, copying, the conversation pane that follows the answer
- ``offline``    keeps the page from loading anything from other hosts

Gradio itself is imported only by ``layout`` and ``app``.
"""
