"""core.py: hand-computed cases, every λ mapping, and properties over arbitrary finite logits."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fused as reference
from sda_local import core

LN2 = math.log(2)


def lsm(x):
    x = np.asarray(x, np.float64)
    return x - math.log(np.exp(x - x.max()).sum()) - x.max()


def smx(x):
    e = np.exp(np.asarray(x, np.float64) - np.max(x))
    return e / e.sum()


# -- λ mappings --------------------------------------------------------------------------------------------
EXPECTED = {  # s = 1, 50, 100, computed by hand from the formulas in methods.md
    "exp_shifted": (math.exp(-0.01 - 1), math.exp(-1.5), math.exp(-2)),
    "exp": (math.exp(-0.01), math.exp(-0.5), math.exp(-1)),
    "inverse": (100.0, 2.0, 1.0),
    "linear_signed": (0.98, 0.0, -1.0),
    "sigmoid": (2 * (1 / (1 + math.exp(1 - 100)) - 0.5), 2 * (1 / (1 + math.exp(-1)) - 0.5), 0.0),
    "linear": (0.99, 0.5, 0.0),
    "cosine": (math.cos(math.pi / 200), math.cos(math.pi / 4), math.cos(math.pi / 2)),
}


def test_seven_mappings_are_exactly_the_documented_ones():
    assert set(core.LAMBDA_MAPPINGS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("i,s", [(0, 1), (1, 50), (2, 100)])
def test_mapping_values(name, i, s):
    assert core.lambda_from_score(s, name) == pytest.approx(EXPECTED[name][i], abs=1e-12)


def test_sigmoid_reference_points_from_the_paper():
    assert core.lambda_from_score(25) == pytest.approx(0.905, abs=1e-3)
    assert core.lambda_from_score(50) == pytest.approx(0.462, abs=1e-3)
    assert core.lambda_from_score(75) == pytest.approx(0.165, abs=1e-3)
    assert core.lambda_from_score(100) == 0.0


@pytest.mark.parametrize("bad", [0, 0.99, 100.01, 101, -5, float("nan"), float("inf"), "abc", None])
def test_score_outside_range_is_rejected(bad):
    with pytest.raises(ValueError):
        core.lambda_from_score(bad)


def test_unknown_mapping_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="sigmoid"):
        core.lambda_from_score(50, "quadratic")


# -- JS divergence and temperature -------------------------------------------------------------------------
def test_js_hand_computed():
    a = np.array([0.0, 0.0])          # p = (1/2, 1/2)
    b = np.array([math.log(3), 0.0])  # q = (3/4, 1/4)
    p, q, m = np.array([0.5, 0.5]), np.array([0.75, 0.25]), np.array([0.625, 0.375])
    expected = 0.5 * (p * np.log(p / m)).sum() + 0.5 * (q * np.log(q / m)).sum()
    assert reference.js_divergence(a, b) == pytest.approx(expected, abs=1e-6)


def test_js_of_disjoint_distributions_is_ln2():
    a = np.array([100.0, -100.0])
    b = np.array([-100.0, 100.0])
    assert reference.js_divergence(a, b) == pytest.approx(LN2, abs=1e-6)


def test_temperature_modes():
    assert core.js_temperature(0.0, 0.6, "ln2") == pytest.approx(0.6)
    assert core.js_temperature(LN2, 0.6, "ln2") == pytest.approx(0.6 / math.sqrt(2))
    assert core.js_temperature(0.01, 0.6, "sharp") == pytest.approx(0.3)
    assert core.js_temperature(0.5, 0.6, "sharp") == 0.2
    assert core.js_temperature(0.3, 0.6, "off") == 0.6
    with pytest.raises(ValueError, match="mode"):
        core.js_temperature(0.1, 0.6, "cold")
    with pytest.raises(ValueError):
        core.js_temperature(0.1, 0.0)
    with pytest.raises(ValueError):
        core.js_temperature(1.0, 0.6)  # JS above ln 2 is impossible


# -- steering ----------------------------------------------------------------------------------------------
def test_steer_by_hand_with_k_lambda_one():
    zw, zn = np.array([2.0, 1.0, 0.0]), np.array([0.0, 1.0, 2.0])
    lp, lq = lsm(zw), lsm(zn)
    expected = lp + 1.0 * (lp - lq)  # k·λ = 1
    np.testing.assert_allclose(reference.steer_logprobs(zw, zn, lam=0.5, k=2.0), expected, atol=1e-5)


def test_lambda_zero_gives_softmax_of_lp_with_over_t():
    zw, zn = np.array([3.0, 1.0, -2.0, 0.5]), np.array([0.0, 2.0, 1.0, -1.0])
    probs, info = reference.sda_distribution(zw, zn, lam=0.0, t0=0.6, temperature_mode="ln2")
    np.testing.assert_allclose(probs, smx(lsm(zw) / info.temperature), atol=1e-6)
    assert 0.6 / math.sqrt(2) <= info.temperature <= 0.6


def test_sda_distribution_matches_formula_by_hand():
    zw, zn = np.array([1.0, 2.0, 0.0, -1.0]), np.array([2.0, 1.0, 0.0, 0.0])
    lp, lq = lsm(zw), lsm(zn)
    p, q = np.exp(lp), np.exp(lq)
    m = (p + q) / 2
    js = 0.5 * (p * np.log(p / m)).sum() + 0.5 * (q * np.log(q / m)).sum()
    t = 0.6 * 0.5 ** (js / (2 * LN2))
    expected = smx((lp + 2 * 0.3 * (lp - lq)) / t)
    probs, info = reference.sda_distribution(zw, zn, lam=0.3, k=2.0, t0=0.6)
    assert info.js == pytest.approx(js, abs=1e-6)
    assert info.temperature == pytest.approx(t, abs=1e-6)
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_nan_and_inf_name_the_stream():
    good = np.zeros(5)
    bad = np.array([0.0, np.nan, 1.0, np.inf, 0.0])
    with pytest.raises(ValueError, match=r"logits_with \(stream with instruction\): 2 of 5"):
        reference.sda_distribution(bad, good, 0.5)
    with pytest.raises(ValueError, match=r"logits_without \(stream without instruction\): 2 of 5"):
        reference.sda_distribution(good, bad, 0.5)
    with pytest.raises(ValueError, match="logits_without"):
        reference.steer_logprobs(good, bad, 0.5)


def test_length_mismatch_and_shape_errors():
    with pytest.raises(ValueError, match="length"):
        reference.steer_logprobs(np.zeros(3), np.zeros(4), 0.5)
    with pytest.raises(ValueError, match="1-D"):
        reference.js_divergence(np.zeros((2, 2)), np.zeros((2, 2)))


# -- sampling ----------------------------------------------------------------------------------------------
def test_top_p_keeps_the_smallest_prefix_reaching_p():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    rng = np.random.default_rng(0)
    draws = {core.sample_top_p(probs, 0.8, rng) for _ in range(500)}
    assert draws == {0, 1}  # 0.5 + 0.3 reaches 0.8
    draws = {core.sample_top_p(probs, 0.81, rng) for _ in range(500)}
    assert draws == {0, 1, 2}


def test_top_p_one_keeps_everything_and_frequencies_match():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    rng = np.random.default_rng(1)
    counts = np.bincount([core.sample_top_p(probs, 1.0, rng) for _ in range(20000)], minlength=4) / 20000
    np.testing.assert_allclose(counts, probs, atol=0.015)


def test_ties_are_resolved_by_token_id():
    probs = np.array([0.2, 0.4, 0.4])  # tokens 1 and 2 tie; with top_p 0.4 only token 1 is kept
    rng = np.random.default_rng(2)
    assert {core.sample_top_p(probs, 0.4, rng) for _ in range(200)} == {1}


def test_sampling_is_reproducible_and_uses_one_draw():
    probs = reference.sda_distribution(np.random.default_rng(3).normal(size=1000),
                                  np.random.default_rng(4).normal(size=1000), 0.5)[0]
    a = [core.sample_top_p(probs, 0.95, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(a)) == 1
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    core.sample_top_p(probs, 0.9, g1)
    g2.random()
    assert g1.random() == g2.random()


def test_large_vocab_nucleus_matches_a_full_sort():
    rng = np.random.default_rng(5)
    for _ in range(20):
        z = rng.normal(size=50000) * rng.uniform(0.5, 4)
        probs = reference.plain_distribution(z, 1.0)
        order = np.lexsort((np.arange(probs.size), -probs.astype(np.float64)))
        c = np.cumsum(probs[order].astype(np.float64))
        n_keep = int(np.searchsorted(c, 0.9 * c[-1]) + 1)
        allowed = set(order[:n_keep].tolist())
        g = np.random.default_rng(0)
        assert all(core.sample_top_p(probs, 0.9, g) in allowed for _ in range(50))


def test_bad_probs_and_top_p():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        core.sample_top_p(np.array([0.5, np.nan]), 0.9, rng)
    with pytest.raises(ValueError):
        core.sample_top_p(np.array([0.0, 0.0]), 0.9, rng)
    with pytest.raises(ValueError):
        core.sample_top_p(np.array([0.5, 0.5]), 0.0, rng)


# -- properties --------------------------------------------------------------------------------------------
finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False, width=32)
vec = st.integers(min_value=1, max_value=64).flatmap(
    lambda n: st.tuples(arrays(np.float32, n, elements=finite), arrays(np.float32, n, elements=finite)))


@settings(max_examples=300, deadline=None)
@given(vec, st.floats(0, 1), st.sampled_from(core.TEMPERATURE_MODES))
def test_distribution_sums_to_one_without_nan(pair, lam, mode):
    a, b = pair
    probs, info = reference.sda_distribution(a, b, lam, temperature_mode=mode)
    assert np.isfinite(probs).all() and (probs >= 0).all()
    assert float(probs.sum(dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= info.js <= LN2
    assert info.temperature > 0
    tok = core.sample_top_p(probs, 0.95, np.random.default_rng(0))
    assert 0 <= tok < a.size


@settings(max_examples=300, deadline=None)
@given(vec)
def test_js_bounds_and_identity(pair):
    a, b = pair
    assert 0.0 <= reference.js_divergence(a, b) <= LN2
    assert reference.js_divergence(a, a) == pytest.approx(0.0, abs=1e-6)
    assert reference.js_divergence(a, b) == pytest.approx(reference.js_divergence(b, a), abs=1e-6)


# -- control vectors as data -------------------------------------------------------------------------------
def test_control_vectors_fill_the_models_buffer_and_refuse_another_models():
    data = np.arange(8, dtype=np.float32).reshape(2, 4)  # layers 1 and 2, n_embd 4
    cv = core.ControlVectors(data, layers=(1, 2), streams="both", description="v.gguf:0.5")
    buf = cv.buffer(n_layer=5, n_embd=4)
    assert buf.shape == (4, 4) and np.array_equal(buf[:2], data) and not buf[2:].any()
    assert cv.layer_range(5) == (1, 2) and core.ControlVectors(data).layer_range(5) == (1, 5)
    with pytest.raises(core.ControlVectorError, match="n_embd 4 but the model has 8"):
        cv.buffer(n_layer=5, n_embd=8)
    with pytest.raises(core.ControlVectorError, match="steer layer 2, but this model's steerable layers are 1..1"):
        cv.buffer(n_layer=2, n_embd=4)
    assert cv.to_dict() == {"description": "v.gguf:0.5", "layers": [1, 2], "streams": "both"}


@pytest.mark.parametrize("kw, match", [
    ({"data": np.zeros(4)}, "shape"),
    ({"data": np.array([[np.nan, 0.0]])}, "NaN"),
    ({"streams": "all"}, "'all'"),
    ({"layers": (3, 2)}, "3-2"),
    ({"layers": (0, 2)}, "start at 1"),
])
def test_control_vectors_refuse_bad_data(kw, match):
    args = {"data": np.ones((2, 4), np.float32), **kw}
    with pytest.raises(core.ControlVectorError, match=match):
        core.ControlVectors(**args)
