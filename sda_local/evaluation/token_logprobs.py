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

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import core
from ..core.distributions import (
    check_pair,
    js_from_logprobs,
    js_temperature,
    log_softmax32,
)

PLAIN_KINDS = ("base", "instruction")
EXP_FLOOR = np.float32(-87.33)  # exp(x) for x below is subnormal or 0 in float32 (smallest normal: e^−87.336)
BLOCK_ELEMS = 1 << 18  # floats per work array of a row block (about 1 MB: the arrays stay in cache)


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
    zw, zn = np.asarray(logits_with), np.asarray(logits_without)
    tg = np.asarray(targets, dtype=np.int64)
    if zw.ndim != 2 or zw.shape != zn.shape or zw.shape[0] != tg.size:
        raise ValueError(f"logits must both be (n, n_vocab) with n = len(targets); got {zw.shape}, {zn.shape}, "
                         f"{tg.size} targets")
    return edge_logprobs(zw, zn, np.arange(tg.size), tg, settings, k=k, t0=t0)


def edge_logprobs(logits_with: np.ndarray, logits_without: np.ndarray, rows: np.ndarray, targets: np.ndarray,
                  settings: Sequence[Setting], *, k: float = 2.0, t0: float = 0.6,
                  block_elems: int = BLOCK_ELEMS, n_threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``answer_logprobs`` for (row, target) pairs: log-prob of ``targets[e]`` after logits row ``rows[e]``, under
    each setting (shape (len(settings), len(rows))), and the JS divergence of each logits row.

    The arithmetic is that of each setting's processor chain (``Setting.chain``) followed by
    ``core.log_softmax_at``, value for value; what is shared is done once: each row's log-softmax, JS and
    steering difference for all settings, the steered scores of a λ for all temperature modes, the
    log-sum-exp of a row for all its targets (the rows of a block at once, in float32 as the chains do).
    ``n_threads`` > 1 scores row blocks in parallel (numpy releases the GIL; each block's arithmetic is the same).
    """
    zw, zn = np.asarray(logits_with), np.asarray(logits_without)
    rows, tg = np.asarray(rows, dtype=np.int64), np.asarray(targets, dtype=np.int64)
    if zw.ndim != 2 or zw.shape != zn.shape or rows.shape != tg.shape:
        raise ValueError(f"logits must both be (n, n_vocab) and rows, targets of one length; got {zw.shape}, "
                         f"{zn.shape}, {rows.shape}, {tg.shape}")
    if tg.size and (tg.min() < 0 or tg.max() >= zw.shape[1]):
        raise ValueError("a target token id is outside the vocabulary")
    if rows.size and (rows.min() < 0 or rows.max() >= zw.shape[0]):
        raise ValueError("a row index is outside the logits")
    plan = _Plan.of(settings, k=k, t0=t0)
    n_rows, n_vocab = zw.shape
    out = np.empty((len(settings), tg.size), dtype=np.float64)
    js_all = np.zeros(n_rows, dtype=np.float64)
    order = np.argsort(rows, kind="stable")
    starts = np.searchsorted(rows[order], np.arange(n_rows + 1))
    step = max(1, int(block_elems) // max(1, n_vocab))

    def score_block(r0: int) -> None:
        r1 = min(n_rows, r0 + step)
        sel = order[starts[r0]:starts[r1]]
        blk = _Block(zw[r0:r1], zn[r0:r1], rows[sel] - r0, tg[sel])
        js_all[r0:r1] = blk.js
        for j, vals in plan.run(blk, t0):
            out[j, sel] = vals

    blocks = range(0, n_rows, step)
    if n_threads > 1 and len(blocks) > 1:
        with ThreadPoolExecutor(min(int(n_threads), len(blocks))) as pool:
            list(pool.map(score_block, blocks))  # list(): re-raise a block's error here
    else:
        for r0 in blocks:
            score_block(r0)
    return out, js_all


class _Block:
    """Rows of both streams' logits, their float32 log-softmax and JS, and the (row, target) pairs to score."""

    def __init__(self, zw: np.ndarray, zn: np.ndarray, r: np.ndarray, tg: np.ndarray):
        n = zw.shape[0]
        self.lw = np.empty(zw.shape, dtype=np.float32)
        self.ln = np.empty(zw.shape, dtype=np.float32)
        self.js = np.empty(n, dtype=np.float64)
        for i in range(n):
            a, b = check_pair(zw[i], zn[i])
            self.lw[i], self.ln[i] = log_softmax32(a), log_softmax32(b)
            self.js[i] = js_from_logprobs(self.lw[i], self.ln[i])
        self.r, self.tg = r, tg
        self.buf = np.empty(zw.shape, dtype=np.float32)
        self.buf2 = np.empty(zw.shape, dtype=np.float32)
        self.small = np.empty(zw.shape, dtype=bool)

    def mask(self, scores: np.ndarray, lp: np.ndarray, alpha: float) -> np.ndarray:
        """``PlausibilityConstraint(alpha)`` on each row: −inf where lp < max lp + ln α (a new array)."""
        if not alpha:
            return scores
        thr = np.array([np.float32(float(m) + math.log(alpha)) for m in lp.max(axis=1)], dtype=np.float32)
        out = scores.copy()
        out[lp < thr[:, None]] = -np.inf
        return out

    def at(self, scores: np.ndarray, temps: np.ndarray | None, row_max: np.ndarray | None = None) -> np.ndarray:
        """``log_softmax_at(scores_row / t_row, y)`` for every pair (float32 division, float64 reduction).
        ``row_max``: max of each row of ``scores`` when known (the max of ``scores / t`` follows: rounding is
        monotonic)."""
        x = scores if temps is None else np.divide(scores, temps[:, None], out=self.buf2)
        if row_max is None:
            m = x.max(axis=1)
        else:
            m = row_max if temps is None else (row_max / temps).astype(np.float32)
        np.subtract(x, m[:, None], out=self.buf)
        # exp of these is subnormal (or 0) in float32, and a subnormal result makes exp ~10× slower; their sum
        # (< n_vocab · 1.2e-38) vanishes next to the row's largest term, exp(0) = 1, in the float64 sum
        np.less(self.buf, EXP_FLOOR, out=self.small)
        np.copyto(self.buf, -np.inf, where=self.small)
        np.exp(self.buf, out=self.buf)
        lse = np.log(self.buf.sum(axis=1, dtype=np.float64))
        return (x[self.r, self.tg].astype(np.float64) - m[self.r].astype(np.float64)) - lse[self.r]


@dataclass
class _Plan:
    """The settings grouped by what they share: plain ones by stream, SDA ones by λ, then α."""

    plain: list[tuple[int, str, float, float]]                    # (index, kind, T, α)
    sda: dict[float, dict[float, list[tuple[int, str]]]]          # λ → α → [(index, mode)]
    k: float

    @classmethod
    def of(cls, settings: Sequence[Setting], *, k: float, t0: float) -> "_Plan":
        plain, sda = [], {}
        for j, s in enumerate(settings):
            s.chain(k=k, t0=t0)  # validates the setting as the chains do (kind, λ, k, T0, mode, α)
            if s.kind == "sda":
                sda.setdefault(float(s.lam), {}).setdefault(float(s.plausibility), []).append((j, s.mode))
            else:
                plain.append((j, s.kind, t0 if s.temperature is None else float(s.temperature), s.plausibility))
        return cls(plain, sda, float(k))

    def run(self, blk: _Block, t0: float):
        """(setting index, values of every pair of the block) for every setting."""
        for j, kind, t, alpha in self.plain:
            lp = blk.lw if kind == "instruction" else blk.ln
            temps = None if t == 1.0 else np.full(lp.shape[0], t, dtype=np.float32)
            yield j, blk.at(blk.mask(lp, lp, alpha), temps)
        if not self.sda:
            return
        diff = blk.lw - blk.ln
        for lam, by_alpha in self.sda.items():
            steered = diff * (np.float32(self.k * lam))
            steered += blk.lw
            for alpha, group in by_alpha.items():
                scores = blk.mask(steered, blk.lw, alpha)
                row_max = None if alpha else scores.max(axis=1)
                for j, mode in group:
                    temps = np.array([js_temperature(float(js), t0, mode) for js in blk.js], dtype=np.float32)
                    yield j, blk.at(scores, temps, row_max)
