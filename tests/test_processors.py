"""core.processors: hand-computed cases for each processor, and the chains against the fused fast path."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fused as reference
from sda_local import core
from sda_local.core import (
    JsTemperature,
    PlausibilityConstraint,
    ProcessorChain,
    SamplingParams,
    Steer,
    StepState,
    Temperature,
    build_chain,
    plain_chain,
    sda_chain,
)

LN2 = math.log(2)


def state_of(p_with, p_without=None) -> StepState:
    lw = np.log(np.asarray(p_with, np.float32))
    ln = None if p_without is None else np.log(np.asarray(p_without, np.float32))
    return StepState(lw, ln, lw)


# -- one processor at a time, by hand -----------------------------------------------------------------------------

def test_temperature_divides_the_scores_and_leaves_the_log_probs_alone():
    s = state_of([0.5, 0.25, 0.25])
    before = s.lp_with.copy()
    Temperature(0.5)(s)
    np.testing.assert_allclose(s.scores, 2 * np.log([0.5, 0.25, 0.25]), rtol=1e-6)
    assert s.temperature == 0.5
    assert np.array_equal(s.lp_with, before)


def test_steer_adds_k_lambda_times_the_difference():
    s = state_of([0.5, 0.25, 0.25], [0.25, 0.25, 0.5])
    Steer(0.5, k=2.0)(s)  # k·λ = 1: s = 2·lp_with − lp_without
    expected = 2 * np.log([0.5, 0.25, 0.25]) - np.log([0.25, 0.25, 0.5])
    np.testing.assert_allclose(s.scores, expected, rtol=1e-6)
    assert np.array_equal(s.lp_with, np.log(np.float32([0.5, 0.25, 0.25])))


def test_js_temperature_uses_the_streams_divergence():
    p, q = np.array([0.5, 0.5]), np.array([0.75, 0.25])
    m = (p + q) / 2
    js = 0.5 * (p * np.log(p / m)).sum() + 0.5 * (q * np.log(q / m)).sum()
    s = state_of(p, q)
    JsTemperature(0.6, "ln2")(s)
    assert s.js == pytest.approx(js, abs=1e-6)
    assert s.temperature == pytest.approx(0.6 * 0.5 ** (js / (2 * LN2)), abs=1e-6)
    np.testing.assert_allclose(s.scores, np.log(p) / s.temperature, rtol=1e-5)


def test_plausibility_on_a_four_token_vocabulary():
    # p_with = (0.5, 0.3, 0.15, 0.05); α = 0.2 keeps p ≥ 0.1: tokens 0, 1, 2
    probs, info = plain_chain(1.0, plausibility=0.2).distribution(np.log(np.float32([0.5, 0.3, 0.15, 0.05])))
    np.testing.assert_allclose(probs, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0], atol=1e-6)
    assert probs[3] == 0.0 and info.n_removed == 1
    # α = 0.5 keeps p ≥ 0.25: tokens 0, 1
    probs, info = plain_chain(1.0, plausibility=0.5).distribution(np.log(np.float32([0.5, 0.3, 0.15, 0.05])))
    np.testing.assert_allclose(probs, [0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0], atol=1e-6)
    assert info.n_removed == 2


def test_plausibility_follows_the_stream_with_the_instruction_even_where_steering_would_raise_a_token():
    p_with = [0.6, 0.3, 0.08, 0.02]
    p_without = [0.6, 0.3, 0.0799, 0.0001]  # steering pushes token 3 far up …
    zw, zn = np.log(np.float32(p_with)), np.log(np.float32(p_without))
    free, _ = sda_chain(3.0, t0=1.0, mode="off").distribution(zw, zn)
    assert free[3] > free[2]
    probs, info = sda_chain(3.0, t0=1.0, mode="off", plausibility=0.1).distribution(zw, zn)
    assert probs[3] == 0.0 and info.n_removed == 1  # … but p_with(3) < 0.1 · 0.6 ≤ p_with(2)
    np.testing.assert_allclose(probs[:3], free[:3] / free[:3].sum(), rtol=1e-5)


def test_js_temperature_is_computed_from_the_unconstrained_distributions():
    zw = np.float32([3.0, 1.0, -2.0, 0.5, -4.0])
    zn = np.float32([0.0, 2.0, 1.0, -1.0, 3.0])
    _, info = sda_chain(0.5, plausibility=0.3).distribution(zw, zn)
    _, fused = reference.sda_distribution(zw, zn, 0.5)
    assert info.n_removed > 0
    assert info.js == fused.js == reference.js_divergence(zw, zn)
    assert info.temperature == fused.temperature


def test_alpha_zero_is_off_and_leaves_the_state_untouched():
    s = state_of([0.5, 0.3, 0.2])
    scores = s.scores
    PlausibilityConstraint(0.0)(s)
    assert s.scores is scores and s.n_removed == 0
    assert repr(build_chain(SamplingParams(plausibility=0.0), 0.5)) == \
        "ProcessorChain[Steer(λ=0.5, k=2), JsTemperature(T0=0.6, ln2)]"
    assert repr(build_chain(SamplingParams(), None)) == "ProcessorChain[Temperature(0.6)]"
    assert repr(build_chain(SamplingParams(plausibility=0.1, t0=0.8), None)) == \
        "ProcessorChain[PlausibilityConstraint(α=0.1), Temperature(0.8)]"


def test_the_most_probable_token_always_stays_a_candidate():
    z = np.float32([0.0, 0.0, 0.0])  # a three-way tie: α close to 1 keeps all of them
    probs, info = plain_chain(1.0, plausibility=0.99).distribution(z)
    np.testing.assert_allclose(probs, [1 / 3] * 3, rtol=1e-6)
    assert info.n_removed == 0


# -- validation ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda: Temperature(0.0), "temperature must be a positive number, got 0.0"),
    (lambda: Temperature(float("nan")), "temperature must be a positive number, got nan"),
    (lambda: Temperature("warm"), "temperature must be a positive number, got 'warm'"),
    (lambda: Steer(float("inf")), "lam must be finite, got inf"),
    (lambda: Steer(0.5, k=float("nan")), "k must be finite, got nan"),
    (lambda: JsTemperature(0.6, "cold"), "unknown temperature mode 'cold'; choose one of ln2, sharp, off"),
    (lambda: JsTemperature(-1.0), "t0 must be a positive number, got -1.0"),
    (lambda: PlausibilityConstraint(1.0), r"plausibility α must be in \[0, 1\) \(0 = off\), got 1.0"),
    (lambda: PlausibilityConstraint(-0.1), r"got -0.1"),
    (lambda: PlausibilityConstraint(float("nan")), r"got nan"),
    (lambda: PlausibilityConstraint("x"), "must be a number in"),
    (lambda: ProcessorChain([]), "at least one processor"),
])
def test_bad_settings_are_refused_with_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_chains_check_their_inputs():
    with pytest.raises(TypeError, match="not a Processor"):
        ProcessorChain([lambda s: s])
    with pytest.raises(ValueError, match="needs the logits of both streams"):
        sda_chain(0.5).distribution(np.zeros(4))
    with pytest.raises(ValueError, match="reads one stream"):
        plain_chain(0.6).distribution(np.zeros(4), np.zeros(4))
    bad = np.array([0.0, np.nan, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"logits_without \(stream without instruction\): 1 of 4"):
        sda_chain(0.5).distribution(np.zeros(4), bad)
    with pytest.raises(ValueError, match="logits: 1 of 4"):
        plain_chain(0.6).distribution(bad)


# -- the chains equal the fused path ------------------------------------------------------------------------------

finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False, width=32)
vec = st.integers(min_value=1, max_value=64).flatmap(
    lambda n: st.tuples(arrays(np.float32, n, elements=finite), arrays(np.float32, n, elements=finite)))


@settings(max_examples=300, deadline=None)
@given(vec, st.floats(-1, 3), st.floats(0, 4), st.floats(0.05, 2), st.sampled_from(core.TEMPERATURE_MODES))
def test_sda_chain_equals_the_fused_distribution(pair, lam, k, t0, mode):
    a, b = pair
    fused, finfo = reference.sda_distribution(a, b, lam, k, t0, mode)
    params = SamplingParams(k=k, t0=t0, temperature_mode=mode)
    probs, info = build_chain(params, lam).distribution(a, b)
    np.testing.assert_allclose(probs, fused, rtol=0, atol=1e-6)
    assert np.array_equal(probs, fused)  # the same arithmetic: bit-identical
    assert (info.js, info.temperature, info.n_removed) == (finfo.js, finfo.temperature, 0)


@settings(max_examples=300, deadline=None)
@given(vec, st.floats(0.05, 2))
def test_plain_chain_equals_the_fused_distribution(pair, t0):
    a, _ = pair
    fused = reference.plain_distribution(a, t0)
    probs, info = build_chain(SamplingParams(t0=t0), None).distribution(a)
    np.testing.assert_allclose(probs, fused, rtol=0, atol=1e-6)
    assert np.array_equal(probs, fused)
    assert info.js is None and info.temperature == t0


@settings(max_examples=200, deadline=None)
@given(vec, st.floats(0.01, 0.9), st.floats(0, 1))
def test_plausibility_keeps_exactly_the_plausible_tokens_and_renormalises(pair, alpha, lam):
    a, b = pair
    probs, info = sda_chain(lam, plausibility=alpha).distribution(a, b)
    lp = core.distributions.log_softmax32(a).astype(np.float64)
    margin = lp - (lp.max() + math.log(alpha))
    assert np.all(probs[margin < -1e-4] == 0.0)
    assert np.count_nonzero(margin < -1e-4) <= info.n_removed <= np.count_nonzero(margin < 1e-4)
    assert float(probs.sum(dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)


def test_echo_block_by_hand():
    from sda_local.core import EchoBlock, StepState

    instr = [7, 8, 9, 7, 8, 5]               # runs of 3: (7,8,9) (8,9,7) (9,7,8) (7,8,5)
    block = EchoBlock(instr, 3)
    lp = np.log(np.full(10, 0.1, dtype=np.float32))
    s = block(StepState(lp, None, lp, history=[1, 7, 8]))  # (7, 8) continues to 9 or to 5
    assert sorted(np.flatnonzero(~np.isfinite(s.scores))) == [5, 9] and s.n_removed == 2
    assert np.isfinite(lp).all()             # the stream's log-probs are never written
    s = block(StepState(lp, None, lp, history=[8, 9]))
    assert list(np.flatnonzero(~np.isfinite(s.scores))) == [7]
    s = block(StepState(lp, None, lp, history=[9]))  # too short to match a run
    assert np.isfinite(s.scores).all() and s.n_removed == 0
    only = np.full(10, -np.inf, dtype=np.float32)
    only[9] = 0.0
    s = block(StepState(only, None, only, history=[7, 8]))  # never removes the last candidate
    assert np.isfinite(s.scores[9])
    with pytest.raises(ValueError, match="≥ 2"):
        EchoBlock(instr, 1)


def test_build_chain_adds_the_echo_block_only_with_an_instruction():
    from sda_local.core import EchoBlock, SamplingParams, build_chain

    p = SamplingParams(echo_block=4)
    assert any(isinstance(x, EchoBlock) for x in build_chain(p, 0.5, [1, 2, 3, 4, 5]))
    assert any(isinstance(x, EchoBlock) for x in build_chain(p, None, [1, 2, 3, 4, 5]))
    assert not any(isinstance(x, EchoBlock) for x in build_chain(p, 0.5, None))
    assert not any(isinstance(x, EchoBlock) for x in build_chain(SamplingParams(), 0.5, [1, 2, 3, 4, 5]))
    with pytest.raises(ValueError, match="echo_block"):
        SamplingParams(echo_block=1).check()


# -- the same chain over (rows, vocab): teacher forcing scores many steps at once -----------------------------------

rows_of = st.integers(1, 4).flatmap(lambda r: st.integers(2, 40).flatmap(lambda n: st.tuples(
    arrays(np.float32, (r, n), elements=finite), arrays(np.float32, (r, n), elements=finite),
    st.lists(st.lists(st.integers(0, n - 1), max_size=4), min_size=r, max_size=r))))
chain_settings = st.tuples(st.floats(-1, 3), st.floats(0, 4), st.floats(0.05, 2),
                           st.sampled_from(core.TEMPERATURE_MODES), st.sampled_from([0.0, 0.05, 0.3]),
                           st.sampled_from([None, 0.5, 2.0]), st.sampled_from([0, 2, 3]), st.booleans())


def _chain(n_vocab, lam, k, t0, mode, alpha, clip, echo_n, plain) -> ProcessorChain:
    echo = core.EchoBlock([i % n_vocab for i in range(1, 9)], echo_n) if echo_n else None
    if plain:
        return plain_chain(t0, alpha, echo)
    return sda_chain(lam, k=k, t0=t0, mode=mode, plausibility=alpha, echo=echo, clip=clip)


@settings(max_examples=300, deadline=None)
@given(rows_of, chain_settings)
def test_a_chain_over_rows_equals_the_chain_on_each_row_bit_for_bit(data, setting):
    a, b, histories = data
    chain = _chain(a.shape[1], *setting)
    plain = not chain.two_streams
    state = chain.apply(chain.start_rows(a, None if plain else b, history=histories))
    for i in range(a.shape[0]):
        one = chain.apply(chain.start(a[i], None if plain else b[i], history=histories[i]))
        assert np.array_equal(state.scores[i], one.scores)  # −inf where a constraint removed a token
        assert np.array_equal(state.lp_with[i], one.lp_with)
        assert np.broadcast_to(state.temperature, a.shape[:1])[i] == one.temperature  # one T, or one per row
        assert int(state.n_removed[i]) == one.n_removed
        assert (state.js is None and one.js is None) or state.js[i] == one.js
    got = core.target_logprobs(state.scores, np.zeros(a.shape[0], dtype=np.int64))
    want = [core.target_logprobs(chain.apply(chain.start(a[i], None if plain else b[i], history=histories[i]))
                                 .scores[None], [0])[0] for i in range(a.shape[0])]
    assert np.array_equal(got, want)


@settings(max_examples=100, deadline=None)
@given(rows_of, st.lists(chain_settings, min_size=1, max_size=6))
def test_chains_applied_together_share_their_prefix_and_give_what_each_gives_alone(data, many):
    a, b, histories = data
    chains = [_chain(a.shape[1], *s[:-1], False) for s in many]  # all SDA: one root state
    root = chains[0].start_rows(a, b, history=histories)
    before = root.scores.copy()
    seen = {}
    for j, final in core.apply_shared(chains, root):
        seen[j] = final.scores.copy()
    assert sorted(seen) == list(range(len(chains)))
    for j, chain in enumerate(chains):
        alone = chain.apply(chain.start_rows(a, b, history=histories))
        assert np.array_equal(seen[j], alone.scores)
    assert np.array_equal(root.scores, before) and root.scores is root.lp_with  # the root is left as it was


def test_equal_processors_are_applied_once():
    calls = []

    class Counting(core.Processor):
        def __call__(self, state):
            calls.append(1)
            return state

        @property
        def key(self):
            return ("Counting",)

    shared = [Counting(), Steer(0.5)]
    chains = [ProcessorChain(shared + [JsTemperature(0.6, m)]) for m in core.TEMPERATURE_MODES]
    lw = np.log(np.full((2, 4), 0.25, np.float32))
    out = dict(core.apply_shared(chains + [ProcessorChain([Temperature(0.7)])], StepState.of(lw, lw.copy())))
    assert len(out) == 4 and len(calls) == 1
    assert out[3].temperature == 0.7 and out[0].temperature.shape == (2,)


# -- adaptive guidance (AdaCAD): the step's weight from the streams' JS divergence ---------------------------------

def test_adaptive_steer_scales_each_tokens_guidance_by_the_js_divergence_in_bits():
    p, q = np.array([0.5, 0.5]), np.array([0.75, 0.25])
    m = (p + q) / 2
    js = 0.5 * (p * np.log(p / m)).sum() + 0.5 * (q * np.log(q / m)).sum()  # nats
    s = state_of(p, q)
    core.AdaptiveSteer(0.5, k=2.0)(s)  # k·λ = 1, times JS/ln2
    expected = np.log(p) + (js / LN2) * (np.log(p) - np.log(q))
    np.testing.assert_allclose(s.scores, expected, rtol=1e-5)
    assert s.js == pytest.approx(js, abs=1e-6)  # kept for the temperature


def test_adaptive_steer_leaves_agreeing_streams_alone_and_bounds_with_a_clip():
    same = state_of([0.7, 0.2, 0.1], [0.7, 0.2, 0.1])
    core.AdaptiveSteer(0.9, k=2.0)(same)
    np.testing.assert_allclose(same.scores, np.log(np.float32([0.7, 0.2, 0.1])), rtol=1e-6)  # JS = 0: no lift
    p, q = np.array([0.9, 0.05, 0.05]), np.array([0.05, 0.05, 0.9])
    s = state_of(p, q)
    core.AdaptiveSteer(0.5, k=2.0, clip=1.0)(s)
    w = s.js / LN2
    np.testing.assert_allclose(s.scores, np.log(p) + w * np.clip(np.log(p) - np.log(q), -1, 1), rtol=1e-5)


def test_adaptive_chain_rows_equal_steps_and_off_is_the_plain_sda_chain():
    rng = np.random.default_rng(5)
    zw, zn = rng.normal(size=(4, 16)).astype(np.float32), rng.normal(size=(4, 16)).astype(np.float32)
    params = SamplingParams(adaptive_guidance="jsd", guidance_clip=3.0)
    chain = build_chain(params, 0.75)
    assert isinstance(chain.processors[0], core.AdaptiveSteer)
    rows = chain.apply(chain.start_rows(zw, zn))
    for i in range(4):
        one = chain.apply(chain.start(zw[i], zn[i]))
        np.testing.assert_array_equal(rows.scores[i], one.scores)
        assert rows.temperature[i] == pytest.approx(one.temperature)
    off = build_chain(SamplingParams(), 0.75)
    assert [type(p) for p in off] == [Steer, JsTemperature]  # off: the paper's chain, unchanged
    with pytest.raises(ValueError, match="adaptive_guidance"):
        SamplingParams(adaptive_guidance="sometimes").check()
