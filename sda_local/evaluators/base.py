"""The evaluator interface, the judge prompt, and tolerant parsing of a judge's reply."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Mapping

from ..errors import SdaError
from ..presets import Preset, all_presets

MAX_RESPONSE_CHARS = 20_000  # longer answers are cut (with a warning) before any judge sees them

JUDGE_SYSTEM = ("You are a careful, impartial evaluator. You read a user's request and an assistant's response, "
                "judge the response strictly by the rubric you are given, and reply with JSON only.")

Fields = Mapping[str, tuple[int, int]]  # field name -> inclusive integer range


class EvaluatorError(SdaError):
    """The evaluator could not produce a valid score (unreachable, refused, timed out, garbage reply…)."""


@dataclass
class Score:
    """One rating: ``value`` in 1–100, what the evaluator actually replied, who, and how long it took."""

    value: int | None
    raw: str
    evaluator: str
    latency_s: float
    criterion: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"value": self.value, "raw": self.raw, "evaluator": self.evaluator,
                "latency_s": round(self.latency_s, 4), "criterion": self.criterion, "warnings": list(self.warnings)}


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


def judge_messages(query: str, response: str, rubric: str, criterion: str) -> list[dict]:
    user = (f"Criterion: {criterion}\nRubric:\n{rubric}\n\n"
            f"[User request]\n{query}\n[End of request]\n\n"
            f"[Assistant response]\n{response}\n[End of response]\n\n"
            'Rate the response from 1 (worst) to 100 (best) by the rubric. Reply with a JSON object '
            'of the form {"score": <integer from 1 to 100>}.')
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


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
    """Base class.  Subclasses implement ``ask(messages, fields) -> (values, raw_reply)``."""

    name = "evaluator"
    fixed_lam: float | None = None  # set only by FixedEvaluator(lam=…)

    def ask(self, messages: list[dict], fields: Fields) -> tuple[dict[str, int], str]:
        raise NotImplementedError

    def score(self, query: str, response: str, criterion: str | Preset) -> Score:
        crit, rubric = resolve_criterion(criterion)
        warnings = []
        if not response.strip():
            warnings.append("the response is empty")
        if len(response) > MAX_RESPONSE_CHARS:
            warnings.append(f"the response was cut from {len(response):,} to {MAX_RESPONSE_CHARS:,} characters "
                            "for the judge")
            response = response[:MAX_RESPONSE_CHARS] + " […]"
        t0 = time.perf_counter()
        values, raw = self.ask(judge_messages(query, response, rubric, crit), {"score": (1, 100)})
        warnings += getattr(self, "_last_warnings", [])
        return Score(values["score"], raw, self.name, time.perf_counter() - t0, crit, warnings)

    def close(self) -> None:
        pass
