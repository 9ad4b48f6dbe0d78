"""The evaluator interface, the judge prompt, and tolerant parsing of a judge's reply.

An evaluator either rates an answer (``score``, built on the subclass's ``ask``) or sets λ itself without
reading the answer (``fixed_lambda``, the fixed evaluator).  Whatever a judge wants to tell the user about one
reply (a response cut to fit, an empty response) travels with that reply: ``Reply.warnings``, then
``Score.warnings``.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Mapping

from ..core import Option
from ..errors import SdaError
from ..presets import Preset, all_presets

MAX_RESPONSE_CHARS = 20_000  # longer answers are cut (with a warning) before any judge sees them
SCORE_DECIMALS = 2  # an expected score is kept to 0.01 on the 1–100 scale (ties below that do not matter)

JUDGE_SYSTEM = ("You are a careful, impartial evaluator. You read a user's request and an assistant's response, "
                "judge the response strictly by the rubric you are given, and reply with JSON only.")

Fields = Mapping[str, tuple[int, int]]  # field name -> inclusive integer range

# λ as a user gives it (--lam, a fixed evaluator, an evaluation grid).  The default mapping (sigmoid) and the
# linear/cosine ones give λ in [0, 1); 1 is the strongest steering they reach (k scales it further).  A negative
# λ would steer *away* from the instruction, so it is refused.
LAMBDA_OPTION = Option(help="steering strength λ: 0 = the instruction alone (no steering), 1 = the strongest "
                            "steering a score mapping gives (k scales it); negative λ would steer away from the "
                            "instruction", lo=0.0, hi=1.0, step=0.01)
SCORE_OPTION = Option(help="a 1–100 rating of the unsteered answer, mapped to λ", lo=1.0, hi=100.0, step=1)


class EvaluatorError(SdaError):
    """The evaluator could not produce a valid score (unreachable, refused, timed out, garbage reply…)."""


@dataclass
class Score:
    """One rating: ``value`` in 1–100, what the evaluator actually replied, who, and how long it took.

    ``value`` is an integer for judges that reply with a number (grammar, OpenAI, fixed) and a float, rounded
    to ``SCORE_DECIMALS``, for judges that compute an expected score from probabilities (``geval``, ``reason``,
    ``yesno``, ``self``)."""

    value: int | float | None
    raw: str
    evaluator: str
    latency_s: float
    criterion: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"value": self.value, "raw": self.raw, "evaluator": self.evaluator,
                "latency_s": round(self.latency_s, 4), "criterion": self.criterion, "warnings": list(self.warnings)}


@dataclass
class Reply:
    """A judge's reply: the integer fields read from it, the text itself, and warnings about this request."""

    values: dict[str, int]
    raw: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BaseAnswer:
    """The unsteered answer a judge rates, as the turn generated it: the conversation it answers, the engine it
    ran on, and its record (prompt tokens, answer tokens, their log-probs; ``Finished.record``).  Judges that
    read only the text ignore it; the self-score uses it to skip a forced pass (``selfscore``)."""

    messages: list[dict]
    engine: object            # the ``runtime.engine.Engine`` (for its instructed stream)
    record: object | None     # ``runtime.answer_record.AnswerRecord``, None when not recorded


@dataclass(frozen=True)
class FixedLambda:
    """λ an evaluator sets itself, without reading the answer; ``score`` is the given score it came from."""

    lam: float
    score: Score | None = None


def resolve_criterion(criterion: str | Preset) -> tuple[str, str]:
    """(name, rubric) from a Preset, a preset name, or a custom rubric text."""
    if isinstance(criterion, Preset):
        return criterion.criterion or criterion.name, criterion.rubric
    presets = all_presets()
    if criterion in presets:
        p = presets[criterion]
        return p.criterion or p.name, p.rubric
    text = (criterion or "").strip()
    if not text:
        raise EvaluatorError("empty criterion: give a preset name or a rubric")
    return "custom", text


