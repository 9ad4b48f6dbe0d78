"""Engine mechanics on a tiny random-weight llama GGUF written by the fixture."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.special import log_softmax

from sda_local.errors import PromptTooLongError
from sda_local.runtime.backend import Context
from sda_local.runtime.kvprefix import chunk_floor
from sda_local.runtime.engine import (
    Engine,
    Finished,
    SamplingParams,
    TokenEvent,
    collect,
)
from sda_local.runtime.textstream import Utf8Stream

MSGS = [{"role": "user", "content": "tell me about the safe way to help"}]
INSTR = "be true and safe"


def reference_logits(model, tokens):
    """Single-stream, single-context decode of the whole token list: the ground truth."""
    ctx = Context(model, n_ctx=512)
    try:
        for i, t in enumerate(tokens):
            last = ctx.add(t, i, 0, i == len(tokens) - 1)
        ctx.decode()
        return ctx.logits(last).copy()
    finally:
        ctx.close()


@pytest.mark.parametrize("layout", ["batched", "contexts"])
def test_each_stream_agrees_with_a_single_stream_decode(tiny_gguf, layout):
    eng = Engine(str(tiny_gguf), n_ctx=256, layout=layout)
    ta, tb = eng.prompter.pair(MSGS, INSTR)
    forced = eng.model.tokenize("the answer is")
    la, lb = eng.twin_logits(MSGS, INSTR, forced)
    ra = reference_logits(eng.model, ta + forced)
    rb = reference_logits(eng.model, tb + forced)
    assert np.abs(la - ra).max() < 1e-2
    assert np.abs(lb - rb).max() < 1e-2
    assert np.abs(la - lb).max() > 0.05  # the instruction really changes stream A
    eng.close()


def test_shared_prefix_is_evaluated_once_and_copied(tiny_gguf):
    eng = Engine(str(tiny_gguf), n_ctx=256)
    ta, tb = eng.prompter.pair(MSGS, INSTR)
    shared = next(i for i, (x, y) in enumerate(zip(ta, tb)) if x != y)
    assert chunk_floor(shared) > 0  # (the whole chunks of the shared prefix are evaluated once)
    done = collect(eng.generate(MSGS, INSTR, 0.5, params=SamplingParams(seed=0, max_tokens=1)))
    assert done.n_evaluated_prompt_tokens == len(ta) + len(tb) - chunk_floor(shared)
    la, lb = eng.twin_logits(MSGS, INSTR)
    np.testing.assert_allclose(la, reference_logits(eng.model, ta), atol=5e-3)
    np.testing.assert_allclose(lb, reference_logits(eng.model, tb), atol=5e-3)
    eng.close()


def test_kv_reuse_across_turns_matches_a_fresh_engine(tiny_gguf, tiny_engine):
    p = SamplingParams(seed=3, max_tokens=12)
    first = collect(tiny_engine.generate(MSGS, INSTR, 0.5, params=p))
    turn2 = MSGS + [{"role": "assistant", "content": first.text}, {"role": "user", "content": "and why"}]
    la, lb = tiny_engine.twin_logits(turn2, INSTR)
    fresh = Engine(str(tiny_gguf), n_ctx=256)
    fa, fb = fresh.twin_logits(turn2, INSTR)
    np.testing.assert_allclose(la, fa, atol=5e-3)
    np.testing.assert_allclose(lb, fb, atol=5e-3)
    # a plain answer in between (stream B) and a shorter prompt must not leave stale cache behind
    collect(tiny_engine.generate_plain(MSGS, params=p))
    la2, lb2 = tiny_engine.twin_logits(MSGS, INSTR)
    ga, gb = fresh.twin_logits(MSGS, INSTR)
    np.testing.assert_allclose(la2, ga, atol=5e-3)
    np.testing.assert_allclose(lb2, gb, atol=5e-3)
    fresh.close()


@pytest.mark.parametrize("layout", ["batched", "contexts"])
def test_a_seeded_answer_is_bit_for_bit_the_same_whatever_the_cache_held(tiny_gguf, layout):
    """Prompts are evaluated in fixed chunks and reused only at chunk boundaries, so what was asked before (a
    plain answer, another steered one, a longer conversation, the same question) changes no number."""
    p = SamplingParams(seed=5, max_tokens=10, t0=1.0, top_p=1.0, contrast="ignore")
    eng = Engine(str(tiny_gguf), n_ctx=512, layout=layout)

    def steered(msgs=MSGS):
        evs = list(eng.generate(msgs, INSTR, 0.6, placement="matched", params=p))
        return [(e.token_id, e.prob, e.js, e.temperature) for e in evs[:-1]]

    first = steered()
    other = [{"role": "user", "content": "Name a colour, then explain why you like it."}]
    runs = [steered()]
    collect(eng.generate_plain(other, params=p))
    runs.append(steered())
    steered(other)
    runs.append(steered())
    longer = MSGS + [{"role": "assistant", "content": "A first answer."}, {"role": "user", "content": "More?"}]
    steered(longer)
    runs.append(steered())
    assert all(r == first for r in runs)  # tokens, probabilities, JS and temperatures, bit for bit
    fresh = Engine(str(tiny_gguf), n_ctx=512, layout=layout)
    eng.close()
    eng = fresh
    assert steered() == first  # and a fresh engine gives the same
    eng.close()


def test_seeded_runs_are_identical_and_seeds_matter(tiny_engine):
    p = SamplingParams(seed=11, max_tokens=24, t0=1.0, top_p=1.0)
    a = collect(tiny_engine.generate(MSGS, INSTR, 0.7, params=p))
    b = collect(tiny_engine.generate(MSGS, INSTR, 0.7, params=p))
    c = collect(tiny_engine.generate(MSGS, INSTR, 0.7, params=SamplingParams(seed=12, max_tokens=24, t0=1.0, top_p=1.0)))
    assert a.token_ids == b.token_ids and a.text == b.text
    assert a.token_ids != c.token_ids


def test_events_carry_diagnostics_and_text_adds_up(tiny_engine):
    events = list(tiny_engine.generate(MSGS, INSTR, 0.5, params=SamplingParams(seed=1, max_tokens=16, t0=1.0)))
    toks, done = events[:-1], events[-1]
    assert isinstance(done, Finished) and all(isinstance(e, TokenEvent) for e in toks)
    assert [e.index for e in toks] == list(range(len(toks)))
    assert all(0 < e.prob <= 1 and 0 <= e.js <= np.log(2) and 0 < e.temperature <= 1.0 for e in toks)
    assert "".join(e.text for e in toks) + done.tail == done.text
    assert done.token_ids == [e.token_id for e in toks]
    assert done.finish_reason == "length" and done.n_tokens == 16


def test_generation_stops_at_end_of_generation_token(tiny_eog_gguf):
    eng = Engine(str(tiny_eog_gguf), n_ctx=128)
    done = collect(eng.generate(MSGS, INSTR, 0.3, params=SamplingParams(seed=0, max_tokens=100)))
    assert done.finish_reason == "stop"
    assert done.n_tokens < 100
    assert 4 not in done.token_ids  # <|im_end|> itself is never emitted
    assert "<|im_end|>" not in done.text
    eng.close()


def test_prompt_too_long_is_a_clear_error_with_counts(tiny_gguf):
    eng = Engine(str(tiny_gguf), n_ctx=64)
    long = [{"role": "user", "content": "the " * 200}]
    with pytest.raises(PromptTooLongError) as err:
        eng.generate(long, INSTR, 0.5)
    n = len(eng.prompter.pair(long, INSTR)[0])
    assert f"{n} tokens" in str(err.value) and "64" in str(err.value)
    # the engine stays usable
    assert collect(eng.generate(MSGS[:], "", 0.5, params=SamplingParams(seed=0, max_tokens=2))).n_tokens >= 0
    eng.close()


def test_generation_stops_before_the_context_is_full(tiny_gguf):
    eng = Engine(str(tiny_gguf), n_ctx=96)
    n = len(eng.prompter.pair(MSGS, INSTR)[0])
    assert n < 80
    done = collect(eng.generate(MSGS, INSTR, 0.5, params=SamplingParams(seed=0, max_tokens=500, t0=1.0, top_p=1.0)))
    assert done.finish_reason == "context"
    assert n + done.n_tokens <= 96 + 1
    eng.close()


def test_multibyte_characters_split_across_tokens_come_out_whole(tiny_engine):
    text = "héllo 你好 — ok 🙂"
    toks = tiny_engine.model.tokenize(text, special=False)
    pieces = [tiny_engine.model.token_bytes(t) for t in toks]
    assert any(len(p) == 1 and p[0] >= 0x80 for p in pieces)  # byte-fallback tokens: characters are split
    s = Utf8Stream()
    out = [s.feed(p) for p in pieces] + [s.flush()]
    assert "".join(out) == text
    assert "你" in out and "🙂" in out  # emitted whole, with the token that completed them
    assert all("\ufffd" not in o for o in out)


def test_invalid_bytes_become_replacement_characters():
    s = Utf8Stream()
    assert s.feed(b"ok\xe4\xbd") == "ok"
    assert s.flush() == "\ufffd"


def test_lambda_must_be_finite_and_messages_well_formed(tiny_engine):
    with pytest.raises(ValueError):
        tiny_engine.generate(MSGS, INSTR, float("nan"))
    with pytest.raises(Exception, match="end with a user message"):
        tiny_engine.generate([{"role": "assistant", "content": "hi"}], INSTR, 0.5)


@pytest.mark.parametrize("lam", [None, 0.5])
def test_plausibility_keeps_every_drawn_token_plausible_under_the_instruction(tiny_engine, lam):
    alpha = 0.3

    def run(a):
        p = SamplingParams(seed=7, max_tokens=12, t0=1.5, top_p=1.0, plausibility=a)
        gen = tiny_engine.generate_plain(MSGS, INSTR, params=p) if lam is None else \
            tiny_engine.generate(MSGS, INSTR, lam, params=p)
        return collect(gen).token_ids

    def margins(ids):  # ln p_with(token) − (ln max p_with + ln α) at each step, on stream A (with the instruction)
        out = []
        for i, tok in enumerate(ids):
            la, _ = tiny_engine.twin_logits(MSGS, INSTR, ids[:i])
            lp = log_softmax(la.astype(np.float64))
            out.append(lp[tok] - lp.max() - np.log(alpha))
        return np.array(out)

    constrained, free = run(alpha), run(0.0)
    assert len(constrained) == 12 and (margins(constrained) >= -1e-2).all()
    assert (margins(free) < -0.1).any()  # without the constraint, implausible tokens do get drawn


def test_importing_the_backend_changes_no_process_settings(tiny_gguf):
    code = ("import logging, sys\n"
            "import sda_local.runtime.backend as b\n"
            "from sda_local.runtime import _alloc\n"
            "log = logging.getLogger(b.LLAMA_LOGGER)\n"
            "print(log.level, _alloc._done)\n"
            "b.LoadedModel(sys.argv[1]).close()\n"
            "print(log.level, _alloc._done or not sys.platform.startswith('linux'))\n")
    r = subprocess.run([sys.executable, "-c", code, str(tiny_gguf)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["0 False", "40 True"]  # untouched on import; set once a model loads


def test_control_vectors_for_another_model_are_refused_and_the_engine_stays_usable(tiny_gguf):
    from sda_local.core import ControlVectorError, ControlVectors

    eng = Engine(str(tiny_gguf), n_ctx=128, layout="contexts")
    with pytest.raises(ControlVectorError, match="n_embd 32 but the model has 64"):
        eng.set_control(ControlVectors(np.ones((2, 32), np.float32), description="other.gguf"))
    with pytest.raises(ControlVectorError, match="steerable layers are 1..2"):
        eng.set_control(ControlVectors(np.ones((5, 64), np.float32)))
    with pytest.raises(Exception, match="'contexts' layout"):
        Engine(str(tiny_gguf), n_ctx=128, layout="batched", control=ControlVectors(np.ones((2, 64), np.float32)))
    assert eng.control is None
    assert collect(eng.generate(MSGS, INSTR, 0.5, params=SamplingParams(seed=0, max_tokens=3))).n_tokens > 0
    eng.set_control(ControlVectors(np.ones((2, 64), np.float32), streams="both", description="ones"))
    assert eng.control.layers == (1, 3) and eng.info()["control"] == {"description": "ones", "layers": [1, 3],
                                                                       "streams": "both"}
    eng.close()


@pytest.mark.parametrize("lam", [None, 1.0])
def test_echo_block_keeps_runs_of_the_instruction_out_of_the_answer(tiny_engine, lam):
    """The instruction is made of what the model writes anyway, so an answer is full of its runs — unless the
    echo block is on."""
    free = collect(tiny_engine.generate_plain(MSGS, params=SamplingParams(seed=3, max_tokens=16))).token_ids
    instr = tiny_engine.model.detokenize(free)
    itoks = tiny_engine._instruction_tokens(instr, SamplingParams(echo_block=2))

    def bigrams(ids):
        return {tuple(ids[i:i + 2]) for i in range(len(ids) - 1)}

    def answer(n):
        p = SamplingParams(seed=3, max_tokens=16, echo_block=n)
        gen = tiny_engine.generate_plain(MSGS, instr, params=p) if lam is None else \
            tiny_engine.generate(MSGS, instr, lam, params=p)
        return collect(gen).token_ids

    blocked = answer(2)
    assert len(blocked) > 4 and not bigrams(blocked) & bigrams(itoks)
    if lam is None:  # without the block the answer does repeat the instruction's runs (the plain stream copies)
        assert bigrams(answer(0)) & bigrams(itoks)


def test_backend_info_names_what_this_build_runs_on():
    import llama_cpp
    from sda_local.runtime.backend import backend_info
    info = backend_info()
    assert info["gpu_offload"] is bool(llama_cpp.llama_supports_gpu_offload())
    assert info["backend"] == ("gpu" if info["gpu_offload"] else "cpu")
    assert "CPU" in info["system_info"] and isinstance(info["devices"], list)
