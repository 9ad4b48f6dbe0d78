"""One SDA chat turn as a stream of typed events: base answer → λ decision → aligned answer.

    session = ChatSession(engine, evaluator, TurnSettings(preset=get_preset("harmlessness")))
    for ev in session.send("How do I pick a lock?"):
        ...   # BaseToken*, PhaseDone(base), [Scored], EvaluatorWarning*, LambdaChosen, AlignedToken*,
              # PhaseDone(aligned), TurnDone

λ comes from ``lambda_choice.decide_lambda`` (the one λ decision).  The history (``messages()``) holds the
aligned answers of the turns that did not fail.  The last turn's base answer and λ decision are kept, so
``regenerate()`` resamples only the aligned answer.  An evaluator failure never ends the turn: it becomes an
``EvaluatorWarning`` and the fallback λ is used.  A stopped turn keeps its partial answer
(``finish_reason`` "stopped"); an engine error in the aligned answer is recorded (``finish_reason`` "error",
the message in ``warnings``), kept out of the history, and raised.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Iterator

from . import core
from .core import Option, SamplingParams
from .runtime.engine import Engine, Finished, TokenEvent
from .errors import PromptTooLongError, SdaError
from .judges import Evaluator, Score
from .judges.decision import LambdaDecision, decide_lambda
from .presets import DEFAULT_PRESET, Preset, get_preset
from .runtime.prompts import PLACEMENTS

_THINK = re.compile(r"^\s*<think>.*?(</think>|$)\s*", re.S)


def strip_think(text: str) -> str:
    """Drop a leading ``<think>…</think>`` block (reasoning models) from an answer."""
    return _THINK.sub("", text, count=1)


def _turn_opt(default, **kw):
    return field(default=default, metadata={"option": Option(**kw)})


@dataclass
class TurnSettings:
    """Everything that shapes one turn (exported with each turn): the preset, how tokens are drawn
    (``sampling``, the one ``SamplingParams``), and how λ and the prompts are chosen.  The fields after
    ``sampling`` carry an ``Option`` (help, choices/range) like ``SamplingParams``'s, for the CLI and the chat."""

    preset: Preset = field(default_factory=lambda: get_preset(DEFAULT_PRESET))
    sampling: SamplingParams = field(default_factory=SamplingParams)
    mapping: str = _turn_opt("sigmoid", help="how the evaluator's 1–100 score becomes λ",
                             choices=tuple(core.LAMBDA_MAPPINGS))
    fallback_lam: float = _turn_opt(0.5, help="λ used when the evaluator fails (a warning says so)",
                                    lo=0.0, hi=1.0, step=0.05)
    placement: str = _turn_opt("auto", help="where the instruction goes in the instructed stream: appended to the "
                                            "user turn, a system message, matched system lines in both streams, or "
                                            "auto = the preset's own choice (presets.toml; user when it has none)",
                               choices=("auto", *PLACEMENTS))
    system_prompt: str = _turn_opt("", help="a system message for both streams")

    @property
    def effective_placement(self) -> str:
        """The placement the prompts are built with ("auto" resolved through the preset)."""
        return resolve_placement(self.placement, self.preset)

    def params(self, seed_offset: int = 0) -> SamplingParams:
        """The sampling settings for one answer (``seed_offset`` draws a fresh, reproducible sample)."""
        return self.sampling.with_seed_offset(seed_offset)

    def check(self) -> "TurnSettings":
        try:
            for name, _, _, opt in turn_options():
                if opt.choices is not None or opt.lo is not None:  # (system_prompt is free text)
                    opt.check(name, getattr(self, name))
            self.sampling.check()
        except ValueError as exc:
            raise SdaError(f"invalid setting: {exc}") from None
        return self

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("preset", "sampling")}
        d["preset"] = {"name": self.preset.name, "instruction": self.preset.instruction, "rubric": self.preset.rubric}
        d["sampling"] = self.sampling.to_dict()
        return d


def resolve_placement(placement: str, preset: Preset) -> str:
    """``placement``, or for "auto" the preset's own (measured per preset on the dev splits), else "user"."""
    if placement != "auto":
        return placement
    return preset.placement if preset.placement in PLACEMENTS else "user"


def turn_options() -> list[tuple[str, type | str, object, Option]]:
    """(name, type, default, Option) of the ``TurnSettings`` fields that carry an ``Option``."""
    return [(f.name, f.type, f.default, f.metadata["option"]) for f in fields(TurnSettings) if "option" in f.metadata]


# -- events --------------------------------------------------------------------------------------------------
@dataclass
class BaseToken:
    token: TokenEvent
    kind: str = "base_token"


@dataclass
class AlignedToken:
    token: TokenEvent
    kind: str = "aligned_token"


@dataclass
class PhaseDone:
    phase: str  # "base" | "aligned"
    finished: Finished
    kind: str = "phase_done"


