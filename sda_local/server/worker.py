"""Run one request's plan on the engine, in a thread of its own, and hand its events to the event loop.

Events (``emit``) are ``("token", text)``, then ``("done", Result)`` or ``("error", ApiError)``.  ``cancel``
(a client that went away) is checked before every token: the engine's generator is closed at once, which ends
the generation within one token, and only then is the slot given back (``on_exit``).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..core import ControlVectors
from ..runtime.engine import Engine, Finished, TokenEvent
from ..errors import SdaError
from ..judges.decision import LambdaDecision
from ..palrs.cvec import control_vectors
from ..turn import strip_think
from .errors import ApiError
from .lambdas import LambdaSources
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


@dataclass
class _Answer:
    """What the decode loop saw of one generation."""

    pieces: list[str] = field(default_factory=list)
    n_tokens: int = 0
    js: list[float] = field(default_factory=list)
    done: Finished | None = None
    finish: str = "length"


class Runner:
    """Owns what the requests share on one engine: the λ sources and the control vectors now applied."""

    def __init__(self, engine: Engine, sources: LambdaSources):
        self.engine = engine
        self.sources = sources
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
        sda, m = plan.sda, self.engine.model
        try:
            if sda.cv_streams == "aligned" and self.engine.variant != "contexts":
                raise SdaError("steering only the aligned stream needs the server's model in the 'contexts' layout "
                               "(start it with --cv-dir, or --variant contexts); or send cv_streams 'both'")
            cv = control_vectors(list(sda.control), scale=sda.cv_scale, layers=sda.cv_layers, streams=sda.cv_streams)
            cv.buffer(m.n_layer, m.n_embd)  # raises when they were made for another model
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
        if sda is None:
            ans = self._stream(self.engine.generate_plain(plan.messages, params=plan.params), plan, cancel, emit)
            return self._result(ans, None)
        base, decision = self._decide(plan, sda, cancel)
        if cancel.is_set():
            return Result("cancelled", 0, 0)
        t1 = time.perf_counter()
        gen = self.engine.generate(plan.messages, sda.preset.instruction, decision.lam, placement=sda.placement,
                                   params=plan.params)
        ans = self._stream(gen, plan, cancel, emit)
        info = self._diagnostics(plan, sda, decision, ans, base, cv)
        info["timings"] = {"lambda_s": round(t1 - t0, 3), "answer_s": round(time.perf_counter() - t1, 3)}
        return self._result(ans, info)

    def _decide(self, plan: RequestPlan, sda: SdaPlan, cancel: threading.Event
                ) -> tuple[_Answer | None, LambdaDecision]:
        """The λ decision, and the unsteered base answer when a judge reads it (or the client asked for it)."""
        src = sda.source
        decision = self.sources.fixed_decision(src, sda)
        base = None
        if decision is None or sda.return_base:
            # generate_base: the same tokens as generate_plain, with their log-probs kept for the self-score
            base = self._collect(self.engine.generate_base(plan.messages, params=plan.params), cancel)
        if decision is None and not cancel.is_set():
            query = plan.messages[-1]["content"]
            decision = self.sources.decide(src, sda, query, strip_think("".join(base.pieces)))
        return base, decision

    @staticmethod
    def _collect(gen, cancel: threading.Event) -> _Answer:
        ans = _Answer()
        try:
            for ev in gen:
                if cancel.is_set():
                    break
                if isinstance(ev, Finished):
                    ans.done, ans.finish = ev, ev.finish_reason
                    ans.pieces = [ev.text]
                else:
                    ans.n_tokens += 1
        finally:
            gen.close()
        return ans

    @staticmethod
    def _stream(gen, plan: RequestPlan, cancel: threading.Event, emit) -> _Answer:
        ans, stops = _Answer(), StopMatcher(plan.stops)
        try:
            for ev in gen:
                if cancel.is_set():
                    ans.finish = "cancelled"
                    break
                if isinstance(ev, TokenEvent):
                    ans.n_tokens += 1
                    if ev.js is not None:
                        ans.js.append(ev.js)
                    piece = stops.feed(ev.text)
                elif isinstance(ev, Finished):
                    ans.done, ans.finish = ev, ev.finish_reason
                    piece = stops.feed(ev.tail) + stops.flush()
                if piece:
                    ans.pieces.append(piece)
                    emit(("token", piece))
                if stops.stopped:
                    ans.finish = "stop"
                    break
        finally:
            gen.close()  # ends the engine's generation now and frees its lock
        return ans

    @staticmethod
    def _result(ans: _Answer, info: dict | None) -> Result:
        n_prompt = ans.done.n_prompt_tokens[0] if ans.done else 0
        finish = {"context": "length"}.get(ans.finish, ans.finish)
        return Result(finish, n_prompt, ans.n_tokens, info, "".join(ans.pieces))

    def _diagnostics(self, plan: RequestPlan, sda: SdaPlan, d: LambdaDecision, ans: _Answer,
                     base: _Answer | None, cv: str | None) -> dict:
        p = plan.params
        info = {"preset": sda.preset.name, "lam": round(d.lam, 6), "lam_source": d.source,
                "score": d.score_value, "evaluator": self.sources.name(sda.source), "mapping": sda.mapping,
                "warnings": list(d.warnings), "k": p.k, "t0": p.t0, "temperature_mode": p.temperature_mode,
                "placement": sda.placement,
                "mean_js": round(sum(ans.js) / len(ans.js), 6) if ans.js else None,
                "prompt_tokens_per_stream": ans.done.n_prompt_tokens if ans.done else None,
                "control_vectors": cv}
        if base is not None:
            info["base_tokens"] = base.n_tokens
            if sda.return_base:
                info["base"] = "".join(base.pieces)
        return info


def check_prompt_fits(engine: Engine, plan: RequestPlan) -> None:
    """A 400 with the token counts when the prompt (with the instruction, for SDA) does not fit the context."""
    try:
        if plan.sda is None:
            streams = {"prompt": engine.prompt_tokens(plan.messages)}
        else:
            a, b = engine.prompter.pair(plan.messages, plan.sda.preset.instruction, plan.sda.placement)
            streams = {"prompt with the instruction": a, "prompt": b}
    except SdaError as exc:
        raise ApiError(400, str(exc), "messages") from None
    for what, toks in streams.items():
        if len(toks) + 1 > engine.n_ctx:
            raise ApiError(400, f"the {what} is {len(toks)} tokens but the context holds {engine.n_ctx} per stream "
                                f"(at least one more is needed to answer); shorten the conversation",
                           "messages", code="context_length_exceeded")