def judge_case(query: str, response: str, rubric: str, criterion: str) -> str:
    """The part of every judge prompt that states the case: criterion, rubric, request and response.  Local
    judges cut an over-long response between its ``[Assistant response]`` / ``[End of response]`` markers."""
    return (f"Criterion: {criterion}\nRubric:\n{rubric}\n\n"
            f"[User request]\n{query}\n[End of request]\n\n"
            f"[Assistant response]\n{response}\n[End of response]\n\n")


def judge_messages(query: str, response: str, rubric: str, criterion: str) -> list[dict]:
    user = (judge_case(query, response, rubric, criterion)
            + 'Rate the response from 1 (worst) to 100 (best) by the rubric. Reply with a JSON object '
              'of the form {"score": <integer from 1 to 100>}.')
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def clip_response(response: str) -> tuple[str, list[str]]:
    """The response as a judge sees it (cut to ``MAX_RESPONSE_CHARS``), with warnings (empty, cut)."""
    warnings = []
    if not response.strip():
        warnings.append("the response is empty")
    if len(response) > MAX_RESPONSE_CHARS:
        warnings.append(f"the response was cut from {len(response):,} to {MAX_RESPONSE_CHARS:,} characters "
                        "for the judge")
        response = response[:MAX_RESPONSE_CHARS] + " […]"
    return response, warnings


_NUM = r"(-?\d+(?:\.\d+)?)"


def parse_fields(text: str, fields: Fields) -> dict[str, int]:
    """Read integer fields from a judge's reply: JSON first, then "name: 42"-style text, then a lone number.

    Raises ``EvaluatorError`` for a missing, non-integer or out-of-range value.
    """
    text = (text or "").strip()
    values: dict[str, object] = {}
    for m in re.finditer(r"\{[^{}]*\}", text, flags=re.S):  # any JSON object in the reply
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            for k in fields:
                if k in obj:
                    values[k] = obj[k]
        if len(values) == len(fields):
            break
    for k in fields:
        if k not in values:
            m = re.search(rf"\b{re.escape(k)}\b\W{{0,4}}{_NUM}", text, flags=re.I)
            if m:
                values[k] = m.group(1)
    if len(fields) == 1 and not values:
        m = re.fullmatch(r"\W*" + _NUM + r"\W*", text)
        if m:
            values[next(iter(fields))] = m.group(1)
    out = {}
    for k, (lo, hi) in fields.items():
        if k not in values:
            raise EvaluatorError(f"the judge's reply has no {k!r}: {text[:120]!r}")
        v = values[k]
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise EvaluatorError(f"the judge's {k!r} is not a number: {v!r:.40}") from None
        if not f.is_integer():
            raise EvaluatorError(f"the judge's {k!r} is not an integer: {v!r:.40}")
        if not lo <= f <= hi:
            raise EvaluatorError(f"the judge's {k!r} = {int(f)} is outside {lo}–{hi}")
        out[k] = int(f)
    return out


class Evaluator:
    """Base class.  Judges implement ``ask(messages, fields) -> Reply``; an evaluator that sets λ without
    reading the answer overrides ``fixed_lambda``."""

    name = "evaluator"

    def ask(self, messages: list[dict], fields: Fields) -> Reply:
        raise NotImplementedError

    def fixed_lambda(self, criterion: str | Preset, mapping: str) -> FixedLambda | None:
        """The λ this evaluator sets whatever the answer, or None when it has to read the answer (``score``)."""
        return None

    def score(self, query: str, response: str, criterion: str | Preset, base: BaseAnswer | None = None) -> Score:
        """Rate ``response`` to ``query`` by ``criterion``; ``base``: how the turn generated it (when it did)."""
        crit, rubric = resolve_criterion(criterion)
        response, warnings = clip_response(response)
        t0 = time.perf_counter()
        reply = self.ask(judge_messages(query, response, rubric, crit), {"score": (1, 100)})
        return Score(reply.values["score"], reply.raw, self.name, time.perf_counter() - t0, crit,
                     warnings + reply.warnings)

    def close(self) -> None:
        pass