@dataclass
class Scored:
    score: Score
    kind: str = "score"


@dataclass
class EvaluatorWarning:
    message: str
    lam: float         # the λ the turn goes on with (the fallback λ when the evaluator failed)
    kind: str = "warning"


@dataclass
class LambdaChosen:
    lam: float
    source: str        # "score" | "fixed" | "fallback" (lambda_choice.LAMBDA_SOURCES)
    score: int | None
    mapping: str
    kind: str = "lambda"


@dataclass
class TurnDone:
    turn: "TurnRecord"
    kind: str = "done"


@dataclass
class TurnRecord:
    """One finished turn, as kept in the session and exported."""

    user: str
    base: str
    aligned: str
    score: dict | None
    lam: float
    lam_source: str
    evaluator: str
    warnings: list[str]
    settings: dict
    timings: dict
    aligned_tokens: list[dict] = field(default_factory=list)  # per-token diagnostics (text, js, T, p; top lists)
    finish_reason: str = ""   # the engine's ("stop", "length", "context"), or "stopped" / "error"
    regenerations: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _BaseAndLambda:
    """A turn's base answer and λ decision: what ``regenerate()`` reuses."""

    base: str
    base_done: Finished
    decision: LambdaDecision
    regenerations: int = 0


@dataclass
class _Aligned:
    """The aligned answer as it streams: enough to record the turn however it ends."""

    t_start: float
    t_aligned: float
    tokens: list[dict] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    done: Finished | None = None
    finish: str = "stopped"
    error: str | None = None
    ttft: float | None = None


