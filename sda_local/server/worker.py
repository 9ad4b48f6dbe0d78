"""Run one request's plan on the engine, in a thread of its own, and hand its events to the event loop.

Events (``emit``) are ``("token", text, logprob entries or None)``, then ``("done", Result)`` or ``("error", ApiError)``.  ``cancel``
(a client that went away) is checked before every token: the engine's generator is closed at once, which ends
the generation within one token, and only then is the slot given back (``on_exit``).
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..core import ControlVectors
from ..errors import PromptTooLongError, SdaError
from ..judges import LambdaDecision, decide_without_answer
from ..judges.spec import Judges
from ..palrs.cvec import control_vectors
from ..runtime.engine import Engine, Finished, TokenEvent
from ..runtime.text_prompts import text_pair, text_tokens
from ..turn import TurnSettings, answer, steer_target
from .errors import ApiError
from .logprobs import LogprobTrack
from .request import RequestPlan, SdaPlan
from .stops import StopMatcher

log = logging.getLogger("sda_local.server")
MAX_CACHED_VECTORS = 8


@dataclass
class Result:
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    sda: dict | None = None
    text: str = ""
    logprobs: list | None = None   # every token's entry (when asked for)


@dataclass
class _Answer:
    """What the decode loop saw of one generation."""

    pieces: list[str] = field(default_factory=list)
    n_tokens: int = 0
    n_prompt: list[int] | None = None  # each stream's prompt tokens (None: cancelled before they were known)
    js: list[float] = field(default_factory=list)
    done: Finished | None = None
    finish: str = "length"
    logprobs: list | None = None


class Runner:
    """Owns what the requests share on one engine: the evaluators (``Judges``) and the control vectors now
    applied."""

    def __init__(self, engine: Engine, judges: Judges):
        self.engine = engine
        self.judges = judges
        self._applied: tuple | None = None   # the control vectors on the engine now (None: none)
        self._cv_cache: dict[tuple, ControlVectors] = {}

    @staticmethod
    def _cv_key(sda: SdaPlan | None) -> tuple | None:
        return None if sda is None or not sda.control else (sda.control, sda.cv_scale, sda.cv_layers, sda.cv_streams)

    def prepare_control(self, plan: RequestPlan) -> None:
        """Read the request's control vectors and check they fit the model, before the request waits for the
        slot: a bad file is a 400 up front, never an error in the middle of a stream."""
        key = self._cv_key(plan.sda)
        if key is None or key in self._cv_cache:
            return
        sda = plan.sda
        try:
            cv = control_vectors(list(sda.control), scale=sda.cv_scale, layers=sda.cv_layers, streams=sda.cv_streams)
            self.engine.check_control(cv)
        except SdaError as exc:
            raise ApiError(400, f"sda.control_vectors: {exc}", "sda.control_vectors") from None
        if len(self._cv_cache) >= MAX_CACHED_VECTORS:
            self._cv_cache.pop(next(iter(self._cv_cache)))
        self._cv_cache[key] = cv

    def _apply_control(self, plan: RequestPlan) -> str | None:
        """Put the request's control vectors (or none) on the engine; their description."""
        key = self._cv_key(plan.sda)
        if key != self._applied:
            if key is not None and key not in self._cv_cache:
                self.prepare_control(plan)  # evicted since it was checked: read again
            self._applied = None  # unknown until set_control succeeds
            self.engine.set_control(None if key is None else self._cv_cache[key])
            self._applied = key
        return self.engine.control.description if key is not None and self.engine.control else None

    def run(self, plan: RequestPlan, cancel: threading.Event, emit: Callable[[tuple], None]) -> None:
        try:
            emit(("done", self._run(plan, cancel, emit)))
        except ApiError as exc:
            emit(("error", exc))
        except SdaError as exc:
            emit(("error", ApiError(400, str(exc))))
        except Exception as exc:  # a bug or a llama.cpp failure: logged here, a plain 500 for the client
            log.exception("generation failed")
            emit(("error", ApiError(500, f"the generation failed ({type(exc).__name__}); see the server log")))

    def _run(self, plan: RequestPlan, cancel: threading.Event, emit) -> Result:
        t0 = time.perf_counter()
        sda = plan.sda
        cv = self._apply_control(plan)
        if plan.prompt is not None or plan.prefill is not None:
            return self._run_text(plan, cancel, emit, cv)
        if sda is None:
            gen = self.engine.generate_plain(plan.messages, params=plan.params, extras=plan.extras)
            ans = self._stream(gen, plan, cancel, emit)
            self._count_prompt(ans, plan, None)
            return self._result(ans, None)
        settings = sda.turn_settings(plan.params)
        evaluator = self.judges.get(sda.judge)
        events = answer(self.engine, evaluator, plan.messages, settings, base="always" if sda.return_base else "auto",
                        extras=plan.extras)
        turn = _TurnSeen(t0)
        ans = self._stream(turn.filter(events), plan, cancel, emit)
        if turn.decision is None:  # cancelled before λ was chosen
            return Result("cancelled", 0, 0)
        self._count_prompt(ans, plan, settings)
        info = self._diagnostics(plan, settings, turn, ans, evaluator, cv)
        info["timings"] = {"lambda_s": round(turn.t_lambda - t0, 3),
                           "answer_s": round(time.perf_counter() - turn.t_lambda, 3)}
        return self._result(ans, info)

    def _run_text(self, plan: RequestPlan, cancel: threading.Event, emit, cv: str | None) -> Result:
        """A text completion (the raw prompt continued) or a prefill (the final assistant message continued),
        plain or SDA with a λ that needs no judge."""
        eng, sda = self.engine, plan.sda
        if sda is None:
            (toks,) = prompt_tokens(eng, plan)
            ans = self._stream(eng.generate_plain_tokens(toks, params=plan.params, extras=plan.extras), plan, cancel,
                               emit)
            ans.n_prompt = ans.n_prompt or [len(toks)]
            return self._result(ans, None)
        settings = sda.turn_settings(plan.params)
        evaluator = self.judges.get(sda.judge)
        decision = decide_without_answer(evaluator, sda.preset, sda.mapping)
        if decision is None:  # (refused when the request was read; a judge's λ needs a chat answer)
            raise ApiError(400, "this λ source needs a chat answer to rate", "sda.evaluator")
        ta, tb = prompt_tokens(eng, plan, settings)
        gen = eng.generate_tokens(ta, tb, sda.preset.instruction, decision.lam, params=settings.params(),
                                  extras=plan.extras)
        ans = self._stream(gen, plan, cancel, emit)
        ans.n_prompt = ans.n_prompt or [len(ta), len(tb)]
        p = settings.params()
        info = {"preset": sda.preset.name, "lam": round(decision.lam, 6), "lam_source": decision.source,
                "score": decision.score_value, "evaluator": public_name(evaluator), "k": p.k, "t0": p.t0,
                "temperature_mode": p.temperature_mode, "contrast": p.contrast,
                "mean_js": round(sum(ans.js) / len(ans.js), 6) if ans.js else None,
                "prompt_tokens_per_stream": ans.n_prompt, "control_vectors": cv}
        return self._result(ans, info)

    @staticmethod
    def _stream(gen, plan: RequestPlan, cancel: threading.Event, emit) -> _Answer:
        ans, stops = _Answer(), StopMatcher(plan.stops)
        track = LogprobTrack() if plan.logprobs is not None else None
        if track is not None:
            ans.logprobs = []
        try:
            for ev in gen:
                if cancel.is_set():
                    ans.finish = "cancelled"
                    break
                if isinstance(ev, TokenEvent):
                    ans.n_tokens += 1
                    if ev.js is not None:
                        ans.js.append(ev.js)
                    if track is not None:
                        track.token(ev.logprobs, ev.text)
                    piece = stops.feed(ev.text)
                elif isinstance(ev, Finished):
                    ans.done, ans.finish, ans.n_prompt = ev, ev.finish_reason, list(ev.n_prompt_tokens)
                    if track is not None:
                        track.token(None, ev.tail)
                    piece = stops.feed(ev.tail) + stops.flush()
                else:
                    continue
                entries = None
                if track is not None:
                    entries = track.sent(piece) + (track.rest() if ans.done is not None and not stops.stopped else [])
                    ans.logprobs.extend(entries)
                if piece or entries:
                    ans.pieces.append(piece)
                    emit(("token", piece, entries or None))
                if stops.stopped:
                    ans.finish = "stop"
                    break
        finally:
            gen.close()  # ends the engine's generation now and frees its lock
        return ans

    def _count_prompt(self, ans: _Answer, plan: RequestPlan, settings: TurnSettings | None) -> None:
        """Each stream's prompt tokens when a stop sequence ended the answer before the engine's ``Finished``
        (which carries them) came: the same prompts, built again (no model call)."""
        if ans.n_prompt is not None or ans.finish != "stop":
            return
        if settings is None:
            ans.n_prompt = [len(self.engine.prompt_tokens(plan.messages))]
            return
        msgs, settings = steer_target(plan.messages, settings)
        preset = settings.preset
        ta, tb = self.engine.prompter.pair(msgs, preset.instruction, settings.effective_placement,
                                           settings.effective_contrast, preset.opposite)
        ans.n_prompt = [len(ta), len(tb)]

    @staticmethod
    def _result(ans: _Answer, info: dict | None) -> Result:
        n_prompt = ans.n_prompt[0] if ans.n_prompt else 0
        finish = {"context": "length"}.get(ans.finish, ans.finish)
        return Result(finish, n_prompt, ans.n_tokens, info, "".join(ans.pieces), ans.logprobs)

    def _diagnostics(self, plan: RequestPlan, settings: TurnSettings, turn: "_TurnSeen", ans: _Answer, evaluator,
                     cv: str | None) -> dict:
        sda, d = plan.sda, turn.decision
        settings = steer_target(plan.messages, settings)[1]  # (toward the system prompt: what that steers with)
        p = settings.params()
        for w in d.warnings:  # the operator's log keeps the whole text (the judge's URL); the client does not
            log.warning("evaluator %s: %s", evaluator.name, w)
        info = {"preset": settings.preset.name, "steer_toward": sda.steer_toward, "lam": round(d.lam, 6), "lam_source": d.source,
                "score": d.score_value, "evaluator": public_name(evaluator), "mapping": sda.mapping,
                "warnings": [public_text(w, evaluator) for w in d.warnings], "k": p.k, "t0": p.t0,
                "temperature_mode": p.temperature_mode, "contrast": p.contrast,
                "placement": settings.effective_placement, "mean_js": round(sum(ans.js) / len(ans.js), 6) if ans.js else None,
                "prompt_tokens_per_stream": ans.n_prompt, "control_vectors": cv}
        if turn.base is not None:
            info["base_tokens"] = turn.base.n_tokens
            if sda.return_base:
                info["base"] = turn.base.text
        return info


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def public_name(evaluator) -> str:
    """An evaluator's name as a client sees it: its kind and model ("openai:gpt-4o-mini"), never where the
    judge runs (an OpenAI-compatible judge's name ends with "@" and its endpoint)."""
    return evaluator.name.split("@", 1)[0]


