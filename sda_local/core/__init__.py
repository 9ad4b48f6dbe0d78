"""SDA math: pure numpy, no I/O and no llama.cpp.

Every function takes 1-D float arrays of length n_vocab (raw next-token logits) and raises ``ValueError``
naming the offending stream when an array holds NaN or Inf.  The formulas follow arXiv 2511.16324; see
``README.md`` for a summary.

    lp     = log_softmax(z_with)          lp_nc = log_softmax(z_without)
    s      = lp + k·λ·(lp − lp_nc)        (k = 2)
    JS     = JSD(softmax(z_with), softmax(z_without))   natural log, in [0, ln 2]
    T      = T0 · 0.5^(JS / (2 ln 2))     ("ln2"), or max(0.2, T0 · 0.5^(JS / 0.01)) ("sharp"), or T0 ("off")
    probs  = softmax(s / T)               → nucleus (top-p) sampling
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import log_softmax, softmax

from .params import TEMPERATURE_MODES, Option, SamplingParams, sampling_options

__all__ = [
    "LAMBDA_MAPPINGS",
    "TEMPERATURE_MODES",
    "SamplingParams",
    "Option",
    "sampling_options",
    "StepInfo",
    "lambda_from_score",
    "js_divergence",
    "js_temperature",
    "steer_logprobs",
    "sda_distribution",
    "plain_distribution",
    "sample_top_p",
]

LN2 = math.log(2.0)

# ---------------------------------------------------------------------------------------------------------
# score -> λ
# ---------------------------------------------------------------------------------------------------------


def _sigmoid(s: float) -> float:
    return 2.0 * (1.0 / (1.0 + math.exp(1.0 - 100.0 / s)) - 0.5)


LAMBDA_MAPPINGS: dict[str, Callable[[float], float]] = {
    "exp_shifted": lambda s: math.exp(-s / 100.0 - 1.0),
    "exp": lambda s: math.exp(-s / 100.0),
    "inverse": lambda s: 100.0 / s,
    "linear_signed": lambda s: 1.0 - 2.0 * s / 100.0,
    "sigmoid": _sigmoid,
    "linear": lambda s: 1.0 - s / 100.0,
    "cosine": lambda s: math.cos(s * math.pi / 200.0),
}


def lambda_from_score(score: float, mapping: str = "sigmoid") -> float:
    """Map an evaluator score in [1, 100] to the amplifying factor λ (poor answer → strong steering)."""
    try:
        fn = LAMBDA_MAPPINGS[mapping]
    except KeyError:
        raise ValueError(f"unknown λ mapping {mapping!r}; choose one of {', '.join(LAMBDA_MAPPINGS)}") from None
    try:
        s = float(score)
    except (TypeError, ValueError):
        raise ValueError(f"score must be a number in [1, 100], got {score!r}") from None
    if not (1.0 <= s <= 100.0):  # also rejects NaN
        raise ValueError(f"score must be in [1, 100], got {score!r}")
    return float(fn(s))


# ---------------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------------


def _check_logits(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array of logits, got shape {a.shape}")
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected float logits, got dtype {a.dtype}")
    # fast path: one BLAS pass; a NaN/Inf anywhere (or an overflow) makes a·a non-finite
    if not np.isfinite(np.dot(a, a)) and not np.isfinite(a).all():
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise ValueError(f"{name}: {bad} of {a.size} logits are NaN or Inf")
    return a


def _check_pair(logits_with, logits_without) -> tuple[np.ndarray, np.ndarray]:
    a = _check_logits(logits_with, "logits_with (stream with instruction)")
    b = _check_logits(logits_without, "logits_without (stream without instruction)")
    if a.shape != b.shape:
        raise ValueError(f"the two streams' logits differ in length: {a.size} vs {b.size}")
    return a, b


# ---------------------------------------------------------------------------------------------------------
# divergence and temperature
# ---------------------------------------------------------------------------------------------------------


def _js_from_logprobs(lp: np.ndarray, lq: np.ndarray) -> float:
    p = np.exp(lp)
    q = np.exp(lq)
    log_m = p + q
    log_m *= 0.5
    # 0 · log 0 = 0: where m underflows to 0, p and q are 0 as well.
    np.maximum(log_m, np.finfo(log_m.dtype).tiny, out=log_m)
    np.log(log_m, out=log_m)
    d = lp - log_m
    kl_p = float(np.dot(p, d))
    np.subtract(lq, log_m, out=d)
    js = 0.5 * (kl_p + float(np.dot(q, d)))
    return min(max(js, 0.0), LN2)


def _lsm(x: np.ndarray) -> np.ndarray:
    """log_softmax in float32: llama.cpp's logits are float32, and float32 keeps a step well under 0.5 ms."""
    return log_softmax(x.astype(np.float32, copy=False))


def js_divergence(logits_a, logits_b) -> float:
    """Jensen–Shannon divergence (natural log) between softmax(logits_a) and softmax(logits_b), in [0, ln 2]."""
    a = _check_logits(logits_a, "logits_a")
    b = _check_logits(logits_b, "logits_b")
    if a.shape != b.shape:
        raise ValueError(f"logits differ in length: {a.size} vs {b.size}")
    return _js_from_logprobs(_lsm(a), _lsm(b))




