"""Per-token log-probabilities of a teacher-forced answer under each decoding setting (pure numpy).

A *setting* is one of the distributions sda-local can sample from, evaluated at a known next token y:

- ``plain`` on one stream at a fixed temperature T:  log softmax(lp / T)[y], with lp = log_softmax(z) of the
  stream "without" (base) or "with" (instruction-only) the instruction.  T = 1 is the model's own
  distribution (the usual TruthfulQA scoring); T = T0 is what plain sampling draws from.
- ``sda`` with (λ, temperature mode):  log softmax(s / T(JS))[y] with s = ``core.steer_logprobs`` and
  T = ``core.js_temperature(core.js_divergence(z, z_nc), T0, mode)`` — i.e. the log of the distribution
  ``core.sda_distribution`` returns (before top-p), computed in log space so that unlikely tokens do not
  underflow to log 0.  λ = 0 with mode "off" is exactly instruction-only plain sampling at T0.

The steering and temperature come from ``sda_local.core`` itself, so a score here is the probability the
sampler would give the reference token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.special import log_softmax

from .. import core


@dataclass(frozen=True)
class Setting:
    """One scoring distribution.  ``kind``: "base" / "instruction" (plain, at ``temperature``) or "sda"."""

    name: str
    kind: str
    temperature: float | None = None  # plain settings: fixed T (None = use t0)
    lam: float = 0.0                  # sda settings
    mode: str = "off"                 # sda settings: temperature schedule

    def describe(self) -> str:
        if self.kind == "sda":
            return f"SDA λ={self.lam:g}, T mode {self.mode}"
        t = "T0" if self.temperature is None else f"T={self.temperature:g}"
        what = "no instruction" if self.kind == "base" else "instruction in the prompt"
        return f"plain, {what}, {t}"


def setting_name(kind: str, *, lam: float = 0.0, mode: str = "off", temperature: float | None = None) -> str:
    if kind == "sda":
        return f"sda λ={lam:.2f} {mode}"
    return f"{kind} T=1" if temperature == 1.0 else f"{kind} T0"


def default_settings(lams: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
                     modes: Sequence[str] = core.TEMPERATURE_MODES, *, with_lambda_zero: bool = True) -> list[Setting]:
    """base/instruction at T=1 and at T0, then SDA for every (λ, mode); λ = 0 adds the schedule-only control."""
    out = [Setting(setting_name(k, temperature=t), k, temperature=t)
           for t in (1.0, None) for k in ("base", "instruction")]
    lam_list = sorted({0.0, *map(float, lams)}) if with_lambda_zero else sorted(set(map(float, lams)))
    for mode in modes:
        if mode not in core.TEMPERATURE_MODES:
            raise ValueError(f"unknown temperature mode {mode!r}; choose from {', '.join(core.TEMPERATURE_MODES)}")
        for lam in lam_list:
            if lam == 0.0 and mode == "off":
                continue  # identical to "instruction T0"
            out.append(Setting(setting_name("sda", lam=lam, mode=mode), "sda", lam=lam, mode=mode))
    return out


def _lsm(z: np.ndarray) -> np.ndarray:
    return log_softmax(np.asarray(z, dtype=np.float32))


def _logprob_at(x: np.ndarray, y: int, scale: float) -> float:
    """log softmax(x · scale)[y], stable, in float64 for the reduction."""
    xs = x * np.float32(scale)
    m = float(xs.max())
    return float(xs[y]) - m - float(np.log(np.exp(xs - m).sum(dtype=np.float64)))


def answer_logprobs(logits_with: np.ndarray, logits_without: np.ndarray, targets: Sequence[int],
                    settings: Sequence[Setting], *, k: float = 2.0, t0: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Log-prob of each target token under each setting, and the streams' JS divergence per position.

    ``logits_with`` / ``logits_without``: shape (n, n_vocab), row i = the stream's logits that predict
    ``targets[i]``.  Returns (array of shape (len(settings), n), float64; JS array of shape (n,)).
    """
    zw = np.asarray(logits_with)
    zn = np.asarray(logits_without)
    tg = np.asarray(targets, dtype=np.int64)
    if zw.ndim != 2 or zw.shape != zn.shape or zw.shape[0] != tg.size:
        raise ValueError(f"logits must both be (n, n_vocab) with n = len(targets); got {zw.shape}, {zn.shape}, "
                         f"{tg.size} targets")
    if tg.size and (tg.min() < 0 or tg.max() >= zw.shape[1]):
        raise ValueError("a target token id is outside the vocabulary")
    out = np.empty((len(settings), tg.size), dtype=np.float64)
    js_all = np.empty(tg.size, dtype=np.float64)
    sda_lams = sorted({s.lam for s in settings if s.kind == "sda"})
    for i in range(tg.size):
        y = int(tg[i])
        lp = {"instruction": _lsm(zw[i]), "base": _lsm(zn[i])}
        js = js_all[i] = core.js_divergence(zw[i], zn[i])
        steered = {lam: core.steer_logprobs(zw[i], zn[i], lam, k) for lam in sda_lams}
        for j, s in enumerate(settings):
            if s.kind == "sda":
                t = core.js_temperature(js, t0, s.mode)
                out[j, i] = _logprob_at(steered[s.lam], y, 1.0 / t)
            elif s.kind in lp:
                t = t0 if s.temperature is None else s.temperature
                out[j, i] = float(lp[s.kind][y]) if t == 1.0 else _logprob_at(lp[s.kind], y, 1.0 / t)
            else:
                raise ValueError(f"unknown setting kind {s.kind!r}")
    return out, js_all
