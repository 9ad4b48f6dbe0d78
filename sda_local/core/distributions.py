"""The distributions SDA and plain sampling draw from, as fused one-call functions (the fast reference path).

Every function takes 1-D float arrays of length n_vocab (raw next-token logits) and raises ``ValueError``
naming the offending stream when an array holds NaN or Inf.  The building blocks (validation, float32
log-softmax, JS from log-probs, the steering update) are public so that ``processors`` composes exactly the
same arithmetic step by step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax, softmax

from .params import TEMPERATURE_MODES

LN2 = math.log(2.0)
WITH_NAME = "logits_with (stream with instruction)"
WITHOUT_NAME = "logits_without (stream without instruction)"


# -- validation ------------------------------------------------------------------------------------------------

def check_logits(x, name: str) -> np.ndarray:
    """``x`` as an array, or ``ValueError`` naming ``name`` if it is not a non-empty 1-D finite float array."""
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


def check_pair(logits_with, logits_without) -> tuple[np.ndarray, np.ndarray]:
    a = check_logits(logits_with, WITH_NAME)
    b = check_logits(logits_without, WITHOUT_NAME)
    if a.shape != b.shape:
        raise ValueError(f"the two streams' logits differ in length: {a.size} vs {b.size}")
    return a, b


def check_factor(lam: float, k: float) -> None:
    if not math.isfinite(lam):
        raise ValueError(f"lam must be finite, got {lam!r}")
    if not math.isfinite(k):
        raise ValueError(f"k must be finite, got {k!r}")


# -- building blocks -------------------------------------------------------------------------------------------

def log_softmax32(x: np.ndarray) -> np.ndarray:
    """log_softmax in float32: llama.cpp's logits are float32, and float32 keeps a step well under 0.5 ms."""
    return log_softmax(x.astype(np.float32, copy=False))


def js_from_logprobs(lp: np.ndarray, lq: np.ndarray) -> float:
    """Jensen–Shannon divergence (natural log, in [0, ln 2]) of two distributions given as log-probs."""
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


def steer_add(scores: np.ndarray, lp: np.ndarray, lp_nc: np.ndarray, lam: float, k: float,
              clip: float | None = None) -> np.ndarray:
    """A new array ``scores + k·λ·(lp − lp_nc)`` (with ``scores = lp``: the SDA steering update); with ``clip``
    the difference is bounded to ±clip first (bounded guidance)."""
    d = lp - lp_nc
    if clip is not None:
        c = np.float32(clip) if d.dtype == np.float32 else clip
        np.clip(d, -c, c, out=d)
    d *= np.float32(k * lam) if d.dtype == np.float32 else k * lam
    d += scores
    return d


def log_softmax_at(scores: np.ndarray, y: int) -> float:
    """log softmax(scores)[y], stable, with the reduction in float64; −inf where ``scores[y]`` is −inf."""
    m = float(scores.max())
    return float(scores[y]) - m - float(np.log(np.exp(scores - m).sum(dtype=np.float64)))


# -- public functions ------------------------------------------------------------------------------------------

def js_divergence(logits_a, logits_b) -> float:
    """Jensen–Shannon divergence (natural log) between softmax(logits_a) and softmax(logits_b), in [0, ln 2]."""
    a = check_logits(logits_a, "logits_a")
    b = check_logits(logits_b, "logits_b")
    if a.shape != b.shape:
        raise ValueError(f"logits differ in length: {a.size} vs {b.size}")
    return js_from_logprobs(log_softmax32(a), log_softmax32(b))


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


def steer_logprobs(logits_with, logits_without, lam: float, k: float = 2.0) -> np.ndarray:
    """Steered scores s = lp + k·λ·(lp − lp_nc) with lp, lp_nc the log-softmax of each stream's logits."""
    a, b = check_pair(logits_with, logits_without)
    check_factor(lam, k)
    lp = log_softmax32(a)
    return steer_add(lp, lp, log_softmax32(b), lam, k)


@dataclass(frozen=True)
class StepInfo:
    """Diagnostics of one step: the streams' JS divergence (None for plain decoding), the temperature used,
    and how many tokens the plausibility constraint removed from the candidates."""

    js: float | None
    temperature: float
    n_removed: int = 0


def sda_distribution(
    logits_with,
    logits_without,
    lam: float,
    k: float = 2.0,
    t0: float = 0.6,
    temperature_mode: str = "ln2",
) -> tuple[np.ndarray, StepInfo]:
    """The distribution SDA samples from: softmax(steer_logprobs(...) / T(JS)).  Returns (probs, info)."""
    a, b = check_pair(logits_with, logits_without)
    check_factor(lam, k)
    lp = log_softmax32(a)
    lp_nc = log_softmax32(b)
    js = js_from_logprobs(lp, lp_nc)
    t = js_temperature(js, t0, temperature_mode)
    s = steer_add(lp, lp, lp_nc, lam, k)
    s /= t
    return softmax(s), StepInfo(js=js, temperature=t)


def plain_distribution(logits, t0: float = 0.6) -> np.ndarray:
    """Ordinary temperature sampling distribution softmax(log_softmax(z) / T0) — SDA with λ = 0, T-mode "off"."""
    a = check_logits(logits, "logits")
    t = js_temperature(0.0, t0, "off")
    lp = log_softmax32(a)
    lp /= t
    return softmax(lp)