def js_temperature(js: float, t0: float, mode: str = "ln2") -> float:
    """Temperature that shrinks as the two streams disagree more.

    ``"ln2"``: T0·0.5^(JS/(2 ln 2)) ∈ [T0/√2, T0];  ``"sharp"``: max(0.2, T0·0.5^(JS/0.01));  ``"off"``: T0.
    """
    if not (math.isfinite(t0) and t0 > 0):
        raise ValueError(f"t0 must be a positive number, got {t0!r}")
    if not math.isfinite(js) or js < -1e-12 or js > LN2 + 1e-9:
        raise ValueError(f"js must lie in [0, ln 2], got {js!r}")
    js = min(max(js, 0.0), LN2)
    if mode == "ln2":
        return t0 * 0.5 ** (js / (2.0 * LN2))
    if mode == "sharp":
        return max(0.2, t0 * 0.5 ** (js / 0.01))
    if mode == "off":
        return float(t0)
    raise ValueError(f"unknown temperature mode {mode!r}; choose one of {', '.join(TEMPERATURE_MODES)}")


# ---------------------------------------------------------------------------------------------------------
# steering
# ---------------------------------------------------------------------------------------------------------


def _steer(lp: np.ndarray, lp_nc: np.ndarray, lam: float, k: float) -> np.ndarray:
    d = lp - lp_nc
    d *= np.float32(k * lam) if d.dtype == np.float32 else k * lam
    d += lp
    return d


def _check_factor(lam: float, k: float) -> None:
    if not math.isfinite(lam):
        raise ValueError(f"lam must be finite, got {lam!r}")
    if not math.isfinite(k):
        raise ValueError(f"k must be finite, got {k!r}")


def steer_logprobs(logits_with, logits_without, lam: float, k: float = 2.0) -> np.ndarray:
    """Steered scores s = lp + k·λ·(lp − lp_nc) with lp, lp_nc the log-softmax of each stream's logits."""
    a, b = _check_pair(logits_with, logits_without)
    _check_factor(lam, k)
    return _steer(_lsm(a), _lsm(b), lam, k)


@dataclass(frozen=True)
class StepInfo:
    """Diagnostics of one SDA step."""

    js: float
    temperature: float


def sda_distribution(
    logits_with,
    logits_without,
    lam: float,
    k: float = 2.0,
    t0: float = 0.6,
    temperature_mode: str = "ln2",
) -> tuple[np.ndarray, StepInfo]:
    """The distribution SDA samples from: softmax(steer_logprobs(...) / T(JS)).  Returns (probs, info)."""
    a, b = _check_pair(logits_with, logits_without)
    _check_factor(lam, k)
    lp = _lsm(a)
    lp_nc = _lsm(b)
    js = _js_from_logprobs(lp, lp_nc)
    t = js_temperature(js, t0, temperature_mode)
    s = _steer(lp, lp_nc, lam, k)
    s /= t
    return softmax(s), StepInfo(js=js, temperature=t)


def plain_distribution(logits, t0: float = 0.6) -> np.ndarray:
    """Ordinary temperature sampling distribution softmax(log_softmax(z) / T0) — SDA with λ = 0, T-mode "off"."""
    a = _check_logits(logits, "logits")
    t = js_temperature(0.0, t0, "off")
    lp = _lsm(a)
    lp /= t
    return softmax(lp)


# ---------------------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------------------

def _ranked(probs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """idx ordered by probability (descending), ties by token id (ascending): deterministic."""
    return idx[np.lexsort((idx, -probs[idx]))]


def sample_top_p(probs, top_p: float, rng: np.random.Generator) -> int:
    """Nucleus sampling: draw from the smallest set of most-probable tokens whose mass reaches ``top_p``.

    Uses exactly one ``rng.random()`` draw per call.  ``top_p >= 1`` keeps every token.  Equal probabilities
    are ordered by token id, so the result depends only on ``probs``, ``top_p`` and the generator state.
    """
    p = np.asarray(probs)
    if p.ndim != 1 or p.size == 0 or p.dtype.kind != "f":
        raise ValueError(f"probs: expected a non-empty 1-D float array, got shape {p.shape}, dtype {p.dtype}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs must be finite and non-negative")
    total = float(p.sum(dtype=np.float64))
    if not total > 0:
        raise ValueError("probs sum to zero")
    if math.isnan(top_p) or not top_p > 0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    u = rng.random()
    if top_p >= 1.0:
        c = np.cumsum(p, dtype=np.float64)
        return int(min(np.searchsorted(c, u * c[-1], side="right"), p.size - 1))
    # The tokens with p >= tau are a prefix of the ranking; once their mass reaches top_p the nucleus lies
    # inside them, so only they need sorting.  Lower tau until that holds (a full sort at worst).
    target = top_p * total
    tau = float(p.max()) * 1e-3
    while True:
        cand = np.flatnonzero(p >= tau) if tau > 0 else np.arange(p.size)
        if tau <= 0 or float(p[cand].sum(dtype=np.float64)) >= target:
            break
        tau = tau * 1e-3 if tau > 1e-30 else 0.0
    order = _ranked(p, cand)
    c = np.cumsum(p[order], dtype=np.float64)
    n_keep = int(min(np.searchsorted(c, target * (1 - 1e-12), side="left") + 1, order.size))
    c = c[:n_keep]
    j = int(min(np.searchsorted(c, u * c[-1], side="right"), n_keep - 1))
    return int(order[j])
