"""Judge-free metrics and per-token scoring on hand-built inputs with known answers (no model)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fused as reference
from scoring_support import answer_logprobs
from sda_local.evaluation import metrics
from sda_local.evaluation.token_logprobs import (
    Setting,
    default_settings,
)

# -- MC1 ------------------------------------------------------------------------------------------------------

def test_mc1_best_answer_wins_by_mean_not_total():
    best = [-1.0, -1.0, -1.0, -1.0]          # total -4, mean -1
    short_wrong = [-2.0]                     # total -2 (higher), mean -2 (lower)
    assert metrics.mc1(best, [short_wrong]) == 1.0


def test_mc1_any_incorrect_answer_above_the_best_is_a_miss():
    assert metrics.mc1([-1.0, -2.0], [[-3.0], [-1.4]]) == 0.0   # mean -1.5 < -1.4
    assert metrics.mc1([-1.0, -2.0], [[-3.0], [-1.6]]) == 1.0


def test_mc1_tie_is_a_miss():
    assert metrics.mc1([-1.0, -3.0], [[-2.0]]) == 0.0


# -- MC2 ------------------------------------------------------------------------------------------------------

def test_mc2_is_normalised_mass_on_correct_answers():
    # totals: correct log 0.3 and log 0.1; incorrect log 0.1 → (0.3 + 0.1) / 0.5 = 0.8
    correct = [[math.log(0.3)], [math.log(0.5), math.log(0.2)]]
    incorrect = [[math.log(0.1)]]
    assert metrics.mc2(correct, incorrect) == pytest.approx(0.8)


def test_mc2_uses_total_log_prob_and_is_stable_for_very_unlikely_answers():
    correct = [[-500.0, -500.0]]                 # total -1000
    incorrect = [[-1000.0 - math.log(3)]]        # three times less likely
    assert metrics.mc2(correct, incorrect) == pytest.approx(0.75)


def test_mc2_extremes():
    assert metrics.mc2([[-0.01]], [[-50.0]]) == pytest.approx(1.0, abs=1e-12)
    assert metrics.mc2([[-50.0]], [[-0.01]]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("bad", [[], [[]], [[0.5]], [[float("nan")]], [[float("inf")]]])
def test_metrics_reject_bad_inputs(bad):
    with pytest.raises(ValueError):
        metrics.mc2(bad, [[-1.0]])


def test_an_impossible_answer_has_probability_zero():
    impossible = [-1.0, -float("inf")]  # a token the scored distribution can never draw
    assert metrics.mc2([impossible], [[-5.0]]) == 0.0
    assert metrics.mc2([[-5.0]], [impossible]) == pytest.approx(1.0)
    assert metrics.mc2([impossible], [impossible]) == 0.0
    assert metrics.mc1(impossible, [[-5.0]]) == 0.0 and metrics.mc1([-5.0], [impossible]) == 1.0


# -- rates and paired changes ------------------------------------------------------------------------------------

def test_rate_and_wilson_interval():
    r = metrics.rate([True, False, False, True])
    assert (r["k"], r["n"], r["rate"]) == (2, 4, 0.5)
    lo, hi = r["ci95"]
    assert 0.1 < lo < 0.5 < hi < 0.9
    assert metrics.wilson_interval(0, 10)[0] == 0.0 and metrics.wilson_interval(10, 10)[1] == 1.0


def _wilson_by_hand(k: int, n: int, z: float) -> tuple[float, float]:
    """The textbook Wilson score interval (what metrics.wilson_interval computed before it used scipy)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def test_wilson_interval_equals_the_textbook_formula():
    z = 1.959963984540054  # the 97.5 % normal quantile
    for n in (1, 2, 7, 30, 316):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            assert metrics.wilson_interval(k, n) == pytest.approx(_wilson_by_hand(k, n, z), abs=1e-12)
    # by hand: k = 2, n = 4 → centre 0.5, half = z·√(1/16 + z²/64) / (1 + z²/4) = 0.3504…
    lo, hi = metrics.wilson_interval(2, 4)
    assert (lo, hi) == pytest.approx((0.15003898915214947, 0.8499610108478506), abs=1e-12)
    lo90, hi90 = metrics.wilson_interval(2, 4, confidence=0.90)
    assert lo < lo90 < hi90 < hi
    with pytest.raises(ValueError, match="k=5, n=4"):
        metrics.wilson_interval(5, 4)
    with pytest.raises(ValueError, match="n=0"):
        metrics.wilson_interval(0, 0)


