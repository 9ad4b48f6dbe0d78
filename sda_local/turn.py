"""One SDA turn, the seam every front end calls: base answer (when something reads it) → λ → aligned answer.

    for ev in answer(engine, evaluator, messages, TurnSettings(preset=get_preset("harmlessness"))):
        ...   # [BaseToken*, PhaseDone(base)], [Scored], EvaluatorWarning*, LambdaChosen, AlignedToken*,
              # PhaseDone(aligned)

When λ does not read the base answer (a preset's or a fixed λ) and the base answer is still wanted (the chat
shows it), both answers are decoded in one batch: the λ events come first, then the two answers' tokens
interleaved, each ``PhaseDone`` when its answer ends (``Engine.generate_pair``; ``together=False`` keeps the
order above).

The chat (``session.ChatSession``, which adds history and regenerate), ``sda-local generate``, the server and
every generation eval call ``answer``; none builds a turn of its own.  λ comes from ``judges.decide_lambda``
(the one λ decision): a judge rates the base answer, whose record (prompt, tokens, log-probs) travels in its
``PhaseDone`` event and is handed to the judge explicitly (``BaseAnswer``).  An evaluator failure never ends
the turn: it becomes an ``EvaluatorWarning`` and the fallback λ is used.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Iterator, Sequence

from . import core
from .core import Option, SamplingParams
from .errors import SdaError
from .judges import (
    BaseAnswer,
    Evaluator,
    LambdaDecision,
    Score,
    decide_lambda,
    decide_without_answer,
)
from .presets import DEFAULT_PRESET, Preset, custom_preset, get_preset
from .runtime.engine import Engine, Finished, TokenEvent
from .runtime.prompts import PLACEMENTS

STEER_TARGETS = ("preset", "system")
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
    system_prompt: str = _turn_opt("", help="a system message for both streams (unless steered toward: steer_toward)")
    steer_toward: str = _turn_opt("preset", help="what the aligned answer is steered toward: the preset (or your own "
                                                 "instruction), or the conversation's system message (system: it "
                                                 "becomes the instruction, steered with the custom-instruction "
                                                 "settings; the stream without it gets the contrast in its place, "
                                                 "never the same message)", choices=STEER_TARGETS)

    @property
    def effective_placement(self) -> str:
        """The placement the prompts are built with ("auto" resolved through the preset)."""
        return resolve_placement(self.placement, self.preset)

    @property
    def effective_contrast(self) -> str:
        """What the uninstructed stream gets (``sampling.contrast``, "auto" resolved through the preset)."""
        return resolve_contrast(self.sampling.contrast, self.preset)

    def messages(self, user: str | None, history: Sequence[dict] = ()) -> list[dict]:
        """The conversation a turn answers: the system prompt (when set), the history, the user's message (None:
        the conversation so far)."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return system + [dict(m) for m in history] + ([] if user is None else [{"role": "user", "content": user}])

    def params(self, seed_offset: int = 0) -> SamplingParams:
        """The sampling settings for one answer (``seed_offset`` draws a fresh, reproducible sample; the contrast
        resolved through the preset)."""
        p = self.sampling.with_seed_offset(seed_offset)
        c = self.effective_contrast
        return p if c == p.contrast else replace(p, contrast=c)

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


def resolve_contrast(contrast: str, preset: Preset) -> str:
    """``contrast``, or for "auto" the preset's own (presets.toml), else "auto" (the placement's own)."""
    if contrast != "auto":
        return contrast
    return preset.contrast if preset.contrast in core.CONTRASTS else "auto"


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
    source: str        # "score" | "fixed" | "fallback" (judges.decision.LAMBDA_SOURCES)
    score: int | None
    mapping: str
    decision: LambdaDecision | None = None  # the whole decision (warnings, judge latency), to reuse it
    kind: str = "lambda"




BASE_CHOICES = ("auto", "always", "never")


def steer_target(msgs: list[dict], settings: TurnSettings) -> tuple[list[dict], TurnSettings]:
    """(the conversation both SDA streams share, the settings that steer it).  With ``steer_toward="system"`` the
    conversation's first system message is taken out and becomes the instruction (a custom instruction, in the
    system placement, so the instructed stream sees the conversation exactly as written and the other stream
    the contrast in its place: with "none", no system message, i.e. the chat template's default); otherwise the
    conversation and settings as they are."""
    if settings.steer_toward != "system":
        return msgs, settings
    at = next((i for i, m in enumerate(msgs) if m.get("role") == "system"), None)
    if at is None or not str(msgs[at].get("content") or "").strip():
        raise SdaError("steering toward the system prompt needs one: give a system message (--system TEXT, the "
                       "chat's system prompt, or a system message in the request)")
    preset = custom_preset(msgs[at]["content"], settings.preset.rubric, name="system prompt")
    return msgs[:at] + msgs[at + 1:], replace(settings, preset=preset, placement="system")


