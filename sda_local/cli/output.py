"""How the commands print: answers streamed as text (diagnostics on stderr) or one JSON object per line."""
from __future__ import annotations

import json
import sys
from typing import Iterable, Iterator

from ..runtime.engine import Finished, TokenEvent


def token_row(stream: str, t: TokenEvent) -> dict:
    return {"stream": stream, "index": t.index, "token_id": t.token_id, "text": t.text, "prob": round(t.prob, 6),
            "js": None if t.js is None else round(t.js, 6), "temperature": round(t.temperature, 6)}


def print_json(row: dict, out=None) -> None:
    print(json.dumps(row, ensure_ascii=False), file=out or sys.stdout, flush=True)


def print_stream(events: Iterable, label: str, as_json: bool, out=None) -> Finished | None:
    """Print one generation (``TokenEvent``s then ``Finished``); returns the ``Finished``."""
    out = out or sys.stdout
    done = None
    for ev in events:
        if isinstance(ev, Finished):
            done = ev
            if as_json:
                print_json({"stream": label, **ev.to_dict()}, out)
            elif ev.tail:
                print(ev.tail, end="", file=out, flush=True)
        elif as_json:
            print_json(token_row(label, ev), out)
        else:
            print(ev.text, end="", file=out, flush=True)
    if not as_json:
        print(file=out, flush=True)
    return done


def print_finished(done: Finished | None) -> None:
    if done is not None:
        print(f"[{done.n_tokens} tokens, {done.tokens_per_second:.1f} tok/s, stop: {done.finish_reason}]",
              file=sys.stderr, flush=True)


def lambda_text(lam: float, source: str, score: int | None, mapping: str) -> str:
    """``λ = 0.905, fixed score 25 via sigmoid``: λ and where it came from, in the words of ``judges.decision``."""
    if source == "score":
        how = f"score {score} via {mapping}"
    elif source == "fixed":
        how = "fixed" if score is None else f"fixed score {score} via {mapping}"
    else:
        how = "fallback"
    return f"λ = {lam:.3f}, {how}"


def _turn_row(ev) -> dict:
    k = ev.kind
    if k in ("base_token", "aligned_token"):
        return token_row("base" if k == "base_token" else "sda", ev.token)
    if k == "phase_done":
        return {"stream": "base" if ev.phase == "base" else "sda", **ev.finished.to_dict()}
    if k == "score":
        return {"event": "score", **ev.score.to_dict()}
    if k == "warning":
        return {"event": "warning", "message": ev.message, "lam": ev.lam}
    if k == "lambda":
        return {"event": "lambda", "lam": ev.lam, "source": ev.source, "score": ev.score, "mapping": ev.mapping}
    return {"event": "done", "timings": ev.turn.timings, "finish_reason": ev.turn.finish_reason}


def base_first(events: Iterable) -> Iterator:
    """A turn's events with the base answer's first: when both answers are decoded together (the λ events, then
    their tokens interleaved), what comes before the base answer ends is held back and follows it, so a terminal
    shows one answer after the other while both are still decoded at once."""
    held: list = []
    base_done = False
    for ev in events:
        if base_done or ev.kind in ("base_token", "score") or (ev.kind == "warning" and not held):
            yield ev
        elif ev.kind == "phase_done" and ev.phase == "base":
            base_done = True
            yield ev
            yield from held
            held.clear()
        else:
            held.append(ev)
    yield from held


def print_turn(events: Iterable, as_json: bool, show_base: bool) -> None:
    """Print a ``ChatSession`` turn: the answers on stdout, headers, score, λ and timings on stderr (as text,
    the base answer first: ``base_first``)."""
    err, out = sys.stderr, sys.stdout
    if show_base and not as_json:
        events = base_first(events)
    for ev in events:
        k = ev.kind
        if as_json:
            print_json(_turn_row(ev), out)
        elif k == "base_token" and show_base:
            if ev.token.index == 0:
                print("── base answer (no instruction, no steering) ──", file=err, flush=True)
            print(ev.token.text, end="", file=out, flush=True)
        elif k == "phase_done" and (ev.phase == "aligned" or show_base):
            print(ev.finished.tail, file=out, flush=True)
        elif k == "score":
            s = ev.score
            print(f"── score {s.value}/100 from {s.evaluator} ({s.latency_s:.2f} s) ──", file=err, flush=True)
        elif k == "warning":
            print(f"warning: {ev.message}", file=err, flush=True)
        elif k == "lambda":
            print(f"── SDA answer ({lambda_text(ev.lam, ev.source, ev.score, ev.mapping)}) ──", file=err, flush=True)
        elif k == "aligned_token":
            print(ev.token.text, end="", file=out, flush=True)
        elif k == "done":
            t = ev.turn.timings
            if t.get("together"):
                print(f"[aligned: {t['aligned_tokens']} tokens, {t['aligned_tokens_per_s']:.1f} tok/s; base and "
                      f"aligned answers decoded together: base done at {t['base_s']:.2f} s, whole turn "
                      f"{t['total_s']:.2f} s]", file=err, flush=True)
            else:
                print(f"[aligned: {t['aligned_tokens']} tokens, {t['aligned_tokens_per_s']:.1f} tok/s; "
                      f"base {t['base_s']:.2f} s, judge {t['judge_s']:.2f} s, aligned {t['aligned_s']:.2f} s]",
                      file=err, flush=True)