class ChatSession:
    """A multi-turn conversation with SDA on one engine and one evaluator."""

    def __init__(self, engine: Engine, evaluator: Evaluator, settings: TurnSettings | None = None, *,
                 inspect: int = 0):
        self.engine = engine
        self.evaluator = evaluator
        self.settings = (settings or TurnSettings()).check()
        self.inspect = inspect  # k > 0: each aligned token records its step's top-k lists (the chat's inspector)
        self.turns: list[TurnRecord] = []
        self._last: _BaseAndLambda | None = None  # belongs to turns[-1]

    # -- history ---------------------------------------------------------------------------------------------
    def messages(self, upto: int | None = None) -> list[dict]:
        """The conversation as sent with the next prompt: the aligned answers of the turns that did not fail."""
        turns = self.turns if upto is None else self.turns[:upto]
        msgs = [{"role": "system", "content": self.settings.system_prompt}] if self.settings.system_prompt else []
        for t in turns:
            if t.finish_reason != "error":
                msgs += [{"role": "user", "content": t.user}, {"role": "assistant", "content": t.aligned}]
        return msgs

    def clear(self) -> None:
        self.turns.clear()
        self._last = None

    # -- turns -----------------------------------------------------------------------------------------------
    def send(self, text: str, settings: TurnSettings | None = None) -> Iterator:
        """Run one full turn.  Raises ``SdaError`` (before any event) for an empty or too-long message."""
        if settings is not None:
            self.settings = settings.check()
        text = (text or "").strip()
        if not text:
            raise SdaError("the message is empty")
        msgs = self.messages() + [{"role": "user", "content": text}]
        s = self.settings
        # refuse a prompt that cannot fit before anything runs, with the token counts
        for what, instr in (("message with the instruction", s.preset.instruction), ("message", "")):
            n = len(self.engine.prompt_tokens(msgs, instr, s.effective_placement))
            if n + 1 > self.engine.n_ctx:
                raise PromptTooLongError(n, self.engine.n_ctx, what)
        return self._send(msgs, text)

    def regenerate(self, settings: TurnSettings | None = None) -> Iterator:
        """Resample the last turn's aligned answer, reusing its base answer and λ decision."""
        if not self.turns or self._last is None:
            raise SdaError("nothing to regenerate yet")
        if settings is not None:
            self.settings = settings.check()
        return self._regenerate()

    def _send(self, msgs: list[dict], text: str) -> Iterator:
        s = self.settings
        t_start = time.perf_counter()
        base_done = None
        for ev in self.engine.generate_base(msgs, params=s.params()):  # records its log-probs (self-score)
            if isinstance(ev, Finished):
                base_done = ev
                yield PhaseDone("base", ev)
            else:
                yield BaseToken(ev)
        base_s = time.perf_counter() - t_start
        base = strip_think(base_done.text)
        decision = decide_lambda(self.evaluator, text, base, s.preset, s.mapping, s.fallback_lam)
        yield from self._decision_events(decision, with_warnings=True)
        last = _BaseAndLambda(base, base_done, decision)
        yield from self._aligned(msgs, text, last, t_start, base_s, regenerate=False)

    def _regenerate(self) -> Iterator:
        last = self.turns.pop()
        n_kept = len(self.turns)
        self._last.regenerations = last.regenerations + 1
        msgs = self.messages() + [{"role": "user", "content": last.user}]
        completed = False
        try:
            yield from self._decision_events(self._last.decision, with_warnings=False)
            yield from self._aligned(msgs, last.user, self._last, time.perf_counter(), 0.0, regenerate=True)
            completed = True
        finally:
            if not completed and len(self.turns) == n_kept:
                self.turns.append(last)  # stopped before a new answer was recorded: keep the previous one

    def _decision_events(self, d: LambdaDecision, with_warnings: bool) -> Iterator:
        if d.score is not None:
            yield Scored(d.score)
        if with_warnings:
            for w in d.warnings:
                yield EvaluatorWarning(w, d.lam)
        yield LambdaChosen(d.lam, d.source, d.score_value, self.settings.mapping)

    def _aligned(self, msgs: list[dict], user_text: str, last: _BaseAndLambda, t_start: float, base_s: float,
                 regenerate: bool) -> Iterator:
        s = self.settings
        regen = last.regenerations if regenerate else 0
        a = _Aligned(t_start, time.perf_counter())
        gen = self.engine.generate(msgs, s.preset.instruction, last.decision.lam, placement=s.effective_placement,
                                   params=s.params(seed_offset=regen), inspect=self.inspect)
        try:
            for ev in gen:
                if isinstance(ev, Finished):
                    a.done, a.finish = ev, ev.finish_reason
                    yield PhaseDone("aligned", ev)
                else:
                    if a.ttft is None:
                        a.ttft = time.perf_counter() - t_start
                    a.pieces.append(ev.text)
                    a.tokens.append({"i": ev.index, "text": ev.text, "token_id": ev.token_id, "js": ev.js,
                                     "temperature": ev.temperature, "prob": ev.prob,
                                     **({"top": ev.top} if ev.top is not None else {})})
                    yield AlignedToken(ev)
        except Exception as exc:  # the engine failed mid-answer: record it as an error, then raise
            a.finish, a.error = "error", f"the answer stopped with an error: {exc}"
            raise
        finally:
            gen.close()
            # a stopped turn (closed generator) keeps what was generated so far: the UI's stop button
            record = self._record(user_text, last, a, base_s, regenerate)
            self.turns.append(record)
            self._last = last
        yield TurnDone(record)

    def _record(self, user_text: str, last: _BaseAndLambda, a: _Aligned, base_s: float,
                regenerate: bool) -> TurnRecord:
        d, base_done = last.decision, last.base_done
        text = a.done.text if a.done else "".join(a.pieces)
        t_end = time.perf_counter()
        aligned_s = t_end - a.t_aligned
        n_aligned = a.done.n_tokens if a.done else len(a.tokens)
        timings = {"base_s": round(base_s, 3), "judge_s": round(d.seconds, 3), "aligned_s": round(aligned_s, 3),
                   "total_s": round(t_end - a.t_start, 3),
                   "first_aligned_token_s": None if a.ttft is None else round(a.ttft, 3),
                   "base_tokens": base_done.n_tokens,
                   "base_tokens_per_s": None if regenerate else round(base_done.tokens_per_second, 2),
                   "aligned_tokens": n_aligned,
                   "aligned_tokens_per_s": round(a.done.tokens_per_second, 2) if a.done else
                   round(n_aligned / aligned_s, 2) if aligned_s > 0 else 0.0}
        warnings = list(d.warnings) + ([a.error] if a.error else [])
        return TurnRecord(user=user_text, base=last.base, aligned=strip_think(text),
                          score=d.score.to_dict() if d.score else None, lam=d.lam, lam_source=d.source,
                          evaluator=self.evaluator.name, warnings=warnings, settings=self.settings.to_dict(),
                          timings=timings, aligned_tokens=a.tokens, finish_reason=a.finish,
                          regenerations=last.regenerations if regenerate else 0)

    # -- export / import -------------------------------------------------------------------------------------
    def export(self) -> dict:
        return {"format": "sda-local-chat/1", "model": self.engine.name, "evaluator": self.evaluator.name,
                "settings": self.settings.to_dict(), "turns": [t.to_dict() for t in self.turns],
                "messages": self.messages()}

    def load(self, data: dict) -> None:
        """Restore turns from ``export()`` output (the history; a regenerate needs a new turn first)."""
        if not isinstance(data, dict) or data.get("format") != "sda-local-chat/1":
            raise SdaError("not an sda-local chat export (format 'sda-local-chat/1' expected)")
        turns = []
        try:
            for t in data["turns"]:
                turns.append(TurnRecord(**{k: t[k] for k in TurnRecord.__dataclass_fields__ if k in t}))
        except (KeyError, TypeError) as exc:
            raise SdaError(f"the chat export is damaged: {exc}") from None
        self.turns = turns
        self._last = None