def test_paired_flips_and_sign_test():
    f = metrics.paired_flips([0, 0, 1, 1, 0], [1, 1, 1, 0, 0])
    assert (f["up"], f["down"]) == (2, 1)
    assert f["sign_test_p"] == pytest.approx(1.0)
    assert metrics.sign_test_p(10, 0) == pytest.approx(2 / 1024)
    assert metrics.sign_test_p(1, 7) == pytest.approx(2 * (1 + 8) / 256)  # 2·P(X ≤ 1), X ~ Bin(8, ½)
    assert metrics.sign_test_p(0, 0) == 1.0
    assert metrics.mean_se([1.0, 1.0, 1.0]) == (1.0, 0.0)


def test_sign_test_equals_the_exact_binomial_sum():
    for up in range(25):
        for down in range(25):
            n, k = up + down, min(up, down)
            by_hand = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
            assert metrics.sign_test_p(up, down) == pytest.approx(by_hand, abs=1e-12)


# -- per-token log-probs: the same distributions the samplers draw from -----------------------------------------

def _rows(n=3, v=50, seed=0):
    rng = np.random.default_rng(seed)
    zw = (rng.standard_normal((n, v)) * 3).astype(np.float32)
    zn = (zw + rng.standard_normal((n, v)).astype(np.float32)).astype(np.float32)
    return zw, zn, rng.integers(0, v, n)


def test_sda_settings_equal_the_log_of_core_sda_distribution():
    zw, zn, y = _rows()
    settings = default_settings((0.25, 1.0), ("ln2", "sharp", "off"))
    lp, js = answer_logprobs(zw, zn, y, settings, k=2.0, t0=0.6)
    for j, s in enumerate(settings):
        for i in range(len(y)):
            if s.kind == "sda":
                probs, info = reference.sda_distribution(zw[i], zn[i], s.lam, 2.0, 0.6, s.mode)
                assert js[i] == pytest.approx(info.js, abs=1e-7)
            else:
                z = zw[i] if s.kind == "instruction" else zn[i]
                probs = reference.plain_distribution(z, 1.0 if s.temperature == 1.0 else 0.6)
            assert lp[j, i] == pytest.approx(math.log(float(probs[y[i]])), abs=2e-4), (s.name, i)


def test_lambda_zero_without_schedule_is_instruction_only():
    zw, zn, y = _rows(seed=3)
    s = [Setting("instruction T0", "instruction"), Setting("sda 0 off", "sda", lam=0.0, mode="off")]
    lp, _ = answer_logprobs(zw, zn, y, s)
    np.testing.assert_allclose(lp[0], lp[1], atol=1e-5)


def test_identical_streams_make_steering_a_no_op():
    zw, _, y = _rows(seed=4)
    s = [Setting("instruction T0", "instruction"), Setting("sda 1 off", "sda", lam=1.0, mode="off"),
         Setting("sda 1 ln2", "sda", lam=1.0, mode="ln2")]
    lp, js = answer_logprobs(zw, zw.copy(), y, s)
    np.testing.assert_allclose(js, 0.0, atol=1e-7)
    np.testing.assert_allclose(lp[0], lp[1], atol=1e-5)
    np.testing.assert_allclose(lp[0], lp[2], atol=1e-5)   # JS = 0 → T = T0 under "ln2" too


def test_steering_raises_the_token_the_instruction_favours():
    v = 10
    zn = np.zeros((1, v), np.float32)
    zw = zn.copy()
    zw[0, 3] = 1.0                     # the instruction stream prefers token 3 a little
    s = [Setting(f"l{lam}", "sda", lam=lam, mode="off") for lam in (0.0, 0.5, 1.0)]
    lp, _ = answer_logprobs(zw, zn, [3], s)
    assert lp[0, 0] < lp[1, 0] < lp[2, 0]


def test_default_settings_grid():
    names = [s.name for s in default_settings()]
    assert names[:4] == ["base T=1", "instruction T=1", "base T0", "instruction T0"]
    assert "sda λ=0.00 off" not in names and "sda λ=0.00 ln2" in names
    assert len(names) == 4 + 3 * 5 - 1
    with pytest.raises(ValueError):
        default_settings(modes=("cold",))


def test_answer_logprobs_checks_shapes():
    zw, zn, y = _rows()
    with pytest.raises(ValueError):
        answer_logprobs(zw, zn[:2], y, default_settings())
    with pytest.raises(ValueError):
        answer_logprobs(zw, zn, [0, 1, 999], default_settings())
