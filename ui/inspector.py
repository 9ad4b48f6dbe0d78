"""The token inspector as HTML: a turn's aligned answer as clickable tokens, and for the clicked token the top-5
lists the engine recorded at that step (instructed stream, uninstructed stream, the steered distribution it was
drawn from), with the step's JS divergence, temperature and the candidates the constraints removed.

Formatting only (the lists come computed with each token: ``TurnRecord.aligned_tokens[i]["top"]``); every token's
text is escaped.  A token carries ``data-act="tok TURN I"``: the page script sends that to ``ChatController.act``.
"""
from __future__ import annotations

from html import escape

LISTS = (("instructed", "With the instruction"), ("uninstructed", "Without the instruction"),
         ("steered", "Steered (SDA): drawn from"))
HINT = "Click a token of the aligned answer to see why SDA chose it."


def shown(text: str) -> str:
    """A token's text as it appears in a list: spaces and newlines made visible."""
    return (text or "").replace("\n", "⏎").replace(" ", "·").replace("\t", "⇥") or "∅"


def _strip(turn_no: int, tokens: list[dict], selected: int | None) -> str:
    spans = []
    for n, t in enumerate(tokens):
        i = int(t.get("i", n))
        text = t.get("text") or ""
        visible = escape(text.replace("\n", "⏎\n")) if text else "·"
        cls = "sda-tok sda-tok-sel" if i == selected else "sda-tok"
        spans.append(f'<span class="{cls}" data-act="tok {turn_no} {i}" data-i="{i}" '
                     f'title="#{i} · p = {float(t.get("prob") or 0):.3f}">{visible}</span>')
    return f'<div class="sda-strip" data-turn="{turn_no}">{"".join(spans)}</div>'


def _list(name: str, title: str, entries: list | None, chosen: str) -> str:
    if entries is None:
        return ""
    rows = "".join(f'<tr class="{"sda-chosen" if text == chosen else ""}"><td class="sda-top-tok">'
                   f'{escape(shown(text))}</td><td class="sda-top-p">{float(p):.3f}</td></tr>' for text, p in entries)
    return (f'<div class="sda-top" data-list="{name}"><div class="sda-who">{escape(title)}</div>'
            f'<table><tbody>{rows}</tbody></table></div>')


def token_detail(tok: dict) -> str:
    """The three top-5 lists and the step's diagnostics for one aligned token."""
    top = tok.get("top")
    text = tok.get("text") or ""
    head = (f'Token #{int(tok.get("i", 0))} <code>{escape(shown(text))}</code> drawn with '
            f'p = {float(tok.get("prob") or 0):.3f}')
    if not top:
        return f'<div class="sda-detail"><div>{head}</div><div class="sda-wait">no top-5 lists were recorded ' \
               'for this turn (an older or imported chat)</div></div>'
    js = top.get("js")
    removed = int(top.get("n_removed") or 0)
    facts = [f"JS divergence {js:.4f}" if js is not None else "one stream (no JS)",
             f"temperature T = {float(top.get('temperature') or 0):.3f}",
             f"{removed} candidate{'s' if removed != 1 else ''} removed by the plausibility constraint (or the echo "
             f"block)" if removed else "no candidates removed by the plausibility constraint"]
    badges = "".join(f'<span class="sda-badge">{escape(f)}</span>' for f in facts)
    lists = "".join(_list(name, title, top.get(name), text) for name, title in LISTS)
    return (f'<div class="sda-detail"><div>{head}</div><div class="sda-meta">{badges}</div>'
            f'<div class="sda-tops">{lists}</div></div>')


def inspector_html(turn_no: int | None, tokens: list[dict], selected: int | None = None,
                   hidden_reason: str = "") -> str:
    """The inspector panel for one turn (``selected``: the token whose lists are shown)."""
    if turn_no is None:
        return f'<div class="sda-inspector sda-empty-insp">{escape(HINT)} (No turn yet.)</div>'
    if hidden_reason:
        return f'<div class="sda-inspector sda-empty-insp">{escape(hidden_reason)}</div>'
    pick = next((t for n, t in enumerate(tokens) if int(t.get("i", n)) == selected), None)
    detail = token_detail(pick) if pick is not None else f'<div class="sda-wait">{escape(HINT)}</div>'
    return (f'<div class="sda-inspector"><div class="sda-who">Turn {turn_no} · aligned answer, token by token'
            f'</div>{_strip(turn_no, tokens, selected)}{detail}</div>')
