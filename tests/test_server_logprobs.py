"""``logprobs`` / ``top_logprobs`` (issue 18): the log-probs of the distribution each token was drawn from.

In-process, the engine's reported log-probs are checked against the processor chain recomputed from both
streams' logits (teacher forcing the same tokens); through the real server and the official openai client,
the OpenAI shape, plain and SDA, streamed and not, and the two unsteered streams' lists (``sda.stream_logprobs``).
"""
from __future__ import annotations

import math

import httpx
import pytest
from server_fixtures import client, openai_client, server  # noqa: F401  (fixtures)
from test_server import KEY, MODEL, files, post, serve  # noqa: F401  (fixtures)

from sda_local import core
from sda_local.core import SamplingParams
from sda_local.runtime.engine import Finished, TokenEvent
from sda_local.runtime.logprobs import DecodeExtras

pytestmark = pytest.mark.slow

MSGS = [{"role": "user", "content": "How do I keep basil alive?"}]
INSTRUCTION = "Answer kindly."


# -- in-process: the numbers are the chain's ----------------------------------------------------------------------
def _events(gen) -> list[TokenEvent]:
    return [ev for ev in gen if not isinstance(ev, Finished)]


@pytest.mark.parametrize("lam", [None, 0.6], ids=["plain", "sda"])
def test_reported_logprobs_are_the_chains_distribution_before_top_p(tiny_engine, lam):
    p = SamplingParams(max_tokens=8, seed=4, t0=0.7, top_p=0.8, plausibility=0.01 if lam else 0.0)
    extras = DecodeExtras(logprobs=5, stream_logprobs=lam is not None)
    if lam is None:
        evs = _events(tiny_engine.generate_plain(MSGS, params=p, extras=extras))
    else:
        evs = _events(tiny_engine.generate(MSGS, INSTRUCTION, lam, params=p, extras=extras))
    chain = core.build_chain(p, lam)
    toks = [ev.token_id for ev in evs]
    assert len(toks) == 8
    for i, ev in enumerate(evs):
        la, lb = tiny_engine.twin_logits(MSGS, INSTRUCTION if lam else "", toks[:i])
        probs, state = chain.step(la, lb, history=toks[:i]) if lam else chain.step(lb, history=toks[:i])
        lp = ev.logprobs
        assert lp.logprob == pytest.approx(math.log(probs[ev.token_id]), abs=2e-3)
        assert lp.token == tiny_engine.model.token_bytes(ev.token_id)
        assert len(lp.top) == 5 and [v for _, v in lp.top] == sorted((v for _, v in lp.top), reverse=True)
        best = int(probs.argmax())
        assert lp.top[0][0] == tiny_engine.model.token_bytes(best, special=True)
        assert lp.top[0][1] == pytest.approx(math.log(probs[best]), abs=2e-3)
        if lam is None:
            assert lp.with_instruction is None
            continue
        assert lp.with_instruction.logprob == pytest.approx(float(state.lp_with[ev.token_id]), abs=2e-3)
        assert lp.without_instruction.logprob == pytest.approx(float(state.lp_without[ev.token_id]), abs=2e-3)
        # steered at λ 0.6 and T(JS) < 1: the drawn-from distribution is neither stream's
        assert abs(lp.logprob - lp.with_instruction.logprob) > 1e-3


# -- through the server --------------------------------------------------------------------------------------------


def _check_entries(content, text: str, k: int) -> None:
    assert b"".join(bytes(e.bytes) for e in content).decode("utf-8", "replace") == text
    for e in content:
        assert e.logprob <= 0 and len(e.top_logprobs) == k
        tops = [t.logprob for t in e.top_logprobs]
        assert tops == sorted(tops, reverse=True) and sum(math.exp(v) for v in tops) <= 1 + 1e-6
        if k and e.logprob >= tops[-1]:  # as likely as the k-th: it is in the list, with the same value
            assert any(t.bytes == e.bytes and t.logprob == pytest.approx(e.logprob) for t in e.top_logprobs)