def public_text(text: str, evaluator) -> str:
    """A warning without the judge's endpoint: the evaluator's name as ``public_name``, any URL left out."""
    if evaluator.name in text:
        text = text.replace(evaluator.name, public_name(evaluator))
    for url in {getattr(evaluator, "base_url", None), os.environ.get("OPENAI_BASE_URL")} - {None, ""}:
        text = text.replace(url, "the judge's endpoint")
    return _URL.sub("the judge's endpoint", text)


class _TurnSeen:
    """Watches a turn's events: keeps the base answer and the λ decision, passes the aligned answer's token
    events (``TokenEvent`` / ``Finished``) on to the streaming loop."""

    def __init__(self, t0: float):
        self.base: Finished | None = None
        self.decision: LambdaDecision | None = None
        self.t_lambda = t0

    def filter(self, events):
        try:
            for ev in events:
                if ev.kind == "phase_done" and ev.phase == "base":
                    self.base = ev.finished
                elif ev.kind == "lambda":
                    self.decision, self.t_lambda = ev.decision, time.perf_counter()
                elif ev.kind in ("aligned_token", "phase_done"):
                    yield ev.token if ev.kind == "aligned_token" else ev.finished
                else:  # base tokens, score, warnings: only their effect reaches the client; but a cancel must
                    yield None  # still be seen while the base answer runs
        finally:
            events.close()


