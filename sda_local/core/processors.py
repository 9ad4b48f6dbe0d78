"""Per-step transforms of the next-token scores, composed in order (in the spirit of Hugging Face's
``LogitsProcessorList``): one transform per class, validated when it is built.

One step's state (``StepState``) holds the log-probs of the stream sampled from (``lp_with``) and, when
steering, of the stream without the instruction (``lp_without``); the scores being built, starting at
``lp_with``; the temperature, the streams' JS divergence and how many candidates were removed.  A processor
reads the state and replaces (or, when it owns them, updates) the scores.  The log-probs themselves are never
changed: every processor sees the two unconstrained distributions.

Chains (``build_chain``):

- plain decoding: ``[PlausibilityConstraint(α)?, Temperature(T0)]`` — one stream;
- SDA:            ``[Steer(λ, k) | BoundedSteer(λ, k, c) | AdaptiveSteer(λ, k, c?), PlausibilityConstraint(α)?,
                  EchoBlock(n)?,
                  JsTemperature(T0, mode)]`` — both streams;

the plausibility constraint is left out at α = 0, so those chains do exactly the arithmetic of the paper's
formulas (tests/fused.py writes each as one function; the tests compare them bit for bit).  The model's forward passes are not made here: the engine's one
batched ``llama_decode`` gives the logits, ``ProcessorChain.distribution`` turns them into probabilities.

Every processor works on one step (1-D arrays) or on R steps at once ((R, n_vocab) arrays, ``start_rows``),
with the same arithmetic in each row: generation runs a chain on one step, teacher-forced scoring
(``evaluation.token_logprobs``) runs the same chains on blocks of rows, and ``apply_shared`` applies a prefix
that several chains share (a λ's steering for every temperature mode) once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Sequence

import numpy as np
from scipy.special import softmax

from .distributions import (
    StepInfo,
    check_factor,
    check_logits,
    check_pair,
    js_from_logprobs,
    js_temperature,
    log_softmax32,
    steer_add,
)
from .params import ADAPTIVE_MODES, TEMPERATURE_MODES, SamplingParams


@dataclass
class StepState:
    """One decoding step (1-D arrays of n_vocab) or R steps scored at once ((R, n_vocab) arrays: teacher forcing).

    For R rows ``temperature``, ``js`` and ``n_removed`` hold one value per row and ``history`` one token
    sequence per row.  ``scores`` may be the very array ``lp_with`` (or, after ``fork``, another state's scores)
    until a processor writes to it: ``writable_scores`` and ``divide`` copy first.  Processors replace the other
    fields' values, never change them in place, so forked states share them safely."""

    lp_with: np.ndarray             # log-probs of the stream sampled from (plain decoding: the only stream)
    lp_without: np.ndarray | None   # log-probs of the stream without the instruction; None for plain decoding
    scores: np.ndarray              # the scores being built: softmax(scores) is the distribution
    temperature: float | np.ndarray = 1.0
    js: float | np.ndarray | None = None    # JS divergence of the two streams (computed by JsTemperature if not given)
    n_removed: int | np.ndarray = 0         # candidates removed by constraints
    history: Sequence = ()          # the answer's tokens so far (per row for R rows), for processors that look back
    borrowed: tuple = ()            # score arrays other states hold too (see ``fork``)

    @classmethod
    def of(cls, lp_with: np.ndarray, lp_without: np.ndarray | None = None, js=None, history: Sequence = ()):
        """The state before any processor: scores = ``lp_with``; with R rows, no removals yet in each row."""
        if lp_with.ndim == 2:
            return cls(lp_with, lp_without, lp_with, js=js, n_removed=np.zeros(lp_with.shape[0], dtype=np.int64),
                       history=history or ((),) * lp_with.shape[0])
        return cls(lp_with, lp_without, lp_with, js=js, history=history)

    @property
    def rows(self) -> bool:
        """True for (R, n_vocab) arrays (R steps at once), False for one step."""
        return self.lp_with.ndim == 2

    def _borrowed(self) -> bool:
        s = self.scores
        return s is self.lp_with or s is self.lp_without or any(s is b for b in self.borrowed)

    def writable_scores(self) -> np.ndarray:
        """``scores``, copied first if this state does not own them (never write to the streams' log-probs)."""
        if self._borrowed():
            self.scores = self.scores.copy()
        return self.scores

    def divide(self, t) -> None:
        """scores / t (in place once the scores are this state's own), and t is the step's temperature.  ``t``:
        one number, or one per row (float32 division, as for one step: numpy rounds a Python float to float32)."""
        d = t if np.ndim(t) == 0 else np.asarray(t, dtype=np.float32)[:, None]
        if self._borrowed():
            self.scores = self.scores / d
        else:
            self.scores /= d
        self.temperature = t

    def fork(self) -> "StepState":
        """A copy that shares every array: a processor applied to it copies the scores before writing."""
        return replace(self, borrowed=self.borrowed + (self.scores,))

    def info(self) -> StepInfo:
        if self.rows:
            raise ValueError("info() describes one step; this state holds several rows")
        return StepInfo(js=self.js, temperature=self.temperature, n_removed=self.n_removed)


class Processor:
    """One transform of a ``StepState`` (one step or R rows).  Subclasses validate their settings in
    ``__init__``; ``key`` says when two processors do the same thing (chains that share a prefix of equal
    processors are applied once up to it by ``apply_shared``)."""

    needs_both_streams: ClassVar[bool] = False

    def __call__(self, state: StepState) -> StepState:
        raise NotImplementedError

    @property
    def key(self) -> tuple:
        return (type(self).__name__, id(self))  # equal only to itself unless a subclass says what it does


def _positive(name: str, value: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return x


class Temperature(Processor):
    """scores / T with a fixed T (plain sampling at T0; T = 1 leaves the distribution as it is)."""

    def __init__(self, temperature: float):
        self.temperature = _positive("temperature", temperature)

    def __call__(self, state: StepState) -> StepState:
        if self.temperature == 1.0:  # x / 1 is x, exactly
            state.temperature = 1.0
        else:
            state.divide(self.temperature)
        return state

    @property
    def key(self) -> tuple:
        return ("Temperature", self.temperature)

    def __repr__(self) -> str:
        return f"Temperature({self.temperature:g})"


class Steer(Processor):
    """SDA steering: scores + k·λ·(lp_with − lp_without) (guidance γ = 1 + kλ when scores = lp_with)."""

    needs_both_streams = True
    clip: float | None = None

    def __init__(self, lam: float, k: float = 2.0):
        check_factor(lam, k)
        self.lam, self.k = float(lam), float(k)

    def __call__(self, state: StepState) -> StepState:
        state.scores = steer_add(state.scores, state.lp_with, state.lp_without, self.lam, self.k, self.clip)
        return state

    @property
    def key(self) -> tuple:
        return ("Steer", self.lam, self.k, self.clip)

    def __repr__(self) -> str:
        return f"Steer(λ={self.lam:g}, k={self.k:g})"


class BoundedSteer(Steer):
    """Bounded guidance: scores + k·λ·clip(lp_with − lp_without, −c, c).  A token the two streams rate very
    differently (above all one that copies the instruction's text, likely only with it) gets at most k·λ·c
    nats of lift, so steering cannot turn a long shot into a sure thing.  ``Steer`` is the c = ∞ case."""

    def __init__(self, lam: float, k: float = 2.0, clip: float = 2.0):
        super().__init__(lam, k)
        self.clip = _positive("guidance clip c", clip)

    def __repr__(self) -> str:
        return f"BoundedSteer(λ={self.lam:g}, k={self.k:g}, c={self.clip:g})"


LN2 = math.log(2.0)


def _per_row(state: StepState, f) -> float | np.ndarray:
    """``f(lp_with row, lp_without row)`` for one step, or an array of it for each row."""
    if not state.rows:
        return f(state.lp_with, state.lp_without)
    without = state.lp_without if state.lp_without is not None else (None,) * state.lp_with.shape[0]
    return np.array([f(a, b) for a, b in zip(state.lp_with, without)])


class AdaptiveSteer(Steer):
    """Adaptive guidance (AdaCAD, arXiv 2409.07394): each token's steering weight is the two (unconstrained)
    streams' Jensen–Shannon divergence in bits, JS/ln 2 ∈ [0, 1]: scores + k·λ·(JS/ln 2)·(lp_with − lp_without),
    bounded to ±c first when ``clip`` is given.  Where the streams agree the token is left as the instructed
    stream has it; where they disagree completely it gets the full k·λ.  (k = 2, λ = 0.5 is AdaCAD's own
    (1 + α)·z_with − α·z_without with α = JSD.)  The step's JS is kept for the temperature that follows."""

    def __init__(self, lam: float, k: float = 2.0, clip: float | None = None):
        super().__init__(lam, k)
        self.clip = None if clip is None else _positive("guidance clip c", clip)

    def __call__(self, state: StepState) -> StepState:
        if state.js is None:
            state.js = _per_row(state, js_from_logprobs)
        w = np.asarray(state.js, dtype=np.float64) / LN2
        factor = self.lam * (w[:, None] if state.rows else float(w))
        state.scores = steer_add(state.scores, state.lp_with, state.lp_without, factor, self.k, self.clip)
        return state

    @property
    def key(self) -> tuple:
        return ("AdaptiveSteer", self.lam, self.k, self.clip)

    def __repr__(self) -> str:
        c = "" if self.clip is None else f", c={self.clip:g}"
        return f"AdaptiveSteer(λ={self.lam:g}, k={self.k:g}{c}, ×JS/ln2)"


class JsTemperature(Processor):
    """scores / T(JS): the temperature shrinks as the two (unconstrained) streams disagree more."""

    needs_both_streams = True

    def __init__(self, t0: float, mode: str = "ln2"):
        if mode not in TEMPERATURE_MODES:
            raise ValueError(f"unknown temperature mode {mode!r}; choose one of {', '.join(TEMPERATURE_MODES)}")
        self.t0 = _positive("t0", t0)
        self.mode = mode

    def __call__(self, state: StepState) -> StepState:
        if state.js is None:
            state.js = _per_row(state, js_from_logprobs)
        if state.rows:
            state.divide(np.array([js_temperature(float(j), self.t0, self.mode) for j in state.js]))
        else:
            state.divide(js_temperature(state.js, self.t0, self.mode))
        return state

    @property
    def key(self) -> tuple:
        return ("JsTemperature", self.t0, self.mode)

    def __repr__(self) -> str:
        return f"JsTemperature(T0={self.t0:g}, {self.mode})"


class PlausibilityConstraint(Processor):
    """Contrastive decoding's plausibility constraint (Li et al. 2023): only tokens with p_with ≥ α·max p_with
    stay candidates (lp_with ≥ max lp_with + ln α, in float32); the others get score −inf.  α = 0 is off."""

    def __init__(self, alpha: float):
        try:
            a = float(alpha)
        except (TypeError, ValueError):
            raise ValueError(f"plausibility α must be a number in [0, 1), got {alpha!r}") from None
        if not 0.0 <= a < 1.0:  # also rejects NaN
            raise ValueError(f"plausibility α must be in [0, 1) (0 = off), got {alpha!r}")
        self.alpha = a

    def __call__(self, state: StepState) -> StepState:
        if self.alpha == 0.0:
            return state
        lp, ln_alpha = state.lp_with, math.log(self.alpha)
        if state.rows:
            threshold = np.array([np.float32(float(m) + ln_alpha) for m in lp.max(axis=1)], dtype=np.float32)
            removed = lp < threshold[:, None]
        else:
            removed = lp < np.float32(float(lp.max()) + ln_alpha)
        n = np.count_nonzero(removed, axis=-1)
        if np.any(n):
            state.writable_scores()[removed] = -np.inf
            state.n_removed = state.n_removed + (n if state.rows else int(n))
        return state

    @property
    def key(self) -> tuple:
        return ("PlausibilityConstraint", self.alpha)

    def __repr__(self) -> str:
        return f"PlausibilityConstraint(α={self.alpha:g})"


class EchoBlock(Processor):
    """No recitation of the instruction: when the answer's last ``n − 1`` tokens equal a run of the instruction's
    tokens, every token that would continue such a run to ``n`` tokens gets score −inf (an n-gram block against
    the instruction, like ``no_repeat_ngram_size`` against the answer itself).  Steering lifts exactly the
    instruction's tokens (likely with it, unlikely without), which is why a steered model can start reciting it.
    Never removes the last candidate."""

    def __init__(self, instruction_tokens: Sequence[int], n: int):
        if isinstance(n, bool) or int(n) != n or int(n) < 2:
            raise ValueError(f"echo block n must be a whole number ≥ 2 (the length of a forbidden run), got {n!r}")
        self.n = int(n)
        toks = [int(t) for t in instruction_tokens]
        self.next_tokens: dict[tuple[int, ...], set[int]] = {}
        for i in range(len(toks) - self.n + 1):
            self.next_tokens.setdefault(tuple(toks[i:i + self.n - 1]), set()).add(toks[i + self.n - 1])

    def banned(self, scores: np.ndarray, history: Sequence[int]) -> np.ndarray | None:
        """The still-possible tokens of one step (1-D ``scores``) that would continue a run of the instruction,
        or None when there are none or they are the only candidates left."""
        if len(history) < self.n - 1:
            return None
        banned = self.next_tokens.get(tuple(history[len(history) - self.n + 1:]))
        if not banned:
            return None
        idx = np.fromiter(banned, dtype=np.int64)
        live = idx[np.isfinite(scores[idx])]
        if not live.size or not np.isfinite(np.delete(scores, idx)).any():  # keep the last candidates
            return None
        return live

    def __call__(self, state: StepState) -> StepState:
        if not state.rows:
            idx = self.banned(state.scores, state.history)
            if idx is not None:
                state.writable_scores()[idx] = -np.inf
                state.n_removed += int(idx.size)
            return state
        removed = np.zeros(state.scores.shape[0], dtype=np.int64)
        for i, hist in enumerate(state.history):
            idx = self.banned(state.scores[i], hist)
            if idx is not None:
                state.writable_scores()[i, idx] = -np.inf
                removed[i] = idx.size
        state.n_removed = state.n_removed + removed
        return state

    def __repr__(self) -> str:
        return f"EchoBlock(n={self.n}, {len(self.next_tokens)} runs)"


class ProcessorChain:
    """Processors applied in order to one step's state; ``distribution`` is the whole step from logits."""

    def __init__(self, processors: Sequence[Processor]):
        procs = tuple(processors)
        for p in procs:
            if not isinstance(p, Processor):
                raise TypeError(f"not a Processor: {p!r}")
        if not procs:
            raise ValueError("a processor chain needs at least one processor")
        self.processors = procs
        self.two_streams = any(p.needs_both_streams for p in procs)

    def start(self, logits_with, logits_without=None, history: Sequence[int] = ()) -> StepState:
        """The initial state from raw logits (checked; NaN/Inf raise ``ValueError`` naming the stream) and the
        answer's tokens so far."""
        if not self.two_streams:
            if logits_without is not None:
                raise ValueError(f"{self!r} reads one stream, but two streams' logits were given")
            lp = log_softmax32(check_logits(logits_with, "logits"))
            return StepState(lp, None, lp, history=history)
        if logits_without is None:
            raise ValueError(f"{self!r} steers: it needs the logits of both streams")
        a, b = check_pair(logits_with, logits_without)
        lp = log_softmax32(a)
        return StepState(lp, log_softmax32(b), lp, history=history)

    def start_rows(self, logits_with, logits_without=None, history: Sequence = ()) -> StepState:
        """``start`` for R steps at once: (R, n_vocab) logits, each row checked and log-softmaxed as one step
        is (so every row's arithmetic is that of ``start``), and one history per row."""
        a = np.asarray(logits_with)
        b = None if logits_without is None else np.asarray(logits_without)
        if a.ndim != 2 or (b is not None and b.shape != a.shape):
            raise ValueError(f"expected (rows, n_vocab) logits for each stream, got {a.shape}"
                             + ("" if b is None else f" and {b.shape}"))
        states = [self.start(a[i], None if b is None else b[i]) for i in range(a.shape[0])]
        lw = np.stack([st.lp_with for st in states]) if states else np.empty(a.shape, np.float32)
        ln = None if b is None else (np.stack([st.lp_without for st in states]) if states else lw.copy())
        return StepState.of(lw, ln, history=history)

    def apply(self, state: StepState) -> StepState:
        for p in self.processors:
            state = p(state)
        return state

    def step(self, logits_with, logits_without=None, history: Sequence[int] = ()) -> tuple[np.ndarray, StepState]:
        """Like ``distribution``, with the final ``StepState`` (both streams' log-probs, scores, T, JS, removals)
        in place of its summary: what the token inspector (``core.top_k.top_k_lists``) reads."""
        state = self.apply(self.start(logits_with, logits_without, history))
        return softmax(state.scores), state

    def distribution(self, logits_with, logits_without=None, history: Sequence[int] = ()) -> tuple[np.ndarray, StepInfo]:
        """softmax of the processed scores, and the step's diagnostics."""
        state = self.apply(self.start(logits_with, logits_without, history))
        return softmax(state.scores), state.info()

    def __iter__(self):
        return iter(self.processors)

    def __len__(self) -> int:
        return len(self.processors)

    def __repr__(self) -> str:
        return "ProcessorChain[" + ", ".join(map(repr, self.processors)) + "]"


def apply_shared(chains: Sequence[ProcessorChain], state: StepState, *, depth: int = 0):
    """Every chain applied to ``state`` (which is left as it is), yielding (index, final state) in the chains'
    order of first difference; a prefix of equal processors (``Processor.key``) that several chains share is
    applied once and its result forked.  Each final state equals ``chain.apply(state)`` value for value."""
    groups: dict[tuple, list[int]] = {}
    done = []
    for j, chain in enumerate(chains):
        if depth == len(chain.processors):
            done.append(j)
        else:
            groups.setdefault(chain.processors[depth].key, []).append(j)
    for j in done:
        yield j, state
    for members in groups.values():
        after = chains[members[0]].processors[depth](state.fork())
        sub = [chains[j] for j in members]
        for i, final in apply_shared(sub, after, depth=depth + 1):
            yield members[i], final


def plain_chain(temperature: float, plausibility: float = 0.0, echo: EchoBlock | None = None) -> ProcessorChain:
    """Sampling one stream at a fixed temperature, optionally under the plausibility constraint and an echo
    block."""
    procs: list[Processor] = [PlausibilityConstraint(plausibility)] if plausibility else []
    return ProcessorChain(procs + ([echo] if echo else []) + [Temperature(temperature)])


def sda_chain(lam: float, *, k: float = 2.0, t0: float = 0.6, mode: str = "ln2",
              plausibility: float = 0.0, echo: EchoBlock | None = None, clip: float | None = None,
              adaptive: str = "off") -> ProcessorChain:
    """SDA: steer by λ (bounded to ±``clip`` per token when given; each token's weight scaled by the streams' JS
    divergence with ``adaptive="jsd"``), optionally constrain to the plausible tokens of the stream with the
    instruction, then divide by the JS temperature."""
    if adaptive not in ADAPTIVE_MODES:
        raise ValueError(f"adaptive guidance must be one of {', '.join(ADAPTIVE_MODES)}, got {adaptive!r}")
    if adaptive == "jsd":
        procs: list[Processor] = [AdaptiveSteer(lam, k, clip)]
    else:
        procs = [Steer(lam, k) if clip is None else BoundedSteer(lam, k, clip)]
    if plausibility:
        procs.append(PlausibilityConstraint(plausibility))
    if echo:
        procs.append(echo)
    return ProcessorChain(procs + [JsTemperature(t0, mode)])


def build_chain(params: SamplingParams, lam: float | None,
                instruction_tokens: Sequence[int] | None = None) -> ProcessorChain:
    """The chain that ``params`` describe: SDA with ``lam``, or plain decoding (``lam=None``).  The echo block
    (``params.echo_block``) needs the instruction's tokens; without them (no instruction) there is none."""
    echo = EchoBlock(instruction_tokens, params.echo_block) if params.echo_block and instruction_tokens else None
    if lam is None:
        return plain_chain(params.t0, params.plausibility, echo)
    return sda_chain(lam, k=params.k, t0=params.t0, mode=params.temperature_mode, plausibility=params.plausibility,
                     echo=echo, clip=params.guidance_clip, adaptive=params.adaptive_guidance)
