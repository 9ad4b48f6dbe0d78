"""The arithmetic of one decoding step, in pieces the processors (``processors``) compose: validation of the
logits (``ValueError`` naming the offending stream on NaN or Inf), float32 log-softmax, JS divergence from
log-probs, the steering update, the JS temperature schedule, and the log-prob of target tokens over rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax

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


EXP_FLOOR32 = np.float32(-87.33)  # exp(x) for x below is subnormal or 0 in float32 (smallest normal: e^−87.336)


def target_logprobs(scores: np.ndarray, targets, rows=None) -> np.ndarray:
    """log softmax(scores[rows[e]])[targets[e]] for every e (float64), ``scores`` of shape (R, n_vocab); without
    ``rows``, row e scores target e.  Max and exp in the scores' dtype, the sum in float64; −inf where the
    target's score is −inf.  (In float32 the terms whose exp would be subnormal are dropped: they cannot change a
    float64 sum that holds exp(0) = 1, and a subnormal result makes exp about ten times slower.)"""
    x = np.asarray(scores)
    tg = np.asarray(targets, dtype=np.int64)
    r = np.arange(tg.size) if rows is None else np.asarray(rows, dtype=np.int64)
    if x.ndim != 2 or r.shape != tg.shape or (rows is None and x.shape[0] != tg.size):
        raise ValueError(f"scores {x.shape} do not match {tg.size} targets")
    m = x.max(axis=1)
    d = x - m[:, None]
    if d.dtype == np.float32:
        d[d < EXP_FLOOR32] = -np.inf
    lse = np.log(np.exp(d, out=d).sum(axis=1, dtype=np.float64))
    return (x[r, tg].astype(np.float64) - m[r].astype(np.float64)) - lse[r]


# -- the temperature schedule -----------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class StepInfo:
    """Diagnostics of one step: the streams' JS divergence (None for plain decoding), the temperature used,
    and how many tokens the plausibility constraint removed from the candidates."""

    js: float | None
    temperature: float
    n_removed: int = 0
