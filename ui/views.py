"""What the page shows of a session, as output values by widget name: the conversation (``turn_reply``) and the
diagnostics of one turn (``inspect_values``: plot, table, record, token inspector).  Every job of the controller
answers through these."""
from __future__ import annotations

from typing import Any

from sda_local.session import TurnRecord

from . import plots
from .inspector import inspector_html
from .render import chat_html
from .reply import Choices, Reply
from .shelf import Shelf
from .state import SessionState

ARENA_HIDES = "Arena: vote on turn {n} first (its tokens would tell which answer is SDA's)."


def scrub(text: str, secret: str | None) -> str:
    """``text`` with the API key replaced by ``***``."""
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text


def record_summary(rec: TurnRecord) -> dict:
    d = rec.to_dict()
    d["aligned_tokens"] = len(rec.aligned_tokens)
    return d


def inspector_for(st: SessionState, n: int) -> str:
    """The token inspector for turn ``n`` (the token ``st.inspected`` names, if it is of that turn)."""
    rec = st.turns[n - 1]
    if st.arena_mode and st.arenas()[n - 1].get("vote") is None:
        return inspector_html(n, [], hidden_reason=ARENA_HIDES.format(n=n))
    token = st.inspected[1] if st.inspected and st.inspected[0] == n else None
    return inspector_html(n, rec.aligned_tokens, token)


def inspect_values(st: SessionState, turn_no: int | None = None) -> dict[str, Any]:
    """Plot, plot summary, token table, turn selector, record and token inspector of one turn (default: the one
    the inspector shows, else the last)."""
    turns = st.turns
    if not turns:
        return {"plot": plots.plot_frame([]), "plot_summary": "No turn yet.", "table": plots.table_rows([]),
                "turn": Choices([], None), "record": None, "inspector": inspector_html(None, [])}
    if turn_no is None:
        turn_no = st.inspected[0] if st.inspected and st.inspected[0] <= len(turns) else len(turns)
    n = max(1, min(int(turn_no), len(turns)))
    rec = turns[n - 1]
    # never None once the page has a plot: Gradio's LinePlot then drops its chart while its resize observer still
    # reads the chart's width ("Cannot read properties of null (reading 'offsetWidth')"); no rows: empty axes
    return {"plot": plots.plot_frame(rec.aligned_tokens),
            "plot_summary": f"Turn {n}: " + plots.summary(rec.aligned_tokens),
            "table": plots.table_rows(rec.aligned_tokens),
            "turn": Choices([str(i) for i in range(1, len(turns) + 1)], str(n)), "record": record_summary(rec),
            "inspector": inspector_for(st, n)}


def turn_reply(st: SessionState, status: str, shelf: Shelf, *, message: str | None = None,
               inspect: bool = True) -> Reply:
    """The conversation outputs (``TURN_OUTPUTS``); ``message`` None leaves the input box alone, ``inspect``
    False the plot, the inspector and the conversation list (``shelf``'s; left alone while tokens stream)."""
    reply = Reply(state=st, chat=chat_html(st), status=status)
    if message is not None:
        reply["message"] = message
    if inspect:
        reply.update(inspect_values(st))
        reply.update(shelf.values(st))
    return reply
