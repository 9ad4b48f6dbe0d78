"""One SDA turn, the seam every front end calls: base answer (when something reads it) → λ → aligned answer.

    for ev in answer(engine, evaluator, messages, TurnSettings(preset=get_preset("harmlessness"))):
        match ev: ...   # [BaseToken*, PhaseDone(base)], [Scored], EvaluatorWarning*, LambdaChosen, AlignedToken*,
                        # PhaseDone(aligned)
    trace = TurnTrace.run(answer(...))   # or read a turn through its one fold: answers, λ decision, timings

When λ does not read the base answer (a preset's or a fixed λ) and the base answer is still wanted (the chat
shows it), both answers are decoded in one batch: the λ events come first, then the two answers' tokens
interleaved, each ``PhaseDone`` when its answer ends (``Engine.generate_pair_tokens``; ``together=False`` keeps
the order above).  A turn's prompts are tokenised once (``turn_prompts`` → ``TurnPrompts``) and handed down; a
text completion or a prefill hands ``answer`` its own ``TurnPrompts``.  ``instruction_only`` is the baseline
answer (the instruction in the prompt, no steering) every evaluation compares SDA with.

The chat (``session.ChatSession``, which adds history and regenerate), ``sda-local generate``, the server and
every generation eval call ``answer``; none builds a turn of its own, and each reads a turn's events by their
classes or through ``TurnTrace`` (where a turn's timings are computed, once).  λ comes from
``judges.decide_lambda`` (the one λ decision): a judge rates the base answer, whose record (prompt, tokens,
log-probs) travels in its ``PhaseDone`` event and is handed to the judge explicitly (``BaseAnswer``).  An
evaluator failure never ends the turn: it becomes an ``EvaluatorWarning`` and the fallback λ is used.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, fields, replace
from typing import ClassVar, Iterator, Sequence

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
from .runtime.prompts import PLACEMENTS, check_messages

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
# Consumers ``match`` on these classes (or read a turn through ``TurnTrace``); ``kind`` is a fixed tag for logs
# and tests, never something to compare in a front end.
@dataclass
class BaseToken:
    token: TokenEvent
    kind: ClassVar[str] = "base_token"


@dataclass
class AlignedToken:
    token: TokenEvent
    kind: ClassVar[str] = "aligned_token"


@dataclass
class PhaseDone:
    phase: str  # "base" | "aligned"
    finished: Finished
    kind: ClassVar[str] = "phase_done"


@dataclass
class Scored:
    score: Score
    kind: ClassVar[str] = "score"


@dataclass
class EvaluatorWarning:
    message: str
    lam: float         # the λ the turn goes on with (the fallback λ when the evaluator failed)
    kind: ClassVar[str] = "warning"


@dataclass
class LambdaChosen:
    lam: float
    source: str        # "score" | "fixed" | "fallback" (judges.decision.LAMBDA_SOURCES)
    score: int | None
    mapping: str
    decision: LambdaDecision | None = None  # the whole decision (warnings, judge latency), to reuse it
    kind: ClassVar[str] = "lambda"


TurnEvent = BaseToken | AlignedToken | PhaseDone | Scored | EvaluatorWarning | LambdaChosen


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


@dataclass(frozen=True)
class TurnPrompts:
    """A turn's prompts as tokens, rendered and tokenised once and handed down to the engine: the instructed
    stream's, the uninstructed stream's, and the base answer's (None: a prompt given as tokens that has no base
    answer, such as a text completion).  ``turn_prompts`` builds them from a conversation; a text completion or a
    prefill builds them itself and hands them to ``answer``."""

    with_instruction: list[int]
    without: list[int]
    base: list[int] | None = None

    def check_fits(self, engine: Engine, what: str = "prompt") -> "TurnPrompts":
        """``PromptTooLongError`` naming the stream (``what``: "prompt" or "message") unless each prompt leaves
        room for one answer token."""
        for toks, name in ((self.with_instruction, f"{what} with the instruction"), (self.without, what),
                           (self.base or [], what)):
            engine.check_fits(toks, name)
        return self


def turn_prompts(engine: Engine, messages: Sequence[dict], settings: TurnSettings) -> TurnPrompts:
    """The prompts ``answer`` decodes for ``messages`` under ``settings`` (steered toward the system prompt when
    asked), checked to fit: ``PromptTooLongError`` names the stream that does not; ``SdaError`` for bad
    messages."""
    msgs = check_messages(messages)
    return _tokenised(engine, msgs, *steer_target(msgs, settings))


def _tokenised(engine: Engine, msgs: list[dict], steer: list[dict], s: TurnSettings) -> TurnPrompts:
    """``turn_prompts`` once the conversation the SDA streams share (``steer``) and their settings are known."""
    t_with, t_without = engine.prompter.pair(steer, s.preset.instruction, s.effective_placement,
                                             s.effective_contrast, s.preset.opposite)
    return TurnPrompts(t_with, t_without, engine.prompter.tokens(msgs)).check_fits(engine, "message")


def answer(engine: Engine, evaluator: Evaluator, messages: Sequence[dict] | TurnPrompts, settings: TurnSettings, *,
           base: str = "auto", decision: LambdaDecision | None = None, seed_offset: int = 0,
           inspect: int = 0, extras=None, together: bool = True) -> Iterator:
    """One turn on ``messages`` (ending with the user's message) as events (module docstring); or on prompts
    given as tokens (``TurnPrompts``: a text completion, a prefill), whose λ must need no base answer.

    ``base``: "auto" generates the unsteered answer only when the λ decision reads it (a judge); "always" also
    when λ is fixed (to show or compare it); "never" refuses a judge that would need it.  ``decision``: a λ
    decision already made (a regenerated answer, or the same decision under another placement): no judge runs.
    ``seed_offset`` moves the aligned answer's seed (a fresh, reproducible draw); ``inspect=k`` records each
    aligned step's top-k lists; ``extras`` (``runtime.logprobs.DecodeExtras``: log-probs, a grammar) applies to
    the aligned answer.  ``together``: when λ does not read the base answer and one is wanted, decode both answers
    at once (``Engine.generate_pair``, where the engine can): the λ events come first, then both answers' tokens
    interleaved, each answer's ``PhaseDone`` when it ends; False keeps the base answer first, the engine free at
    its ``PhaseDone``.  The prompts are tokenised once (``turn_prompts``).  Raises (before the first event)
    ``SdaError`` for bad settings or messages and ``PromptTooLongError`` when a stream's prompt does not fit."""
    if base not in BASE_CHOICES:
        raise ValueError(f"base must be one of {BASE_CHOICES}, got {base!r}")
    settings.check()
    if isinstance(messages, TurnPrompts):
        convo = _Convo(None, None, messages.check_fits(engine))
    else:
        msgs = [dict(m) for m in messages]
        if not msgs or msgs[-1].get("role") != "user":
            raise SdaError("a turn answers a user message: the conversation must end with one")
        msgs = check_messages(msgs)
        steer_msgs, settings = steer_target(msgs, settings)
        convo = _Convo(msgs, steer_msgs, _tokenised(engine, msgs, steer_msgs, settings))
    fresh = decision is None
    if fresh:
        decision = decide_without_answer(evaluator, settings.preset, settings.mapping)
    if decision is None and (base == "never" or convo.msgs is None):
        what = "the turn needs one" if convo.msgs is not None else "a prompt given as tokens has none to rate"
        raise SdaError(f"evaluator {evaluator.name} rates the base answer, so {what}")
    want_base = decision is None or base == "always"
    if want_base and convo.prompts.base is None:
        raise SdaError("this prompt has no base answer to show")
    if want_base and decision is not None and together and engine.can_pair:
        return _paired_turn(engine, convo, settings, decision, fresh, seed_offset, inspect, extras)
    return _turn(engine, evaluator, convo, settings, want_base, decision, fresh, seed_offset, inspect, extras)


def instruction_only(engine: Engine, messages: Sequence[dict], settings: TurnSettings, *, seed_offset: int = 0,
                     extras=None) -> Iterator:
    """The instruction-only answer, the baseline SDA is measured against (every evaluation's "instruction"
    system): the conversation with the preset's instruction where the turn would place it (``steer_toward=
    "system"``: the conversation as written, its system message being the instruction), sampled plainly with the
    turn's settings: no steering, no base answer, no judge.  ``TokenEvent``s then a ``Finished``."""
    msgs = [dict(m) for m in messages]
    settings.check()
    steer_msgs, s = steer_target(msgs, settings)
    p = s.params(seed_offset)
    if steer_msgs is not msgs:
        return engine.generate_plain(msgs, params=p, stream="aligned", extras=extras)
    return engine.generate_plain(msgs, s.preset.instruction, placement=s.effective_placement, params=p, extras=extras)


@dataclass(frozen=True)
class _Convo:
    """A turn's conversation as the base answer sees it (``msgs``, as written) and as the SDA streams share it
    (``steer``: the same, but for the system message taken out when it is what they steer toward), and its
    ``prompts`` as tokens (for prompts given as tokens, ``msgs`` and ``steer`` are None)."""

    msgs: list[dict] | None
    steer: list[dict] | None
    prompts: TurnPrompts


def _turn(engine: Engine, evaluator: Evaluator, convo: _Convo, s: TurnSettings, want_base: bool,
          decision: LambdaDecision | None, fresh: bool, seed_offset: int, inspect: int, extras=None) -> Iterator:
    base_done, pr = None, convo.prompts
    if want_base:
        for ev in engine.generate_plain_tokens(pr.base, params=s.params(), record=True):
            if isinstance(ev, Finished):
                base_done = ev
            else:
                yield BaseToken(ev)
        yield PhaseDone("base", base_done)  # the engine is free again here: a consumer may use it in between
    if decision is None:
        msgs = convo.msgs
        decision = decide_lambda(evaluator, msgs[-1]["content"], strip_think(base_done.text), s.preset, s.mapping,
                                 s.fallback_lam, base=BaseAnswer(convo.steer, engine, base_done.record))
    yield from decision_events(decision, s.mapping, warnings=fresh)
    for ev in engine.generate_tokens(pr.with_instruction, pr.without, s.preset.instruction, decision.lam,
                                     params=s.params(seed_offset), inspect=inspect, extras=extras):
        yield PhaseDone("aligned", ev) if isinstance(ev, Finished) else AlignedToken(ev)


def _paired_turn(engine: Engine, convo: _Convo, s: TurnSettings, decision: LambdaDecision, fresh: bool,
                 seed_offset: int, inspect: int, extras=None) -> Iterator:
    """A turn whose λ is known before the base answer: both answers in one batch (``Engine.generate_pair``)."""
    yield from decision_events(decision, s.mapping, warnings=fresh)
    pr = convo.prompts
    for who, ev in engine.generate_pair_tokens(pr.with_instruction, pr.without, pr.base, s.preset.instruction,
                                               decision.lam, params=s.params(seed_offset), base_params=s.params(),
                                               inspect=inspect, extras=extras, record_base=True):
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


class TurnTrace:
    """The one fold of a turn's events: what they showed and when (seconds from the trace's start).  Every
    reader of a turn goes through it: the session records a turn from it, the server its diagnostics, the bench
    its marks, the evaluations their answers (``TurnTrace.run``), and ``timings()`` is the one place a turn's
    timings are computed.  ``watch(events)`` passes the events on while folding them."""

    def __init__(self, clock=None):
        self._clock = clock or (lambda: time.perf_counter())  # (looked up at each reading: tests tick it)
        self._t0 = self._clock()
        self.base: Finished | None = None          # the base answer, once it finished
        self.base_pieces: list[str] = []           # its tokens' texts so far (kept when it is stopped)
        self.score: Score | None = None
        self.warnings: list[str] = []
        self.decision: LambdaDecision | None = None
        self.aligned_tokens: list[TokenEvent] = []
        self.aligned: Finished | None = None       # the aligned answer, once it finished
        self.t_first_base: float | None = None
        self.t_last_base: float | None = None
        self.t_base: float | None = None           # the base answer done
        self.t_lambda: float | None = None         # λ chosen
        self.t_first_aligned: float | None = None
        self.t_aligned: float | None = None        # the aligned answer done

    @classmethod
    def run(cls, events) -> "TurnTrace":
        """Run a turn to the end and return its trace (for evaluations and tests)."""
        trace = cls()
        for ev in events:
            trace.see(ev)
        return trace

    def watch(self, events) -> Iterator:
        """``events``, each folded in as it passes; closing this closes ``events``."""
        try:
            for ev in events:
                yield self.see(ev)
        finally:
            events.close()

    def now(self) -> float:
        return self._clock() - self._t0

    def see(self, ev):
        """Fold one event in; returns it."""
        now = self.now()
        match ev:
            case BaseToken(token=t):
                self.base_pieces.append(t.text)
                self.t_first_base = now if self.t_first_base is None else self.t_first_base
                self.t_last_base = now
            case PhaseDone(phase="base", finished=f):
                self.base, self.t_base = f, now
            case PhaseDone(finished=f):
                self.aligned, self.t_aligned = f, now
                self.t_first_aligned = now if self.t_first_aligned is None else self.t_first_aligned
            case AlignedToken(token=t):
                self.aligned_tokens.append(t)
                self.t_first_aligned = now if self.t_first_aligned is None else self.t_first_aligned
            case Scored(score=sc):
                self.score = sc
            case EvaluatorWarning(message=m):
                self.warnings.append(m)
            case LambdaChosen(decision=d):
                self.decision, self.t_lambda = d, now
        return ev

    @property
    def aligned_started(self) -> bool:
        """Whether the aligned answer has begun (a token or its end came)."""
        return self.t_first_aligned is not None

    @property
    def together(self) -> bool:
        """Both answers were decoded in one batch: λ came before the base answer ended (``answer``'s together)."""
        return self.t_base is not None and self.t_lambda is not None and self.t_lambda <= self.t_base

    def aligned_text(self) -> str:
        """The aligned answer so far (all of it once it finished)."""
        return self.aligned.text if self.aligned else "".join(t.text for t in self.aligned_tokens)

    def base_timings(self) -> dict:
        """The base answer's part of ``timings()`` (what a regenerated turn, which makes no base answer, reuses):
        when it ended (or its last token came, when it was stopped), its tokens and their rate."""
        if self.base is not None:
            n, base_s, rate = self.base.n_tokens, self.t_base, self.base.tokens_per_second
        else:
            n, base_s = len(self.base_pieces), self.t_last_base or 0.0
            rate = n / base_s if base_s > 0 else None
        return {"base_s": round(base_s, 3), "base_tokens": n,
                "base_tokens_per_s": None if rate is None else round(rate, 2)}

    def timings(self, base: dict | None = None) -> dict:
        """The turn's timings in seconds from its start (``base``: an earlier turn's ``base_timings()``, when this
        one reused its base answer): the base answer done, the judge's own time, λ chosen, the first aligned
        token, the aligned answer's time after λ, the whole turn; tokens and tokens per second of each."""
        d = self.decision
        # the turn ends with its last answer (decoded together, the base answer may end after the aligned one)
        total = max(t for t in (self.t_aligned, self.t_base) if t is not None) if self.t_aligned is not None \
            else self.now()
        aligned_s = total - (self.t_lambda or 0.0) if d is not None else 0.0
        n = self.aligned.n_tokens if self.aligned else len(self.aligned_tokens)
        rate = self.aligned.tokens_per_second if self.aligned else n / aligned_s if aligned_s > 0 else 0.0

        def r(x):
            return None if x is None else round(x, 3)
        return {**(base or self.base_timings()), "judge_s": round(d.seconds, 3) if d else 0.0,
                "lambda_s": r(self.t_lambda), "aligned_s": r(aligned_s), "total_s": r(total),
                "together": self.together, "first_base_token_s": r(self.t_first_base),
                "first_aligned_token_s": r(self.t_first_aligned), "aligned_tokens": n,
                "aligned_tokens_per_s": round(rate, 2)}
