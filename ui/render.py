"""The conversation as HTML: per turn, the user's message, then the base and aligned answers side by side,
the score and λ that connect them, warnings, and the time each phase took.

The user's messages are escaped plain text (``white-space: pre-wrap``); the answers are Markdown rendered with
raw HTML disabled (``markdown``).  In arena mode a finished turn shows its two answers blind as A and B (in the
order its arena entry says) with vote buttons, and names them once voted.  Buttons and links carry ``data-act``:
the page script sends it to ``ChatController.act``.
"""
from __future__ import annotations

from html import escape

from sda_local.session import TurnRecord

from .arena import shown_as
from .markdown import render_markdown
from .state import LiveTurn, SessionState
from .versions import Versions

CSS = """
.sda-chat { display: flex; flex-direction: column; gap: 14px; }
.sda-empty { color: var(--body-text-color-subdued); padding: 24px; text-align: center; }
.sda-turn { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 10px 12px; }
.sda-user { background: var(--background-fill-secondary); border-radius: 8px; padding: 8px 10px; margin-bottom: 8px; }
.sda-who { font-size: 0.78em; font-weight: 600; color: var(--body-text-color-subdued); text-transform: uppercase;
           letter-spacing: .04em; margin-bottom: 2px; }
.sda-txt { white-space: pre-wrap; word-wrap: break-word; }
.sda-pair { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.sda-chat.hide-base .sda-pair { grid-template-columns: 1fr; }
.sda-chat.hide-base .sda-base { display: none; }
.sda-base, .sda-aligned { border-radius: 8px; padding: 8px 10px; min-height: 2.5em; }
.sda-base { background: var(--background-fill-secondary); }
.sda-aligned { background: var(--color-accent-soft); }
.sda-meta { display: flex; flex-wrap: wrap; gap: 6px; margin: 2px 0 6px 0; font-size: .85em; }
.sda-badge { border: 1px solid var(--border-color-primary); border-radius: 999px; padding: 1px 8px; }
.sda-wait { color: var(--body-text-color-subdued); font-style: italic; }
.sda-warn { margin-top: 6px; padding: 6px 10px; border-radius: 8px; border: 1px solid #d97706;
            background: rgba(245, 158, 11, .12); font-size: .9em; }
.sda-timings { margin-top: 6px; font-size: .8em; color: var(--body-text-color-subdued); }
.sda-md { white-space: normal; }
.sda-md > :first-child { margin-top: 0; } .sda-md > :last-child { margin-bottom: 0; }
.sda-md pre { white-space: pre; overflow-x: auto; padding: 8px; border-radius: 6px;
              background: var(--background-fill-primary); }
.sda-code { position: relative; }
.sda-copy { position: absolute; top: 4px; right: 4px; font-size: .75em; padding: 1px 8px; border-radius: 6px;
            border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary);
            cursor: pointer; }
.sda-act { font-size: .8em; margin-left: 6px; padding: 0 6px; border-radius: 6px; cursor: pointer;
           border: 1px solid var(--border-color-primary); background: var(--background-fill-primary); }
.sda-votes { display: flex; gap: 8px; justify-content: center; margin-top: 8px; }
.sda-votes .sda-act { font-size: .95em; padding: 3px 14px; }
.sda-voted { margin-top: 6px; font-size: .9em; text-align: center; }
.sda-inspector { font-size: .92em; }
.sda-empty-insp { color: var(--body-text-color-subdued); }
.sda-strip { white-space: pre-wrap; line-height: 1.9; margin: 4px 0 8px 0; }
.sda-tok { cursor: pointer; border-radius: 4px; padding: 1px 0; border-bottom: 1px dotted var(--border-color-primary); }
.sda-tok:hover { background: var(--color-accent-soft); }
.sda-tok-sel { background: var(--color-accent-soft); outline: 2px solid var(--color-accent); }
.sda-tops { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 10px; margin-top: 6px; }
.sda-top table { width: 100%; border-collapse: collapse; }
.sda-top td { padding: 1px 6px; border-bottom: 1px solid var(--border-color-primary); }
.sda-top-p { text-align: right; font-variant-numeric: tabular-nums; }
.sda-top tr.sda-chosen td { font-weight: 700; }
.sda-hidden { display: none !important; }
.sda-file:not(:has(a)) { display: none !important; }
/* the conversation scrolls in its own pane (page.PAGE_JS keeps it at the bottom while an answer streams), so
   the message box under it stays on screen however long the chat grows */
#sda-chat { height: calc(100vh - 330px); min-height: 260px; overflow-y: auto; overscroll-behavior: contain;
            overflow-anchor: none; }  /* the answer is re-rendered whole: no anchoring jumps */
.sda-chat { padding-right: 4px; }
.sda-act { text-transform: none; letter-spacing: normal; font-weight: normal; }
.sda-md[data-pick] { cursor: text; }
.sda-answer { border-radius: 8px; padding: 8px 10px; min-height: 2.5em; background: var(--background-fill-secondary); }
.sda-nocase { text-transform: none; }
.sda-versions { margin-left: 8px; white-space: nowrap; }
.sda-versions .sda-act { margin-left: 2px; padding: 0 5px; }
.sda-ver-off { opacity: .35; cursor: default; }
.sda-ver-n { margin: 0 2px; font-variant-numeric: tabular-nums; }
.sda-cut { margin-top: 4px; font-size: .8em; color: var(--body-text-color-subdued); font-style: italic; }
.sda-md { overflow-x: auto; }
.sda-md table { border-collapse: collapse; margin: 6px 0; }
.sda-md th, .sda-md td { border: 1px solid var(--border-color-primary); padding: 2px 8px; }
.sda-img-alt { font-style: italic; border-bottom: 1px dotted var(--border-color-primary); }
.sda-img-alt::before { content: "[image: "; } .sda-img-alt::after { content: "]"; }
/* legible notes and controls (issue 29): muted text stays at 4.5:1 or more on its background in light and dark
   themes (the theme's text colour mixed with the page's, not a fixed grey), at 12 px at least; buttons are 24 px
   or more; a wide table scrolls inside its answer instead of widening the column */
.sda-who, .sda-timings, .sda-cut, .sda-wait, .sda-empty, .sda-empty-insp {
  color: color-mix(in srgb, var(--body-text-color) 78%, var(--background-fill-primary)); }
.sda-who { font-size: 12px; }
.sda-timings, .sda-cut { font-size: 12px; }
.sda-act, .sda-copy { font-size: 12px; min-height: 24px; min-width: 24px; line-height: 22px; padding: 0 8px;
                      box-sizing: border-box; vertical-align: middle; }
.sda-versions .sda-act { font-size: 16px; padding: 0 6px; }
.sda-pair > * { min-width: 0; }
.sda-md table { display: block; max-width: 100%; overflow-x: auto; }
/* Send becomes Stop while an answer is on its way (the live turn, queued included, is in the page) */
.gradio-container:has(#sda-chat .sda-live) #sda-send { display: none !important; }
.gradio-container:not(:has(#sda-chat .sda-live)) #sda-stop { display: none !important; }
"""


