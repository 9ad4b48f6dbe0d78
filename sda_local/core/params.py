"""``SamplingParams``: the one definition of how tokens are drawn, plain or steered.

Every interface (CLI options, the chat's Advanced settings, evaluation configs, the server) is built from the
fields below and their metadata, so adding an option is one field with its help text here.  Each field's
``metadata`` is an ``Option``: help text, allowed values or range (checked in ``check``), and, for the chat,
the slider step.  Pure data: no I/O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

TEMPERATURE_MODES = ("ln2", "sharp", "off")
# What the stream without the instruction gets in its place (runtime/prompts.py explains each).
CONTRASTS = ("auto", "none", "neutral", "ignore", "opposite")
# Per-token guidance weight: "off" (the paper's constant k·λ) or "jsd" (scaled by the streams' JS divergence).
ADAPTIVE_MODES = ("off", "jsd")


@dataclass(frozen=True)
class Option:
    """What a user needs to know about one setting, and the values it may take."""

    help: str
    choices: tuple | None = None
    lo: float | None = None          # inclusive lower bound (``lo_open``: exclusive)
    hi: float | None = None          # inclusive upper bound (``hi_open``: exclusive)
    lo_open: bool = False
    hi_open: bool = False
    step: float | None = None        # the chat slider's step
    ui_max: float | None = None      # the chat slider's upper end where ``hi`` is open-ended
    optional: bool = False           # None is allowed (e.g. no fixed seed)

    def describe_range(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        lo = "(" if self.lo_open else "["
        hi = ")" if self.hi_open else "]"
        a = "-∞" if self.lo is None else f"{self.lo:g}"
        b = "∞" if self.hi is None else f"{self.hi:g}"
        return f"in {lo}{a}, {b}{hi}"

    def check(self, name: str, value: Any) -> None:
        if value is None:
            if self.optional:
                return
            raise ValueError(f"{name} must be given")
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"{name} must be {self.describe_range()}; got {value!r}")
            return
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number {self.describe_range()}; got {value!r}") from None
        bad = not math.isfinite(x)
        if self.lo is not None:
            bad = bad or (x <= self.lo if self.lo_open else x < self.lo)
        if self.hi is not None:
            bad = bad or (x >= self.hi if self.hi_open else x > self.hi)
        if bad:
            raise ValueError(f"{name} must be {self.describe_range()}; got {value!r}")


def _opt(default, **kw):
    return field(default=default, metadata={"option": Option(**kw)})


@dataclass
class SamplingParams:
    """How tokens are drawn.  Defaults follow the paper: k = 2, T0 = 0.6, top-p = 0.95, "ln2" schedule;
    the plausibility constraint is off (α = 0)."""

    k: float = _opt(2.0, help="steering gain k in s = lp + k·λ·(lp − lp_nc) (guidance γ = 1 + kλ)",
                    lo=0.0, step=0.1, ui_max=4.0)
    t0: float = _opt(0.6, help="base temperature T0", lo=0.0, lo_open=True, step=0.05, ui_max=2.0)
    top_p: float = _opt(0.95, help="nucleus (top-p) mass", lo=0.0, lo_open=True, hi=1.0, step=0.01)
    temperature_mode: str = _opt("ln2", help="how T shrinks with the streams' JS divergence: ln2 = T0·0.5^(JS/2ln2), "
                                             "sharp = max(0.2, T0·0.5^(JS/0.01)), off = T0",
                                 choices=TEMPERATURE_MODES)
    plausibility: float = _opt(0.0, help="plausibility constraint α (contrastive decoding): only tokens with "
                                         "p_with ≥ α·max p_with may be drawn; 0 = off, 0.1 is typical",
                               lo=0.0, hi=1.0, hi_open=True, step=0.01)
    echo_block: int = _opt(0, help="no recitation of the instruction: once the answer's last N−1 tokens repeat a run "
                                   "of the instruction's tokens, the token that would continue the run is removed "
                                   "(0 = off; 4 is typical)", lo=0, step=1, ui_max=12)
    contrast: str = _opt("auto", help="what the stream without the instruction gets in its place: none (the paper), "
                                      "neutral (\"Answer the user's request.\"), ignore (the instruction framed as a "
                                      "guideline to disregard), opposite (the preset's opposite instruction), auto = "
                                      "the preset's own choice", choices=CONTRASTS)
    guidance_clip: float | None = _opt(None, help="bounded guidance: clip each token's lp_with − lp_without to ±c "
                                                  "nats before steering (none = off, c = ∞)",
                                       lo=0.0, lo_open=True, step=0.5, ui_max=10.0, optional=True)
    adaptive_guidance: str = _opt("off", help="adaptive guidance (AdaCAD): jsd = each token's k·λ scaled by the two "
                                              "streams' JS divergence in bits (0 where they agree, full where they "
                                              "disagree completely); off = the same k·λ for every token (the paper's)",
                                  choices=ADAPTIVE_MODES)
    max_tokens: int = _opt(256, help="most tokens to generate", lo=1, step=1, ui_max=2048)
    seed: int | None = _opt(None, help="fixed seed: the same output every run (none = random)", lo=0,
                            optional=True)

    def check(self) -> "SamplingParams":
        """Raise ``ValueError`` naming the field, its value and its allowed range; returns self."""
        for f in fields(self):
            f.metadata["option"].check(f.name, getattr(self, f.name))
        if self.echo_block == 1 or int(self.echo_block) != self.echo_block:
            raise ValueError(f"echo_block must be 0 (off) or a whole number ≥ 2; got {self.echo_block!r}")
        if self.seed is not None and int(self.seed) != self.seed:
            raise ValueError(f"seed must be an integer; got {self.seed!r}")
        return self

    def with_seed_offset(self, offset: int) -> "SamplingParams":
        """The same settings with the seed moved by ``offset`` (None stays None): a fresh but reproducible draw."""
        return self if self.seed is None or not offset else replace(self, seed=self.seed + offset)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "SamplingParams":
        """Build from a dict, ignoring keys that are not fields (e.g. an older export's extras)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names}).check()


def base_type(annotation: Any) -> type:
    """``float`` from ``"float"``, ``int`` from ``"int | None"`` (the fields' annotations are strings here)."""
    if isinstance(annotation, type):
        return annotation
    return {"float": float, "int": int, "str": str}[str(annotation).replace("| None", "").strip()]


def sampling_options() -> list[tuple[str, type | str, Any, Option]]:
    """(name, type annotation, default, Option) for each ``SamplingParams`` field, in declaration order."""
    return [(f.name, f.type, f.default, f.metadata["option"]) for f in fields(SamplingParams)]