def answer(engine: Engine, evaluator: Evaluator, messages: Sequence[dict], settings: TurnSettings, *,
           base: str = "auto", decision: LambdaDecision | None = None, seed_offset: int = 0,
           inspect: int = 0, extras=None, together: bool = True) -> Iterator:
    """One turn on ``messages`` (ending with the user's message) as events (module docstring).

    ``base``: "auto" generates the unsteered answer only when the λ decision reads it (a judge); "always" also
    when λ is fixed (to show or compare it); "never" refuses a judge that would need it.  ``decision``: a λ
    decision already made (a regenerated answer, or the same decision under another placement): no judge runs.
    ``seed_offset`` moves the aligned answer's seed (a fresh, reproducible draw); ``inspect=k`` records each
    aligned step's top-k lists; ``extras`` (``runtime.logprobs.DecodeExtras``: log-probs, a grammar) applies to
    the aligned answer.  ``together``: when λ does not read the base answer and one is wanted, decode both answers
    at once (``Engine.generate_pair``, where the engine can): the λ events come first, then both answers' tokens
    interleaved, each answer's ``PhaseDone`` when it ends; False keeps the base answer first, the engine free at
    its ``PhaseDone`` (a consumer may use it in between).  Raises (before the first event) ``SdaError`` for bad settings or messages and
    ``PromptTooLongError`` when a stream's prompt does not fit."""
    if base not in BASE_CHOICES:
        raise ValueError(f"base must be one of {BASE_CHOICES}, got {base!r}")
    msgs = [dict(m) for m in messages]
    if not msgs or msgs[-1].get("role") != "user":
        raise SdaError("a turn answers a user message: the conversation must end with one")
    settings.check()
    steer_msgs, settings = steer_target(msgs, settings)
    engine.check_prompt(steer_msgs, settings.preset.instruction, settings.effective_placement,
                        settings.effective_contrast, settings.preset.opposite)
    if steer_msgs is not msgs:
        engine.check_prompt(msgs)
    fresh = decision is None
    if fresh:
        decision = decide_without_answer(evaluator, settings.preset, settings.mapping)
    if decision is None and base == "never":
        raise SdaError(f"evaluator {evaluator.name} rates the base answer, so the turn needs one")
    want_base = decision is None or base == "always"
    convo = _Convo(msgs, steer_msgs)
    if want_base and decision is not None and together and engine.can_pair:
        return _paired_turn(engine, convo, settings, decision, fresh, seed_offset, inspect, extras)
    return _turn(engine, evaluator, convo, settings, want_base, decision, fresh, seed_offset, inspect, extras)


@dataclass(frozen=True)
class _Convo:
    """A turn's conversation as the base answer sees it (``msgs``, as written) and as the SDA streams share it
    (``steer``: the same, but for the system message taken out when it is what they steer toward)."""

    msgs: list[dict]
    steer: list[dict]


def _turn(engine: Engine, evaluator: Evaluator, convo: _Convo, s: TurnSettings, want_base: bool,
          decision: LambdaDecision | None, fresh: bool, seed_offset: int, inspect: int, extras=None) -> Iterator:
    base_done, msgs = None, convo.msgs
    if want_base:
        for ev in engine.generate_plain(msgs, params=s.params(), record=True):
            if isinstance(ev, Finished):
                base_done = ev
            else:
                yield BaseToken(ev)
        yield PhaseDone("base", base_done)  # the engine is free again here: a consumer may use it in between
    if decision is None:
        decision = decide_lambda(evaluator, msgs[-1]["content"], strip_think(base_done.text), s.preset, s.mapping,
                                 s.fallback_lam, base=BaseAnswer(convo.steer, engine, base_done.record))
    yield from decision_events(decision, s.mapping, warnings=fresh)
    for ev in engine.generate(convo.steer, s.preset.instruction, decision.lam, placement=s.effective_placement,
                              params=s.params(seed_offset), inspect=inspect, opposite=s.preset.opposite,
                              extras=extras):
        yield PhaseDone("aligned", ev) if isinstance(ev, Finished) else AlignedToken(ev)


def _paired_turn(engine: Engine, convo: _Convo, s: TurnSettings, decision: LambdaDecision, fresh: bool,
                 seed_offset: int, inspect: int, extras=None) -> Iterator:
    """A turn whose λ is known before the base answer: both answers in one batch (``Engine.generate_pair``)."""
    yield from decision_events(decision, s.mapping, warnings=fresh)
    for who, ev in engine.generate_pair(convo.steer, s.preset.instruction, decision.lam,
                                        placement=s.effective_placement, params=s.params(seed_offset),
                                        base_params=s.params(), inspect=inspect, opposite=s.preset.opposite,
                                        extras=extras, record_base=True, base_messages=convo.msgs):
        if isinstance(ev, Finished):
            yield PhaseDone(who, ev)
        else:
            yield BaseToken(ev) if who == "base" else AlignedToken(ev)


def decision_events(d: LambdaDecision, mapping: str, warnings: bool = True) -> Iterator:
    """The events of a λ decision: its score, its warnings (once, when it was made), then the λ."""
    if d.score is not None:
        yield Scored(d.score)
    if warnings:
        for w in d.warnings:
            yield EvaluatorWarning(w, d.lam)
    yield LambdaChosen(d.lam, d.source, d.score_value, mapping, d)


def collect_turn(events) -> dict:
    """Run a turn to the end: {"base": Finished | None, "aligned": Finished, "decision": LambdaDecision,
    "score": Score | None, "warnings": [str]} (for evaluations and tests)."""
    out: dict = {"base": None, "aligned": None, "decision": None, "score": None, "warnings": []}
    for ev in events:
        if ev.kind == "phase_done":
            out[ev.phase] = ev.finished
        elif ev.kind == "lambda":
            out["decision"] = ev.decision
        elif ev.kind == "score":
            out["score"] = ev.score
        elif ev.kind == "warning":
            out["warnings"].append(ev.message)
    return out