BASE_HEAD = "Base answer · no instruction, no steering"


def _txt(text: str) -> str:
    return f'<div class="sda-txt">{escape(text)}</div>'


PICK_TITLE = "Click a word to see why SDA chose its token"


def _md(text: str, pick: int | None = None) -> str:
    """An answer: Markdown, raw HTML shown as text; ``data-text`` holds the text for **Copy answer**, and
    ``pick`` (a turn number) makes a click on a word open the token inspector (``page.PAGE_JS``)."""
    attrs = f' data-pick="{pick}" title="{PICK_TITLE}"' if pick is not None else ""
    return f'<div class="sda-txt sda-md" data-text="{escape(text)}"{attrs}>{render_markdown(text)}</div>'


def _copy_answer() -> str:
    return '<button type="button" class="sda-act sda-copy-answer" title="Copy the whole answer">Copy answer</button>'


def _act(action: str, label: str, cls: str = "sda-act") -> str:
    return f'<button type="button" class="{cls}" data-act="{escape(action)}">{escape(label)}</button>'


def _wait(text: str) -> str:
    return f'<div class="sda-wait">{escape(text)}</div>'


def _user(text: str, edit: int | None = None, versions: Versions | None = None) -> str:
    """The user's message; ``edit`` (its turn number) adds the button that puts it back in the box to change, and
    ``versions`` the turn's ‹ 1/2 ›."""
    button = _act(f"edit {edit}", "edit") if edit is not None else ""
    nav = _versions_nav(edit, versions) if edit is not None and versions is not None else ""
    return f'<div class="sda-user"><div class="sda-who">You{button}{nav}</div>{_txt(text)}</div>'


