"""The token inspector's top-k lists: pure numpy against a full sort, and on a real engine (tiny GGUF): the lists
come with each token when asked, match the step's distributions, and change nothing about the tokens drawn."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sda_local import core
from sda_local.core import SamplingParams, top_k_lists
from sda_local.core.top_k import top_indices


def _chain_step(seed: int, n: int = 1000, plausibility: float = 0.0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 3, n).astype(np.float32), rng.normal(0, 3, n).astype(np.float32)
    chain = core.build_chain(SamplingParams(plausibility=plausibility), 0.7)
    return chain.step(a, b)


def test_top_indices_equal_a_full_sort_largest_first():
    rng = np.random.default_rng(0)
    for n, k in ((10, 3), (1000, 5), (4, 5), (49152, 5)):
        x = rng.normal(size=n).astype(np.float32)
        want = np.argsort(-x, kind="stable")[:k]
        assert top_indices(x, k).tolist() == want.tolist()
    ties = np.array([1.0, 3.0, 3.0, -np.inf, 2.0], np.float32)
    assert top_indices(ties, 3).tolist() == [1, 2, 4]


def test_the_three_lists_read_the_steps_own_distributions():
    probs, state = _chain_step(1, plausibility=0.05)
    t = top_k_lists(state, probs, k=5)
    p_with, p_without = np.exp(state.lp_with), np.exp(state.lp_without)
    for got, dist in ((t.instructed, p_with), (t.uninstructed, p_without), (t.steered, probs)):
        live = int(np.count_nonzero(dist > 0))
        assert len(got) == min(5, live)  # removed candidates (probability 0) are not listed
        assert [i for i, _ in got] == np.argsort(-dist, kind="stable")[:len(got)].tolist()
        assert all(math.isclose(p, float(dist[i]), rel_tol=1e-5) for i, p in got)
        assert [p for _, p in got] == sorted((p for _, p in got), reverse=True)
    assert len(t.steered) < 5 == len(t.instructed)  # α = 0.05 leaves fewer than five candidates here
    assert t.js == state.js and t.temperature == state.temperature and t.n_removed == state.n_removed > 0
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    # the chain's step is its distribution: the same probabilities and diagnostics
    chain = core.build_chain(SamplingParams(plausibility=0.05), 0.7)
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 3, 1000).astype(np.float32), rng.normal(0, 3, 1000).astype(np.float32)
    same, info = chain.distribution(a, b)
    assert np.array_equal(same, probs) and info == state.info()


def test_to_dict_names_the_tokens_and_one_stream_has_no_uninstructed_list():
    chain = core.build_chain(SamplingParams(), None)
    probs, state = chain.step(np.array([0.0, 2.0, 1.0], np.float32))
    d = top_k_lists(state, probs, k=5).to_dict(lambda i: "abc"[i])
    assert d["uninstructed"] is None and [t for t, _ in d["instructed"]] == ["b", "c", "a"]
    assert [t for t, _ in d["steered"]] == ["b", "c", "a"] and d["n_removed"] == 0 and d["js"] is None
    with pytest.raises(ValueError, match="k must be"):
        top_k_lists(state, probs, k=0)


def test_engine_emits_the_lists_only_when_asked_and_draws_the_same_tokens(tiny_engine):
    msgs = [{"role": "user", "content": "hello there"}]
    p = SamplingParams(max_tokens=8, seed=11, plausibility=0.1)
    def run(**kw):
        tiny_engine.reset_cache()  # the same prompt evaluation both times (a cached prefix shifts the last bits)
        return [ev for ev in tiny_engine.generate(msgs, "Be kind.", 0.5, params=p, **kw) if ev.kind == "token"]

    plain, seen = run(), run(inspect=5)
    assert plain and all(ev.top is None for ev in plain)
    assert [ev.token_id for ev in seen] == [ev.token_id for ev in plain]  # bit-identical draws
    assert [ev.prob for ev in seen] == [ev.prob for ev in plain]
    for ev in seen:
        top = ev.top
        assert {len(top[name]) for name in ("instructed", "uninstructed", "steered")} == {5}
        assert all(isinstance(t, str) and 0 <= q <= 1 for t, q in top["steered"])
        assert top["js"] == ev.js and top["temperature"] == ev.temperature and top["n_removed"] >= 0
        # the drawn token's probability is at most the steered list's first
        assert ev.prob <= top["steered"][0][1] + 1e-6
