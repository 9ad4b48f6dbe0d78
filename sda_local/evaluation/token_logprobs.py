"""Per-token log-probabilities of a teacher-forced answer under each decoding setting (pure numpy).

A *setting* is one of the distributions sda-local can sample from, evaluated at a known next token y:

- ``plain`` on one stream at a fixed temperature T:  log softmax(lp / T)[y], with lp = log_softmax(z) of the
  stream "without" (base) or "with" (instruction-only) the instruction.  T = 1 is the model's own
  distribution (the usual TruthfulQA scoring); T = T0 is what plain sampling draws from.
- ``sda`` with (λ, temperature mode):  log softmax(s / T(JS))[y] with s = lp + k·λ·(lp − lp_nc) and T the
  JS temperature — the log of the distribution SDA samples from (before top-p), computed in log space so
  that unlikely tokens do not underflow to log 0.  λ = 0 with mode "off" is exactly instruction-only plain
  sampling at T0.
- either, with a plausibility constraint α > 0: tokens with p_with < α·max p_with are not candidates, so an
  answer that needs one gets log-prob −inf, as the sampler could never draw it.

Each setting is a ``core`` processor chain (``Setting.chain``), the same chains the engine samples with, so a
score here is the probability the sampler would give the reference token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import core
from ..core.distributions import check_pair, js_from_logprobs, log_softmax32

PLAIN_KINDS = ("base", "instruction")


@dataclass(frozen=True)
class Setting:
    """One scoring distribution.  ``kind``: "base" / "instruction" (plain, at ``temperature``) or "sda"."""

    name: str
    kind: str
    temperature: float | None = None  # plain settings: fixed T (None = use t0)
    lam: float = 0.0                  # sda settings
    mode: str = "off"                 # sda settings: temperature schedule
    plausibility: float = 0.0         # plausibility constraint α (0 = off)

    def describe(self) -> str:
        alpha = f", plausibility α={self.plausibility:g}" if self.plausibility else ""
        if self.kind == "sda":
            return f"SDA λ={self.lam:g}, T mode {self.mode}{alpha}"
        t = "T0" if self.temperature is None else f"T={self.temperature:g}"
        what = "no instruction" if self.kind == "base" else "instruction in the prompt"
        return f"plain, {what}, {t}{alpha}"

    def chain(self, *, k: float, t0: float) -> core.ProcessorChain:
        """The processor chain of this setting (what the engine would sample with)."""
        if self.kind == "sda":
            return core.sda_chain(self.lam, k=k, t0=t0, mode=self.mode, plausibility=self.plausibility)
        if self.kind in PLAIN_KINDS:
            return core.plain_chain(t0 if self.temperature is None else self.temperature, self.plausibility)
        raise ValueError(f"unknown setting kind {self.kind!r}; choose one of sda, {', '.join(PLAIN_KINDS)}")


def setting_name(kind: str, *, lam: float = 0.0, mode: str = "off", temperature: float | None = None,
                 plausibility: float = 0.0) -> str:
    alpha = f" α={plausibility:g}" if plausibility else ""
    if kind == "sda":
        return f"sda λ={lam:.2f} {mode}{alpha}"
    return (f"{kind} T=1" if temperature == 1.0 else f"{kind} T0") + alpha


def default_settings(lams: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
                     modes: Sequence[str] = core.TEMPERATURE_MODES, *, plausibilities: Sequence[float] = (0.0,),
                     with_lambda_zero: bool = True) -> list[Setting]:
    """base/instruction at T=1, then for each plausibility α (0, the unconstrained reference, always first):
    base/instruction at T0 and SDA for every (λ, mode); λ = 0 adds the schedule-only control."""
    for mode in modes:
        if mode not in core.TEMPERATURE_MODES:
            raise ValueError(f"unknown temperature mode {mode!r}; choose from {', '.join(core.TEMPERATURE_MODES)}")
    alphas = sorted({0.0, *(core.PlausibilityConstraint(a).alpha for a in plausibilities)})
    lam_list = sorted({0.0, *map(float, lams)}) if with_lambda_zero else sorted(set(map(float, lams)))
    out = [Setting(setting_name(k, temperature=1.0), k, temperature=1.0) for k in PLAIN_KINDS]
    for alpha in alphas:
        out += [Setting(setting_name(k, plausibility=alpha), k, plausibility=alpha) for k in PLAIN_KINDS]
        for mode in modes:
            for lam in lam_list:
                if lam == 0.0 and mode == "off":
                    continue  # identical to "instruction T0"
                out.append(Setting(setting_name("sda", lam=lam, mode=mode, plausibility=alpha), "sda", lam=lam,
                                   mode=mode, plausibility=alpha))
    return out


def answer_logprobs(logits_with: np.ndarray, logits_without: np.ndarray, targets: Sequence[int],
                    settings: Sequence[Setting], *, k: float = 2.0, t0: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Log-prob of each target token under each setting, and the streams' JS divergence per position.

    ``logits_with`` / ``logits_without``: shape (n, n_vocab), row i = the stream's logits that predict
    ``targets[i]``.  Returns (array of shape (len(settings), n), float64, −inf where a plausibility constraint
    rules the token out; JS array of shape (n,)).
    """
    zw = np.asarray(logits_with)
    zn = np.asarray(logits_without)
    tg = np.asarray(targets, dtype=np.int64)
    if zw.ndim != 2 or zw.shape != zn.shape or zw.shape[0] != tg.size:
        raise ValueError(f"logits must both be (n, n_vocab) with n = len(targets); got {zw.shape}, {zn.shape}, "
                         f"{tg.size} targets")
    if tg.size and (tg.min() < 0 or tg.max() >= zw.shape[1]):
        raise ValueError("a target token id is outside the vocabulary")
    chains = [s.chain(k=k, t0=t0) for s in settings]
    out = np.empty((len(settings), tg.size), dtype=np.float64)
    js_all = np.empty(tg.size, dtype=np.float64)
    for i in range(tg.size):
        y = int(tg[i])
        a, b = check_pair(zw[i], zn[i])
        lw, ln = log_softmax32(a), log_softmax32(b)
        js = js_all[i] = js_from_logprobs(lw, ln)
        for j, (s, chain) in enumerate(zip(settings, chains)):
            if s.kind == "sda":
                state = core.StepState(lw, ln, lw, js=js)
            else:
                lp = lw if s.kind == "instruction" else ln
                state = core.StepState(lp, None, lp)
            out[j, i] = core.log_softmax_at(chain.apply(state).scores, y)
    return out, js_all