VERSIONS_TIP = "Versions of this turn (each regeneration keeps the one before): the chat continues from the one shown"


def _versions_nav(turn: int, v: Versions) -> str:
    """‹ N/M ›: the version shown of turn ``turn``, and buttons to the one before and after (``version TURN N``)."""
    n, m = v.shown + 1, v.count
    back = _act(f"version {turn} {n - 1}", "‹", "sda-act sda-ver-back") if n > 1 else \
        '<span class="sda-act sda-ver-off">‹</span>'
    on = _act(f"version {turn} {n + 1}", "›", "sda-act sda-ver-next") if n < m else \
        '<span class="sda-act sda-ver-off">›</span>'
    return (f'<span class="sda-versions" data-version="{n}" data-versions="{m}" title="{VERSIONS_TIP}">{back}'
            f'<span class="sda-ver-n">{n}/{m}</span>{on}</span>')


def _warnings(warnings: list[str]) -> str:
    return "".join(f'<div class="sda-warn">⚠ {escape(w)}</div>' for w in warnings)


LAM_TIP = "λ: how strongly this answer was steered toward the instruction (0 = not at all, near 1 = very strongly)"


def _meta(score: int | None, score_detail: str, lam: float | None, lam_source: str, mapping: str) -> str:
    parts = []
    if score is not None:
        parts.append(f'<span class="sda-badge sda-score" title="{escape(score_detail)}">score {score}/100</span>')
    if lam is not None:
        how = {"score": f"from the score via {mapping}", "fixed": "fixed", "fallback": "fallback (evaluator failed)"}
        parts.append(f'<span class="sda-badge sda-lam" title="{LAM_TIP}">λ = {lam:.3f}</span>'
                     f'<span class="sda-badge sda-lam-source">{escape(how.get(lam_source, lam_source))}</span>')
    return f'<div class="sda-meta">{"".join(parts)}</div>' if parts else ""


def timings_text(t: dict) -> str:
    """One line: time per phase, time to the first aligned token, tokens per second."""
    if not t:
        return ""
    bits = [f"base {t.get('base_s', 0):.2f} s", f"judge {t.get('judge_s', 0):.2f} s",
            f"aligned {t.get('aligned_s', 0):.2f} s"]
    if t.get("first_aligned_token_s") is not None:
        bits.append(f"first aligned token after {t['first_aligned_token_s']:.2f} s")
    if t.get("base_tokens_per_s"):
        bits.append(f"base {t.get('base_tokens', 0)} tok at {t['base_tokens_per_s']:.1f} tok/s")
    bits.append(f"aligned {t.get('aligned_tokens', 0)} tok at {t.get('aligned_tokens_per_s') or 0:.1f} tok/s")
    return " · ".join(bits)


ENDINGS = {"stopped": " · stopped", "error": " · ended by an error",
           "interrupted": " · interrupted: the app stopped (or the page was left) before this answer ended"}
CUT = "hit max tokens"


def _lam(lam: float | None) -> str:
    """``λ 0.250`` for a header (kept lowercase under the headers' uppercase style); "" before λ is chosen."""
    return "" if lam is None else f' · <span class="sda-nocase">λ {lam:.3f}</span>'


STOPPED = "stopped"
NOT_STARTED = "stopped before this answer started"


