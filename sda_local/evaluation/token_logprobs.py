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

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import core
from ..core.distributions import js_from_logprobs

PLAIN_KINDS = ("base", "instruction")
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
    clip: float | None = None         # sda settings: bounded guidance ±c (None = off)

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
            return core.sda_chain(self.lam, k=k, t0=t0, mode=self.mode, plausibility=self.plausibility,
                                  clip=self.clip)
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


def edge_logprobs(logits_with: np.ndarray, logits_without: np.ndarray, rows: np.ndarray, targets: np.ndarray,
                  settings: Sequence[Setting], *, k: float = 2.0, t0: float = 0.6,
                  block_elems: int = BLOCK_ELEMS, n_threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Log-prob of ``targets[e]`` after logits row ``rows[e]`` (float64, −inf where a plausibility constraint
    rules the token out) under each setting (shape (len(settings), len(rows))), and the JS divergence of each
    logits row.  ``logits_with`` / ``logits_without``: shape (n, n_vocab), the two streams' logits.

    The settings' processor chains (``Setting.chain``, the chains the engine samples with) run over blocks of
    rows ((rows, n_vocab) states, cache-sized), then ``core.target_logprobs``; what settings share is done
    once (``core.apply_shared``): each row's log-softmax and JS, a λ's steered scores for every α and
    temperature mode, an α's constrained scores for every mode.
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
    chains = [s.chain(k=k, t0=t0) for s in settings]  # validates each setting as the chains do
    by_root: dict[str, list[int]] = {}
    for j, s in enumerate(settings):
        by_root.setdefault(s.kind, []).append(j)
    n_rows, n_vocab = zw.shape
    out = np.empty((len(settings), tg.size), dtype=np.float64)
    js_all = np.zeros(n_rows, dtype=np.float64)
    order = np.argsort(rows, kind="stable")
    starts = np.searchsorted(rows[order], np.arange(n_rows + 1))
    step = max(1, int(block_elems) // max(1, n_vocab))

    def score_block(r0: int) -> None:
        r1 = min(n_rows, r0 + step)
        sel = order[starts[r0]:starts[r1]]
        roots = _roots(zw[r0:r1], zn[r0:r1])
        js_all[r0:r1] = roots["sda"].js
        for kind, members in by_root.items():
            for i, final in core.apply_shared([chains[j] for j in members], roots[kind]):
                out[members[i], sel] = core.target_logprobs(final.scores, tg[sel], rows[sel] - r0)

    blocks = range(0, n_rows, step)
    if n_threads > 1 and len(blocks) > 1:
        with ThreadPoolExecutor(min(int(n_threads), len(blocks))) as pool:
            list(pool.map(score_block, blocks))  # list(): re-raise a block's error here
    else:
        for r0 in blocks:
            score_block(r0)
    return out, js_all


def _roots(zw: np.ndarray, zn: np.ndarray) -> dict[str, core.StepState]:
    """The states a block of rows starts from, one per setting kind: SDA reads both streams (their JS computed
    once), "instruction" the stream with the instruction, "base" the one without."""
    both = core.sda_chain(0.0).start_rows(zw, zn)
    both.js = np.array([js_from_logprobs(a, b) for a, b in zip(both.lp_with, both.lp_without)])
    return {"sda": both, "instruction": core.StepState.of(both.lp_with),
            "base": core.StepState.of(both.lp_without)}
