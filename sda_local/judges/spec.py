"""Where λ comes from, as one spec every front end fills in (``JudgeSpec``), and the one pool that builds and
keeps the evaluators a spec names for a loaded engine (``Judges``).

Each ``JudgeSpec`` field is declared once with its ``Option`` (help, the kinds, ranges), as ``SamplingParams``'
are: the CLI's evaluator options, the server's ``sda`` judge fields and the chat's evaluator controls are built
from ``judge_options()``.  The CLI reads a ``JudgeSpec`` from its options, the chat from its widgets, the server
from its start options with each request's ``sda`` overrides.  ``Judges.get`` never raises: an evaluator that
cannot be built (no API key, a missing judge file…) becomes an ``UnavailableEvaluator`` whose every score fails
with the reason, so the turn shows a warning and goes on with the fallback λ (``decision.decide_lambda``), the
same way an evaluator that fails later does.  The API key is kept out of ``repr`` (and out of every message).
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field, fields, replace

from ..core import Option
from ..errors import SdaError
from .base import LAMBDA_OPTION, SCORE_OPTION, Evaluator, EvaluatorError
from .factory import (
    DEFAULT_EVALUATOR,
    EVALUATOR_KINDS,
    LOCAL_JUDGE_KINDS,
    make_evaluator,
)

MAX_REMOTE = 8  # OpenAI-compatible evaluators kept (requests may name many models)
GIVEN = "; given, no judge rates the answer (the fixed evaluator)"
FIXED_FIELDS = ("lam", "score")  # the fields that give λ directly (at most one: each is the fixed evaluator)


def _judge_opt(default, *, option: Option | None = None, repr: bool = True, **kw):
    return field(default=default, repr=repr, metadata={"option": option or Option(**kw)})


@dataclass(frozen=True)
class JudgeSpec:
    """Which evaluator sets λ, and its settings.  A given ``lam`` or ``score`` is the fixed evaluator whatever
    ``kind`` says; ``kind="fixed"`` with neither is a score of 50.  Every field carries an ``Option``."""

    kind: str = _judge_opt(DEFAULT_EVALUATOR, choices=EVALUATOR_KINDS,
                           help="where λ comes from: a local GGUF judge rating the unsteered answer (local = a "
                                "grammar-constrained score; geval, reason, yesno read probabilities; self = the two "
                                "streams' log-prob gap), openai = an OpenAI-compatible judge, fixed = a given λ or "
                                "score (a score of 50 when neither), preset = each preset's own λ")
    lam: float | None = _judge_opt(None, option=replace(LAMBDA_OPTION, help=LAMBDA_OPTION.help + GIVEN,
                                                        optional=True))
    score: float | None = _judge_opt(None, option=replace(SCORE_OPTION, help=SCORE_OPTION.help + GIVEN,
                                                          optional=True))
    judge_model: str | None = _judge_opt(None, optional=True,
                                         help="a local judge's model: registry id, file or path; none = the chat model")
    openai_model: str | None = _judge_opt(None, optional=True,
                                          help="the OpenAI-compatible judge's model; none = $SDA_LOCAL_OPENAI_MODEL "
                                               "or gpt-4.1")
    openai_base_url: str | None = _judge_opt(None, optional=True,
                                             help="the OpenAI-compatible endpoint's base URL; none = $OPENAI_BASE_URL "
                                                  "or api.openai.com")
    openai_api_key: str | None = _judge_opt(None, optional=True, repr=False,
                                            help="the OpenAI-compatible endpoint's API key; none = $OPENAI_API_KEY "
                                                 "(prefer the variable; the key is never shown, logged or saved)")
    timeout: float = _judge_opt(30.0, help="seconds per evaluator request", lo=0.0, lo_open=True)
    retries: int = _judge_opt(2, help="evaluator retries with back-off", lo=0, step=1)

    def __post_init__(self):
        if self.kind not in EVALUATOR_KINDS:
            raise SdaError(f"unknown evaluator {self.kind!r}; choose one of {', '.join(EVALUATOR_KINDS)}")
        for name, _, _, opt in judge_options():
            if opt.choices is not None or opt.lo is not None or opt.hi is not None:  # (the rest is free text)
                try:
                    opt.check(name, getattr(self, name))
                except ValueError as exc:
                    raise SdaError(f"invalid evaluator setting: {exc}") from None
        if int(self.retries) != self.retries:
            raise SdaError(f"invalid evaluator setting: retries must be a whole number; got {self.retries!r}")

    @property
    def effective_kind(self) -> str:
        return "fixed" if self.lam is not None or self.score is not None else self.kind

    def fixed(self) -> "JudgeSpec":
        """This spec as the fixed evaluator it names (a score of 50 when neither λ nor a score is given)."""
        return self if self.lam is not None or self.score is not None else replace(self, score=50.0)

    def describe(self) -> str:
        """One line for people (no URL, no key)."""
        kind = self.effective_kind
        if kind == "fixed":
            s = self.fixed()
            return f"fixed λ = {s.lam:g}" if s.lam is not None else f"fixed score = {s.score:g}"
        if kind == "preset":
            return "λ per preset"
        if kind in LOCAL_JUDGE_KINDS:
            return f"{kind} judge ({self.judge_model or 'the chat model'})"
        return f"OpenAI-compatible ({self.openai_model or 'default model'})"


def judge_options() -> list[tuple[str, type | str, object, Option]]:
    """(name, type annotation, default, Option) for each ``JudgeSpec`` field, in declaration order."""
    return [(f.name, f.type, f.default, f.metadata["option"]) for f in fields(JudgeSpec)]


def judge_option(name: str) -> Option:
    """The ``Option`` of one ``JudgeSpec`` field (``KeyError`` for a name that is none)."""
    return {n: opt for n, _, _, opt in judge_options()}[name]


class UnavailableEvaluator(Evaluator):
    """Stands in for an evaluator that could not be built: every score fails with the reason (the turn shows
    it as a warning and uses the fallback λ, like any evaluator failure)."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason

    def ask(self, messages, fields):
        raise EvaluatorError(self.reason)

    def score(self, query, response, criterion, base=None):
        raise EvaluatorError(self.reason)