def _cut(finish_reason: str | None) -> str:
    """The note under an answer that ended at the max-tokens limit or was cut by Stop (base or aligned alike)."""
    note = {"length": CUT, "stopped": STOPPED}.get(finish_reason or "")
    return f'<div class="sda-cut">{note}</div>' if note else ""


def _ended(text: str, finish_reason: str | None, pick: int | None = None) -> str:
    """A finished answer and its note; one stopped before its first token says so."""
    if not text and finish_reason == "stopped":
        return _wait(NOT_STARTED)
    return _md(text, pick) + _cut(finish_reason)


def _phase(r: TurnRecord) -> str:
    return r.finish_reason if r.finish_reason in ("stopped", "error", "interrupted") else "done"


# k·λ above this: "strong steering" (SmolLM2 and Qwen 1.5B stayed coherent at k·λ = 0.5 and 1, the presets' and
# λ 0.5; k = 4, λ = 0.9 (3.6) gave word salad; 2 is a line drawn between those, not a measured edge)
STRONG_KLAM = 2.0


def strength_warning(k: float | None, lam: float | None) -> str:
    """A warning when k·λ is so large that answers tend to degrade; "" otherwise."""
    if k is None or lam is None or k * lam <= STRONG_KLAM:
        return ""
    return (f"Strong steering: k·λ = {k * lam:.2f} (k {k:g} × λ {lam:.3f}). Above about {STRONG_KLAM:g} answers "
            f"often fall apart into word salad (k 4 × λ 0.9 did); lower λ or k (the defaults give 0.5).")


def record_k(r: TurnRecord) -> float | None:
    k = ((r.settings or {}).get("sampling") or {}).get("k")
    return float(k) if isinstance(k, (int, float)) else None


def _turn_foot(r: TurnRecord) -> str:
    stop = ENDINGS.get(r.finish_reason, "")
    strong = strength_warning(record_k(r), r.lam)
    warns = _warnings(r.warnings + ([strong] if strong else []))
    return (f'{warns}<div class="sda-timings">{escape(timings_text(r.timings))}{escape(stop)} · '
            f'evaluator {escape(r.evaluator or "none")}</div>')


def _record_html(i: int, r: TurnRecord, versions: Versions | None = None) -> str:
    s = r.score or {}
    detail = f"{s.get('evaluator', '')}: {s.get('raw', '')} ({s.get('latency_s', 0):.2f} s)" if s else ""
    preset = (r.settings.get("preset") or {}).get("name", "")
    regen = f" · regenerated {r.regenerations}×" if r.regenerations else ""
    inspect = _act(f"turn {i}", "inspect tokens")
    return (f'<div class="sda-turn" data-turn="{i}" data-phase="{_phase(r)}">'
            + _user(r.user, i, versions)
            + _meta(s.get("value"), detail, r.lam, r.lam_source, r.settings.get("mapping", "")) +
            '<div class="sda-pair">'
            f'<div class="sda-base"><div class="sda-who">{BASE_HEAD}{_copy_answer()}</div>'
            f'{_ended(r.base, r.base_finish_reason)}</div><div class="sda-aligned">'
            f'<div class="sda-who">Aligned (SDA) · {escape(preset)}{_lam(r.lam)}{regen}{inspect}{_copy_answer()}'
            f'</div>{_ended(r.aligned, r.finish_reason, i if r.aligned_tokens else None)}</div></div>'
            f'{_turn_foot(r)}</div>')


SYSTEM_NAMES = {"aligned": "SDA (aligned)", "base": "base"}


