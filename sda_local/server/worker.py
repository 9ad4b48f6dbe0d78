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
from dataclasses import dataclass, field
from typing import Callable

from ..core import ControlVectors
from ..errors import PromptTooLongError, SdaError
from ..judges.spec import Judges
from ..palrs.cvec import control_vectors
from ..runtime.engine import Engine, Finished, TokenEvent
from ..runtime.text_prompts import text_pair, text_tokens
from ..turn import AlignedToken, PhaseDone, TurnPrompts, TurnSettings, TurnTrace, answer, steer_target, turn_prompts
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
        sda, eng = plan.sda, self.engine
        cv = self._apply_control(plan)
        if sda is None:
            return self._run_plain(plan, cancel, emit)
        settings = sda.turn_settings(plan.params)
        evaluator = self.judges.get(sda.judge)
        chat = plan.prompt is None and plan.prefill is None
        prompt = plan.messages if chat else text_turn_prompts(eng, plan, settings)
        events = answer(eng, evaluator, prompt, settings, base="always" if sda.return_base and chat else "auto",
                        extras=plan.extras)
        trace = TurnTrace()
        ans = self._stream(_aligned_answer(trace.watch(events)), plan, cancel, emit)
        if trace.decision is None:  # cancelled before λ was chosen
            return Result("cancelled", 0, 0)
        if ans.n_prompt is None and ans.finish == "stop":  # a stop sequence ended it before ``Finished`` came
            pr = prompt if not chat else turn_prompts(eng, plan.messages, settings)
            ans.n_prompt = [len(pr.with_instruction), len(pr.without)]
        return self._result(ans, self._diagnostics(plan, settings, trace, ans, evaluator, cv))

    def _run_plain(self, plan: RequestPlan, cancel: threading.Event, emit) -> Result:
        """Plain decoding (no ``sda``): a chat answer, a text completion or a prefill."""
        toks = plain_tokens(self.engine, plan)
        ans = self._stream(self.engine.generate_plain_tokens(toks, params=plan.params, extras=plan.extras), plan,
                           cancel, emit)
        ans.n_prompt = ans.n_prompt or [len(toks)]
        return self._result(ans, None)

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

    @staticmethod
    def _result(ans: _Answer, info: dict | None) -> Result:
        n_prompt = ans.n_prompt[0] if ans.n_prompt else 0
        finish = {"context": "length"}.get(ans.finish, ans.finish)
        return Result(finish, n_prompt, ans.n_tokens, info, "".join(ans.pieces), ans.logprobs)

    def _diagnostics(self, plan: RequestPlan, settings: TurnSettings, trace: TurnTrace, ans: _Answer, evaluator,
                     cv: str | None) -> dict:
        sda, d = plan.sda, trace.decision
        if plan.prompt is None and plan.prefill is None:
            settings = steer_target(plan.messages, settings)[1]  # (toward the system prompt: what that steers with)
        p = settings.params()
        for w in d.warnings:  # the operator's log keeps the whole text (the judge's URL); the client does not
            log.warning("evaluator %s: %s", evaluator.name, w)
        t = trace.timings()
        info = {"preset": settings.preset.name, "steer_toward": sda.steer_toward, "lam": round(d.lam, 6),
                "lam_source": d.source, "score": d.score_value, "evaluator": public_name(evaluator),
                "mapping": sda.mapping, "warnings": [public_text(w, evaluator) for w in d.warnings], "k": p.k,
                "t0": p.t0, "temperature_mode": p.temperature_mode, "contrast": p.contrast,
                "placement": settings.effective_placement,
                "mean_js": round(sum(ans.js) / len(ans.js), 6) if ans.js else None,
                "prompt_tokens_per_stream": ans.n_prompt, "control_vectors": cv,
                "timings": {"lambda_s": t["lambda_s"], "answer_s": t["aligned_s"]}}
        if trace.base is not None:
            info["base_tokens"] = trace.base.n_tokens
            if sda.return_base:
                info["base"] = trace.base.text
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


def _aligned_answer(events):
    """A turn's events as the streaming loop reads them: the aligned answer's ``TokenEvent``s and ``Finished``,
    and None for every other event (only its effect reaches the client, but a cancel must still be seen while
    the base answer runs)."""
    for ev in events:
        match ev:
            case AlignedToken(token=t):
                yield t
            case PhaseDone(phase="aligned", finished=f):
                yield f
            case _:
                yield None


def plain_tokens(engine: Engine, plan: RequestPlan) -> list[int]:
    """The prompt tokens of a plain (no ``sda``) answer: the raw text of a text completion, the conversation, or
    the conversation then the prefilled assistant message's own tokens."""
    if plan.prompt is not None:
        return text_tokens(engine.model, plan.prompt)
    tail = engine.model.tokenize(plan.prefill, special=False) if plan.prefill is not None else []
    return engine.prompt_tokens(plan.messages) + tail


def text_turn_prompts(engine: Engine, plan: RequestPlan, settings: TurnSettings) -> TurnPrompts:
    """The prompts an SDA text completion or prefill decodes (``settings`` gives the placement and contrast),
    checked to fit.  A prefill is the conversation up to the template's generation prompt, then the assistant
    message's own tokens (in every stream)."""
    preset = settings.preset
    if plan.prompt is not None:
        t_with, t_without = text_pair(engine.model, plan.prompt, preset.instruction, settings.effective_contrast,
                                      preset.opposite)
        pr = TurnPrompts(list(t_with), list(t_without))
    else:
        tail = engine.model.tokenize(plan.prefill, special=False)
        t_with, t_without = engine.prompter.pair(plan.messages, preset.instruction, settings.effective_placement,
                                                 settings.effective_contrast, preset.opposite)
        pr = TurnPrompts(t_with + tail, t_without + tail, engine.prompt_tokens(plan.messages) + tail)
    return pr.check_fits(engine)


def check_grammar(engine: Engine, plan: RequestPlan) -> None:
    """A 400 when llama.cpp cannot parse the grammar ``response_format`` became (before the request waits)."""
    if plan.grammar is None:
        return
    try:
        engine.check_grammar(plan.grammar)
    except SdaError as exc:
        raise ApiError(400, f"response_format: {exc}", "response_format", code="unsupported_schema") from None


def check_prompt_fits(engine: Engine, plan: RequestPlan) -> None:
    """A 400 with the token counts unless every prompt the request decodes (with the instruction, for SDA: the
    very prompts, built as the answer builds them) fits the context."""
    param = "messages" if plan.prompt is None else "prompt"
    try:
        if plan.sda is None:
            engine.check_fits(plain_tokens(engine, plan), "prompt" if plan.prompt is not None else "message")
        elif plan.prompt is not None or plan.prefill is not None:
            text_turn_prompts(engine, plan, plan.sda.turn_settings(plan.params))
        else:
            turn_prompts(engine, plan.messages, plan.sda.turn_settings(plan.params))
    except PromptTooLongError as exc:
        raise ApiError(400, f"the {exc.stream} is {exc.n_prompt} tokens but the context holds {exc.n_ctx} per "
                            f"stream (at least one more is needed to answer); shorten the {param}",
                       param, code="context_length_exceeded") from None
    except SdaError as exc:
        raise ApiError(400, str(exc), param) from None
