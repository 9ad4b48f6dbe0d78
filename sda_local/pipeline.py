"""One SDA chat turn as a stream of typed events: base answer → score → λ → aligned answer.

    session = ChatSession(engine, evaluator, TurnSettings(preset=get_preset("harmlessness")))
    for ev in session.send("How do I pick a lock?"):
        ...   # BaseToken*, PhaseDone(base), Scored | EvaluatorWarning, LambdaChosen, AlignedToken*,
              # PhaseDone(aligned), TurnDone

The history holds the aligned answers.  The last turn's base answer and score are cached, so
``regenerate()`` resamples only the aligned answer.  An evaluator failure never ends the turn: it becomes an
``EvaluatorWarning`` and the fallback λ is used.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Iterator

from . import core
from .core import Option, SamplingParams
from .engine import Engine, Finished, TokenEvent
from .errors import PromptTooLongError, SdaError
from .evaluators import Evaluator, EvaluatorError, Score
from .presets import DEFAULT_PRESET, Preset, get_preset
from .prompts import PLACEMENTS

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
    placement: str = _turn_opt("user", help="where the instruction goes in the instructed stream",
                               choices=PLACEMENTS)
    system_prompt: str = _turn_opt("", help="a system message for both streams")

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
    fallback_lam: float
    kind: str = "warning"


@dataclass
class LambdaChosen:
    lam: float
    source: str        # "score" | "fixed" | "fallback"
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
    aligned_tokens: list[dict] = field(default_factory=list)  # per-token diagnostics (text, js, T, p)
    finish_reason: str = ""
    regenerations: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class ChatSession:
    """A multi-turn conversation with SDA on one engine and one evaluator."""

    def __init__(self, engine: Engine, evaluator: Evaluator, settings: TurnSettings | None = None):
        self.engine = engine
        self.evaluator = evaluator
        self.settings = (settings or TurnSettings()).check()
        self.turns: list[TurnRecord] = []
        self._cache: dict | None = None  # last turn's base answer + score, for regenerate()

    # -- history ---------------------------------------------------------------------------------------------
    def messages(self, upto: int | None = None) -> list[dict]:
        turns = self.turns if upto is None else self.turns[:upto]
        msgs = [{"role": "system", "content": self.settings.system_prompt}] if self.settings.system_prompt else []
        for t in turns:
            msgs += [{"role": "user", "content": t.user}, {"role": "assistant", "content": t.aligned}]
        return msgs

    def clear(self) -> None:
        self.turns.clear()
        self._cache = None

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
            n = len(self.engine.prompt_tokens(msgs, instr, s.placement))
            if n + 1 > self.engine.n_ctx:
                raise PromptTooLongError(n, self.engine.n_ctx, what)
        return self._turn(msgs, text, regenerate=False)

    def regenerate(self, settings: TurnSettings | None = None) -> Iterator:
        """Resample the last turn's aligned answer, reusing its cached base answer and score."""
        if not self.turns or self._cache is None:
            raise SdaError("nothing to regenerate yet")
        if settings is not None:
            self.settings = settings.check()
        return self._regenerate()

    def _regenerate(self) -> Iterator:
        last = self.turns.pop()
        self._cache["regenerations"] = last.regenerations + 1
        msgs = self.messages() + [{"role": "user", "content": last.user}]
        completed = False
        try:
            yield from self._turn(msgs, last.user, regenerate=True)
            completed = True
        finally:
            if not completed and (not self.turns or self.turns[-1].user != last.user):
                self.turns.append(last)  # nothing new was recorded: keep the previous answer

    def _choose_lambda(self, query: str, base_text: str) -> Iterator:
        s = self.settings
        ev = self.evaluator
        t0 = time.perf_counter()
        if ev.fixed_lam is not None:
            yield LambdaChosen(float(ev.fixed_lam), "fixed", None, s.mapping)
            return None, float(ev.fixed_lam), "fixed", [], time.perf_counter() - t0
        try:
            score = ev.score(query, strip_think(base_text), s.preset)
            lam = core.lambda_from_score(score.value, s.mapping)
        except (EvaluatorError, ValueError) as exc:
            msg = f"evaluator {ev.name} failed: {exc}. Using the fallback λ = {s.fallback_lam:g}."
            yield EvaluatorWarning(msg, s.fallback_lam)
            yield LambdaChosen(s.fallback_lam, "fallback", None, s.mapping)
            return None, s.fallback_lam, "fallback", [msg], time.perf_counter() - t0
        yield Scored(score)
        for w in score.warnings:
            yield EvaluatorWarning(f"evaluator {ev.name}: {w}", lam)
        yield LambdaChosen(lam, "fixed" if ev.name.startswith("fixed") else "score", score.value, s.mapping)
        return score, lam, "score", list(score.warnings), time.perf_counter() - t0

    def _turn(self, msgs: list[dict], user_text: str, regenerate: bool) -> Iterator:
        s = self.settings
        t_start = time.perf_counter()
        regen = self._cache["regenerations"] if regenerate and self._cache else 0
        if regenerate:
            c = self._cache
            base_text, base_done, score, lam, lam_source, warnings, judge_s = (
                c["base"], c["base_done"], c["score"], c["lam"], c["lam_source"], list(c["warnings"]), c["judge_s"])
            base_s = 0.0
            if score is not None:
                yield Scored(score)
            yield LambdaChosen(lam, lam_source, score.value if score else None, s.mapping)
        else:
            base_done = None
            for ev in self.engine.generate_plain(msgs, params=s.params()):
                if isinstance(ev, Finished):
                    base_done = ev
                    yield PhaseDone("base", ev)
                else:
                    yield BaseToken(ev)
            base_text = strip_think(base_done.text)
            base_s = time.perf_counter() - t_start
            score, lam, lam_source, warnings, judge_s = yield from self._choose_lambda(user_text, base_done.text)
            self._cache = {"base": base_text, "base_done": base_done, "score": score, "lam": lam,
                           "lam_source": lam_source, "warnings": warnings, "judge_s": judge_s, "regenerations": 0}
        t_aligned = time.perf_counter()
        ttft = None
        tokens: list[dict] = []
        aligned_done = None
        pieces: list[str] = []
        finish = "stopped"
        gen = self.engine.generate(msgs, s.preset.instruction, lam, placement=s.placement,
                                   params=s.params(seed_offset=regen))
        try:
            for ev in gen:
                if isinstance(ev, Finished):
                    aligned_done = ev
                    finish = ev.finish_reason
                    yield PhaseDone("aligned", ev)
                else:
                    if ttft is None:
                        ttft = time.perf_counter() - t_start
                    pieces.append(ev.text)
                    tokens.append({"i": ev.index, "text": ev.text, "token_id": ev.token_id, "js": ev.js,
                                   "temperature": ev.temperature, "prob": ev.prob})
                    yield AlignedToken(ev)
        finally:
            gen.close()
            # a stopped turn keeps what was generated so far (the UI's stop button)
            aligned_text = aligned_done.text if aligned_done else "".join(pieces)
            t_end = time.perf_counter()
            aligned_s = t_end - t_aligned
            n_aligned = aligned_done.n_tokens if aligned_done else len(tokens)
            record = TurnRecord(
                user=user_text, base=base_text, aligned=strip_think(aligned_text),
                score=score.to_dict() if score else None, lam=lam, lam_source=lam_source,
                evaluator=self.evaluator.name, warnings=warnings, settings=s.to_dict(),
                timings={"base_s": round(base_s, 3), "judge_s": round(judge_s, 3), "aligned_s": round(aligned_s, 3),
                         "total_s": round(t_end - t_start, 3),
                         "first_aligned_token_s": None if ttft is None else round(ttft, 3),
                         "base_tokens": base_done.n_tokens if base_done else 0,
                         "base_tokens_per_s": round(base_done.tokens_per_second, 2) if base_done and not regenerate else None,
                         "aligned_tokens": n_aligned,
                         "aligned_tokens_per_s": round(aligned_done.tokens_per_second, 2) if aligned_done else
                         round(n_aligned / aligned_s, 2) if aligned_s > 0 else 0.0},
                aligned_tokens=tokens, finish_reason=finish, regenerations=regen)
            self.turns.append(record)
        yield TurnDone(record)

    # -- export / import -------------------------------------------------------------------------------------
    def export(self) -> dict:
        return {"format": "sda-local-chat/1", "model": self.engine.name, "evaluator": self.evaluator.name,
                "settings": self.settings.to_dict(), "turns": [t.to_dict() for t in self.turns],
                "messages": self.messages()}

    def load(self, data: dict) -> None:
        """Restore turns from ``export()`` output (the history; cached base answers are not needed)."""
        if not isinstance(data, dict) or data.get("format") != "sda-local-chat/1":
            raise SdaError("not an sda-local chat export (format 'sda-local-chat/1' expected)")
        turns = []
        try:
            for t in data["turns"]:
                turns.append(TurnRecord(**{k: t[k] for k in TurnRecord.__dataclass_fields__ if k in t}))
        except (KeyError, TypeError) as exc:
            raise SdaError(f"the chat export is damaged: {exc}") from None
        self.turns = turns
        self._cache = None


def with_settings(settings: TurnSettings, **changes) -> TurnSettings:
    return replace(settings, **changes).check()
