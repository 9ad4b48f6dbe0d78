"""The SDA and plain-sampling steps written as one fused function each, straight from the formulas: the
reference the processor chains (``sda_local.core.processors``) are checked against, value for value.  Test
code only; the engine and the scorers run the chains."""
from __future__ import annotations

import numpy as np
from scipy.special import softmax

from sda_local.core.distributions import (
    StepInfo,
    check_factor,
    check_logits,
    check_pair,
    js_from_logprobs,
    js_temperature,
    log_softmax32,
    steer_add,
)


def js_divergence(logits_a, logits_b) -> float:
    """Jensen–Shannon divergence (natural log) between softmax(logits_a) and softmax(logits_b), in [0, ln 2]."""
    a = check_logits(logits_a, "logits_a")
    b = check_logits(logits_b, "logits_b")
    if a.shape != b.shape:
        raise ValueError(f"logits differ in length: {a.size} vs {b.size}")
    return js_from_logprobs(log_softmax32(a), log_softmax32(b))


def steer_logprobs(logits_with, logits_without, lam: float, k: float = 2.0) -> np.ndarray:
    """Steered scores s = lp + k·λ·(lp − lp_nc) with lp, lp_nc the log-softmax of each stream's logits."""
    a, b = check_pair(logits_with, logits_without)
    check_factor(lam, k)
    lp = log_softmax32(a)
    return steer_add(lp, lp, log_softmax32(b), lam, k)


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