def _arena_html(i: int, r: TurnRecord, arena: dict) -> str:
    """A finished turn in arena mode: answers A and B without labels and vote buttons; named once voted."""
    order = shown_as(arena)
    texts = {"aligned": r.aligned, "base": r.base}
    vote = arena.get("vote")
    ends = {"aligned": r.finish_reason, "base": r.base_finish_reason}
    cols = []
    for letter in ("A", "B"):
        name = f" · {SYSTEM_NAMES[order[letter]]}" if vote else ""
        cut = _cut(ends[order[letter]]) if vote else ""  # before the vote the notes could tell them apart
        cols.append(f'<div class="sda-answer" data-answer="{letter}"><div class="sda-who">Answer {letter}{name}'
                    f'{_copy_answer()}</div>{_md(texts[order[letter]])}{cut}</div>')
    if vote:
        said = "a tie" if vote == "tie" else f"{vote} ({SYSTEM_NAMES[order[vote]]})"
        lam = "" if r.lam is None else f" · λ {r.lam:.3f}"
        votes = f'<div class="sda-voted">Your vote: {escape(said)}{lam}</div>'
    else:
        votes = ('<div class="sda-votes">' + _act(f"vote {i} A", "A is better") + _act(f"vote {i} tie", "Tie")
                 + _act(f"vote {i} B", "B is better") + '</div>')
    foot = _turn_foot(r) if vote else ""
    return (f'<div class="sda-turn sda-arena" data-turn="{i}" data-phase="{_phase(r)}" '
            f'data-vote="{escape(vote or "")}">'
            f'{_user(r.user)}<div class="sda-pair">{"".join(cols)}</div>{votes}{foot}</div>')


def _live_html(i: int, t: LiveTurn, mapping: str, arena: bool = False, k: float | None = None) -> str:
    if t.phase == "queued" and not t.regenerating:
        base = _wait("waiting for the model (another chat is generating)…")
    else:
        base = (_md(t.base) if t.base else _wait("…")) + _cut(t.base_finish)
    if t.phase == "queued" and t.fresh_base:
        aligned = _wait("waiting for the model to draw the base answer again, then this one…")
    elif t.phase == "queued" and t.regenerating:
        aligned = _wait("waiting for the model to sample this answer again…")
    elif t.phase in ("queued", "base"):
        aligned = _wait("starts after the base answer is scored")
    elif t.phase == "judge":
        aligned = _wait("the evaluator is scoring the base answer…")
    else:
        aligned = _md(t.aligned) if t.aligned else _wait("…")
    if arena:  # blind: which answer streams first would tell them apart
        return (f'<div class="sda-turn sda-live sda-arena" data-turn="{i}" data-phase="{t.phase}">{_user(t.user)}'
                f'{_wait("arena: generating answers A and B…")}</div>')
    strong = strength_warning(k, t.lam)
    warn = _warnings(t.warnings + ([strong] if strong else []))
    return (f'<div class="sda-turn sda-live" data-turn="{i}" data-phase="{t.phase}">'
            + _user(t.user)
            + _meta(t.score, t.score_detail, t.lam, t.lam_source, mapping) +
            '<div class="sda-pair">'
            f'<div class="sda-base"><div class="sda-who">{BASE_HEAD}</div>{base}</div>'
            f'<div class="sda-aligned"><div class="sda-who">Aligned (SDA){_lam(t.lam)}'
            f'{" · regenerating" if t.regenerating else ""}</div>{aligned}</div></div>{warn}</div>')


def chat_html(state: SessionState | None) -> str:
    """The whole conversation, the turn being generated included."""
    arena = bool(state and state.arena_mode)
    cls = "sda-chat" + ("" if state is None or state.show_base or arena else " hide-base") + (" arena" if arena else "")
    turns = list(state.turns) if state else []
    arenas = state.arenas() if state else []
    versions = state.versions() if state else []
    live = state.live if state else None
    if live is not None and live.regenerating and turns:
        turns = turns[:-1] if turns[-1] is live.previous else turns
    body = [_arena_html(i + 1, r, a) if arena else _record_html(i + 1, r, v)
            for i, (r, a, v) in enumerate(zip(turns, arenas, versions))]
    if live is not None:
        mapping = state.chat.settings.mapping if state.chat else ""
        k = state.chat.settings.sampling.k if state.chat else None
        body.append(_live_html(len(turns) + 1, live, mapping, arena, k))
    if not body:
        body = ['<div class="sda-empty">Pick a preset and an evaluator, then send a message. Each turn shows the '
                'model\'s base answer and the SDA-aligned answer side by side.</div>']
    return f'<div class="{cls}">{"".join(body)}</div>'