def prompt_tokens(engine: Engine, plan: RequestPlan, settings: TurnSettings | None = None) -> list[list[int]]:
    """The prompt tokens of a text completion or a prefill: one list for plain decoding, (with, without) for SDA
    (``settings`` then gives the placement and contrast).  A prefill is the conversation up to the template's
    generation prompt, then the assistant message's own tokens."""
    sda = plan.sda
    if plan.prompt is not None:
        if sda is None:
            return [text_tokens(engine.model, plan.prompt)]
        contrast = settings.effective_contrast if settings else "auto"
        return list(text_pair(engine.model, plan.prompt, sda.preset.instruction, contrast, sda.preset.opposite))
    tail = engine.model.tokenize(plan.prefill, special=False)
    if sda is None:
        return [engine.prompt_tokens(plan.messages) + tail]
    placement = settings.effective_placement if settings else sda.placement
    contrast = settings.effective_contrast if settings else "auto"
    pair = engine.prompter.pair(plan.messages, sda.preset.instruction, placement, contrast, sda.preset.opposite)
    return [toks + tail for toks in pair]


def check_grammar(engine: Engine, plan: RequestPlan) -> None:
    """A 400 when llama.cpp cannot parse the grammar ``response_format`` became (before the request waits)."""
    if plan.grammar is None:
        return
    try:
        engine.check_grammar(plan.grammar)
    except SdaError as exc:
        raise ApiError(400, f"response_format: {exc}", "response_format", code="unsupported_schema") from None


def check_prompt_fits(engine: Engine, plan: RequestPlan) -> None:
    """A 400 with the token counts when the prompt (with the instruction, for SDA) does not fit the context."""
    param = "messages" if plan.prompt is None else "prompt"
    try:
        if plan.prompt is not None or plan.prefill is not None:
            for toks in prompt_tokens(engine, plan):
                engine.check_tokens(toks)
            return
        if plan.sda is not None:
            msgs, s = steer_target(plan.messages, plan.sda.turn_settings(plan.params))
            engine.check_prompt(msgs, s.preset.instruction, s.effective_placement, s.effective_contrast,
                                s.preset.opposite)
        engine.check_prompt(plan.messages)
    except PromptTooLongError as exc:
        raise ApiError(400, f"the {exc.stream} is {exc.n_prompt} tokens but the context holds {exc.n_ctx} per "
                            f"stream (at least one more is needed to answer); shorten the {param}",
                       param, code="context_length_exceeded") from None
    except SdaError as exc:
        raise ApiError(400, str(exc), param) from None
