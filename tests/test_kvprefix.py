"""kvprefix: prefix reuse and shared-prefix loading on real llama.cpp contexts (the tiny random GGUF)."""
from __future__ import annotations

import numpy as np
import pytest

from sda_local.runtime.backend import Context, LoadedModel
from sda_local.runtime.kvprefix import (
    MIN_SHARED_PREFIX,
    KvStream,
    common_prefix,
    load_shared_prefix,
)


@pytest.fixture(scope="module")
def model(tiny_gguf):
    m = LoadedModel(tiny_gguf)
    yield m
    m.close()


def decode(s: KvStream, toks, want_last: bool = False):
    """Append ``toks`` to ``s`` in one decode; the last token's logits (a copy) when asked."""
    bi = None
    for i, t in enumerate(toks):
        bi = s.ctx.add(t, len(s.tokens) + i, s.seq, want_last and i == len(toks) - 1)
    s.ctx.decode()
    s.tokens.extend(toks)
    return s.ctx.logits(bi).copy() if want_last else None


def reference(model, toks):
    ctx = Context(model, 256)
    try:
        return decode(KvStream(ctx), toks, True)
    finally:
        ctx.close()


TA = [5, 30, 31, 32, 33, 34, 35, 36, 40, 41, 42]   # "with": shares 8 tokens with TB
TB = [5, 30, 31, 32, 33, 34, 35, 36, 50, 51]


def test_common_prefix():
    assert common_prefix([], [1, 2]) == 0
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix(np.array([7, 8]), [7, 8]) == 2
    assert common_prefix(TA, TB) == 8


def test_reuse_keeps_the_shared_prefix_and_the_logits_stay_exact(model):
    ctx = Context(model, 256)
    s = KvStream(ctx)
    decode(s, TA)
    assert s.reuse(TB) == 8 and s.tokens == TB[:8]
    got = decode(s, TB[8:], True)
    np.testing.assert_allclose(got, reference(model, TB), atol=5e-3)
    assert s.reuse(TB, limit=len(TB) - 1) == len(TB) - 1  # leave the last token to evaluate
    s.reset()
    assert s.tokens == [] and s.reuse(TA) == 0
    ctx.close()


@pytest.mark.parametrize("layout", ["one context", "two contexts"])
def test_shared_prefix_is_evaluated_once_and_copied(model, layout):
    if layout == "one context":
        ctx = Context(model, 256, n_seq_max=2)
        a, b, contexts = KvStream(ctx, 0), KvStream(ctx, 1), [ctx]
    else:
        contexts = [Context(model, 256), Context(model, 256)]
        a, b = KvStream(contexts[0]), KvStream(contexts[1])
    calls = []

    def evaluate(s, toks):
        calls.append((s, list(toks)))
        decode(s, toks)

    assert load_shared_prefix(a, b, TA, TB, evaluate) == 8
    assert calls == [(b, TB[:8])]             # once, in b (a tie: neither held anything)
    assert a.tokens == b.tokens == TA[:8]
    la = decode(a, TA[8:], True)
    lb = decode(b, TB[8:], True)
    np.testing.assert_allclose(la, reference(model, TA), atol=5e-3)
    np.testing.assert_allclose(lb, reference(model, TB), atol=5e-3)

    # the streams already hold their prompts: nothing to evaluate, the last token is left for its logits
    calls.clear()
    assert load_shared_prefix(a, b, TA, TB, evaluate) == 0 and calls == []
    assert (len(a.tokens), len(b.tokens)) == (len(TA) - 1, len(TB) - 1)
    for c in contexts:
        c.close()


def test_the_stream_holding_more_of_the_prefix_evaluates_the_rest(model):
    ctx = Context(model, 256, n_seq_max=2)
    a, b = KvStream(ctx, 0), KvStream(ctx, 1)
    decode(a, TA[:6])
    calls = []
    n = load_shared_prefix(a, b, TA, TB, lambda s, t: (calls.append((s.seq, list(t))), decode(s, t)))
    assert n == 2 and calls == [(0, TA[6:8])]
    assert b.tokens == TB[:8]
    np.testing.assert_allclose(decode(b, TB[8:], True), reference(model, TB), atol=5e-3)
    ctx.close()


def test_no_sharing_when_asked_not_to_or_when_the_prefix_is_short(model):
    ctx = Context(model, 256, n_seq_max=2)
    a, b = KvStream(ctx, 0), KvStream(ctx, 1)
    assert load_shared_prefix(a, b, TA, TB, decode, share=False) == 0
    assert a.tokens == b.tokens == []
    short_a, short_b = TA[:MIN_SHARED_PREFIX - 1] + [60, 61], TA[:MIN_SHARED_PREFIX - 1] + [62, 63]
    assert load_shared_prefix(a, b, short_a, short_b, decode) == 0
    assert a.tokens == b.tokens == []
    # identical prompts: the shared prefix stops before the last token, whose logits each stream needs
    assert load_shared_prefix(a, b, TA, TA, decode) == len(TA) - 1
    assert a.tokens == b.tokens == TA[:-1]
    # keep_last=False (prompts given without their last token): the whole shared part is used
    a.reset()
    b.reset()
    assert load_shared_prefix(a, b, TA, TA, decode, keep_last=False) == len(TA)
    ctx.close()