@pytest.mark.parametrize("sda", [None, {"lam": 0.5, "stream_logprobs": True}], ids=["plain", "sda"])
def test_logprobs_in_the_openai_shape_streamed_and_not(client, sda):
    kw = dict(model=MODEL, messages=MSGS, max_tokens=12, seed=7, logprobs=True, top_logprobs=3,
              **({"extra_body": {"sda": sda}} if sda else {}))
    r = client.chat.completions.create(**kw)
    text, content = r.choices[0].message.content, r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens == 12
    _check_entries(content, text, 3)
    chunks = [c for c in client.chat.completions.create(stream=True, **kw) if c.choices]
    streamed = [e for c in chunks if c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    # the same tokens; the values agree to llama.cpp's batch-layout noise (the second request reuses the cache)
    assert [(e.bytes, e.logprob) for e in streamed] == [(e.bytes, pytest.approx(e.logprob, abs=2e-2)) for e in content]
    for c in chunks:  # each chunk's entries are the tokens of its own text
        lp = c.choices[0].logprobs
        if c.choices[0].delta.content:
            got = b"".join(bytes(e.bytes) for e in lp.content).decode("utf-8", "replace")
            assert got == c.choices[0].delta.content
    extra = content[0].model_extra.get("sda")
    if sda is None:
        assert extra is None
        return
    for e in content:
        s = e.model_extra["sda"]
        assert len(s["top_logprobs_with"]) == len(s["top_logprobs_without"]) == 3
        assert s["logprob_with"] <= 0 and s["logprob_without"] <= 0
        assert s["logprob_with"] != s["logprob_without"]  # two prompts, two streams
    assert any(abs(e.logprob - e.model_extra["sda"]["logprob_with"]) > 1e-3 for e in content)  # steered


def test_logprobs_off_by_default_and_true_without_top_logprobs(client):
    kw = dict(model=MODEL, messages=MSGS, max_tokens=4, seed=7)
    assert client.chat.completions.create(**kw).choices[0].logprobs is None
    r = client.chat.completions.create(logprobs=True, **kw)
    assert len(r.choices[0].logprobs.content) == 4 and all(e.top_logprobs == [] for e in r.choices[0].logprobs.content)


def test_top_p_does_not_change_the_reported_distribution(client):
    """The log-prob is before top-p: the first token's list is the same whatever top_p truncates it to."""
    def first(top_p):
        r = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=1, seed=3, top_p=top_p,
                                           logprobs=True, top_logprobs=5, extra_body={"sda": {"lam": 0.5}})
        return [(t.bytes, t.logprob) for t in r.choices[0].logprobs.content[0].top_logprobs]
    wide, narrow = first(1.0), first(0.05)  # top-p 0.05 keeps one token: after it, its log-prob would be 0
    assert len(narrow) == 5 and [b for b, _ in wide] == [b for b, _ in narrow] and narrow[0][1] < -0.5
    assert [v for _, v in wide] == pytest.approx([v for _, v in narrow], abs=2e-2)  # batch-layout noise only


def test_a_stop_sequence_cuts_the_logprobs_with_the_text(client):
    kw = dict(model=MODEL, messages=MSGS, max_tokens=30, seed=9, logprobs=True, top_logprobs=1)
    full = client.chat.completions.create(**kw)
    text = full.choices[0].message.content
    stop = text[10:12]
    r = client.chat.completions.create(stop=[stop], **kw)
    cut, content = r.choices[0].message.content, r.choices[0].logprobs.content
    assert cut == text[:text.index(stop)]
    sent = b"".join(bytes(e.bytes) for e in content).decode("utf-8", "replace")
    assert sent.startswith(cut) and len(content) < len(full.choices[0].logprobs.content)
    assert [e.bytes for e in content] == [e.bytes for e in full.choices[0].logprobs.content[:len(content)]]


@pytest.mark.parametrize("body, param", [
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"sda": {"stream_logprobs": True}}, "sda.stream_logprobs"),
    ({"logprobs": False, "sda": {"stream_logprobs": True}}, "sda.stream_logprobs"),
])
def test_bad_logprob_requests_name_the_field(server, body, param):
    r = post(server, {"model": MODEL, "messages": MSGS, "max_tokens": 2, **body})
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_health_is_free_after_logprob_requests(server):
    assert httpx.get(server["url"] + "/health").json()["busy"] is False
