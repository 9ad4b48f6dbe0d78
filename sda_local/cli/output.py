"""How the commands print: answers streamed as text (diagnostics on stderr) or one JSON object per line."""
from __future__ import annotations

import json
import sys
from typing import Iterable, Iterator

from ..runtime.engine import Finished, TokenEvent
from ..session import TurnDone
from ..turn import AlignedToken, BaseToken, EvaluatorWarning, LambdaChosen, PhaseDone, Scored


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
    match ev:
        case BaseToken(token=t):
            return token_row("base", t)
        case AlignedToken(token=t):
            return token_row("sda", t)
        case PhaseDone(phase=phase, finished=f):
            return {"stream": "base" if phase == "base" else "sda", **f.to_dict()}
        case Scored(score=sc):
            return {"event": "score", **sc.to_dict()}
        case EvaluatorWarning(message=m, lam=lam):
            return {"event": "warning", "message": m, "lam": lam}
        case LambdaChosen():
            return {"event": "lambda", "lam": ev.lam, "source": ev.source, "score": ev.score, "mapping": ev.mapping}
        case TurnDone(turn=t):
            return {"event": "done", "timings": t.timings, "finish_reason": t.finish_reason}
    raise TypeError(f"not a turn event: {ev!r}")


def base_first(events: Iterable) -> Iterator:
    """A turn's events with the base answer's first: when both answers are decoded together (the λ events, then
    their tokens interleaved), what comes before the base answer ends is held back and follows it, so a terminal
    shows one answer after the other while both are still decoded at once."""
    held: list = []
    base_done = False
    for ev in events:
        match ev:
            case _ if base_done:
                yield ev
            case BaseToken() | Scored():
                yield ev
            case EvaluatorWarning() if not held:
                yield ev
            case PhaseDone(phase="base"):
                base_done = True
                yield ev
                yield from held
                held.clear()
            case _:
                held.append(ev)
    yield from held


def print_turn(events: Iterable, as_json: bool, show_base: bool) -> None:
    """Print a ``ChatSession`` turn: the answers on stdout, headers, score, λ and timings on stderr (as text,
    the base answer first: ``base_first``)."""
    if show_base and not as_json:
        events = base_first(events)
    for ev in events:
        if as_json:
            print_json(_turn_row(ev), sys.stdout)
        else:
            _print_event(ev, show_base)


def _print_event(ev, show_base: bool) -> None:
    err, out = sys.stderr, sys.stdout
    match ev:
        case BaseToken(token=t) if show_base:
            if t.index == 0:
                print("── base answer (no instruction, no steering) ──", file=err, flush=True)
            print(t.text, end="", file=out, flush=True)
        case PhaseDone(phase=phase, finished=f) if phase == "aligned" or show_base:
            print(f.tail, file=out, flush=True)
        case Scored(score=sc):
            print(f"── score {sc.value}/100 from {sc.evaluator} ({sc.latency_s:.2f} s) ──", file=err, flush=True)
        case EvaluatorWarning(message=m):
            print(f"warning: {m}", file=err, flush=True)
        case LambdaChosen():
            print(f"── SDA answer ({lambda_text(ev.lam, ev.source, ev.score, ev.mapping)}) ──", file=err, flush=True)
        case AlignedToken(token=t):
            print(t.text, end="", file=out, flush=True)
        case TurnDone(turn=turn):
            print(timings_line(turn.timings), file=err, flush=True)


def timings_line(t: dict) -> str:
    """A turn's timings (``TurnTrace.timings``) in one line."""
    if t.get("together"):
        return (f"[aligned: {t['aligned_tokens']} tokens, {t['aligned_tokens_per_s']:.1f} tok/s; base and "
                f"aligned answers decoded together: base done at {t['base_s']:.2f} s, whole turn "
                f"{t['total_s']:.2f} s]")
    return (f"[aligned: {t['aligned_tokens']} tokens, {t['aligned_tokens_per_s']:.1f} tok/s; "
            f"base {t['base_s']:.2f} s, judge {t['judge_s']:.2f} s, aligned {t['aligned_s']:.2f} s]")