class Judges:
    """The evaluators specs name, for one engine: local judges are kept (each holds a context; at most one other
    GGUF judge in memory besides the chat model's own), OpenAI-compatible ones per endpoint (what they learnt
    about a server's formats stays).  ``switch(engine)`` after a model change drops the judges of the old one."""

    def __init__(self, engine):
        self.engine = engine
        self._local: dict[tuple[str, str], Evaluator] = {}
        self._remote: dict[str, Evaluator] = {}
        self._lock = threading.Lock()

    def build(self, spec: JudgeSpec) -> Evaluator:
        """The evaluator, or the ``SdaError`` that says why it cannot be built (for a command that should stop)."""
        with self._lock:
            return self._build(spec)

    def get(self, spec: JudgeSpec) -> Evaluator:
        """The evaluator, or an ``UnavailableEvaluator`` that says why not (for a chat or a server that go on)."""
        try:
            with self._lock:
                return self._build(spec)
        except SdaError as exc:  # EvaluatorError, ModelFileError: already readable and free of secrets
            return UnavailableEvaluator(f"{spec.kind}:unavailable", str(exc))
        except Exception as exc:
            return UnavailableEvaluator(f"{spec.kind}:unavailable", f"cannot set up the evaluator ({type(exc).__name__})")

    def _build(self, spec: JudgeSpec) -> Evaluator:
        kind = spec.effective_kind
        if kind == "fixed":
            s = spec.fixed()
            return make_evaluator("fixed", lam=s.lam) if s.lam is not None else make_evaluator("fixed", score=s.score)
        if kind == "preset":
            return make_evaluator("preset")
        if kind == "openai":
            ident = hashlib.sha256("\0".join(str(x) for x in (spec.openai_base_url, spec.openai_model,
                                                                spec.openai_api_key, spec.timeout,
                                                                spec.retries)).encode()).hexdigest()
            if ident not in self._remote:
                if len(self._remote) >= MAX_REMOTE:
                    self._remote.pop(next(iter(self._remote))).close()
                self._remote[ident] = make_evaluator("openai", openai_model=spec.openai_model,
                                                     openai_base_url=spec.openai_base_url,
                                                     openai_api_key=spec.openai_api_key, timeout=spec.timeout,
                                                     max_retries=spec.retries)
            return self._remote[ident]
        key = (kind, spec.judge_model or "")
        if key not in self._local:  # the judge gets the chat's thread count
            if spec.judge_model:
                for k in [k for k in self._local if k[1]]:
                    self._local.pop(k).close()
            self._local[key] = make_evaluator(kind, engine=None if spec.judge_model else self.engine,
                                              judge_model=spec.judge_model,
                                              n_threads=getattr(self.engine, "n_threads", None))
        return self._local[key]

    def switch(self, engine) -> None:
        with self._lock:
            for ev in self._local.values():
                ev.close()
            self._local.clear()
            self.engine = engine

    def close(self) -> None:
        with self._lock:
            for ev in [*self._local.values(), *self._remote.values()]:
                ev.close()
            self._local.clear()
            self._remote.clear()
