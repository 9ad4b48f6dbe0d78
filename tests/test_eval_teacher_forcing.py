"""The teacher-forcing scorer against independent decodes on the tiny random GGUF (real llama.cpp, no mocks)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax

from scoring_support import answer_logprobs
from sda_local import core
from sda_local.core import SamplingParams
from sda_local.evaluation.token_logprobs import (
    Setting,
    default_settings,
)
from sda_local.runtime.backend import Context
from sda_local.runtime.teacher_forcing import TeacherForcer

Q = [{"role": "user", "content": "is the sea salty?"}]
INSTR = "be true and safe."
ANSWERS = ["the sea is salty", "it is safe to help you", "No", "the true answer is a, and it is true!"]


@pytest.fixture(scope="module")
def forcer(tiny_engine):
    tf = TeacherForcer.for_engine(tiny_engine, n_ctx=1024, n_seq_max=10)
    yield tf
    tf.close()


def _single_stream_logprobs(model, prompt: list[int], answer: list[int]) -> np.ndarray:
    """Independent path: a fresh one-sequence context decodes prompt + answer; log-probs of each answer token."""
    ctx = Context(model, 512, n_seq_max=1, n_outputs_max_per_seq=512)
    seq = prompt + answer
    idx = [ctx.add(t, i, 0, i >= len(prompt) - 1) for i, t in enumerate(seq[:-1])]
    ctx.decode()
    rows = [ctx.logits(b).copy() for b, i in zip(idx, range(len(seq) - 1)) if i >= len(prompt) - 1]
    ctx.close()
    return np.array([log_softmax(r.astype(np.float64))[y] for r, y in zip(rows, answer)])


def test_per_token_logprobs_match_a_single_stream_decode(tiny_engine, forcer):
    ta, tb = tiny_engine.prompter.pair(Q, INSTR)
    forced = forcer.force(Q, INSTR, ANSWERS)
    assert [f.text for f in forced] == ANSWERS
    settings = [Setting("instruction T=1", "instruction", temperature=1.0), Setting("base T=1", "base", temperature=1.0)]
    for f in forced:
        assert f.targets == tiny_engine.model.tokenize(f.text, special=False)
        assert f.logits_with.shape == (len(f.targets), tiny_engine.model.n_vocab)
        lp, _ = answer_logprobs(f.logits_with, f.logits_without, f.targets, settings)
        np.testing.assert_allclose(lp[0], _single_stream_logprobs(tiny_engine.model, ta, f.targets), atol=1e-2)
        np.testing.assert_allclose(lp[1], _single_stream_logprobs(tiny_engine.model, tb, f.targets), atol=1e-2)


def test_logits_match_the_engines_twin_streams(tiny_engine, forcer):
    f = forcer.force(Q, INSTR, ["the safe sea"])[0]
    for i in range(len(f.targets)):
        la, lb = tiny_engine.twin_logits(Q, INSTR, f.targets[:i])
        np.testing.assert_allclose(f.logits_with[i], la, atol=1e-2)
        np.testing.assert_allclose(f.logits_without[i], lb, atol=1e-2)


def test_results_do_not_depend_on_cache_reuse_or_grouping(tiny_engine, forcer):
    other = [{"role": "user", "content": "is the sky blue and true?"}]
    first = forcer.force(Q, INSTR, ANSWERS)
    forcer.force(other, INSTR, ["the sky", "a"])          # the cache now holds another question
    again = forcer.force(Q, INSTR, ANSWERS)
    narrow = TeacherForcer.for_engine(tiny_engine, n_ctx=1024, n_seq_max=4)  # one answer pair per round
    one_by_one = narrow.force(Q, INSTR, ANSWERS)
    narrow.close()
    for a, b, c in zip(first, again, one_by_one):
        np.testing.assert_allclose(a.logits_with, b.logits_with, atol=1e-3)
        np.testing.assert_allclose(a.logits_without, b.logits_without, atol=1e-3)
        np.testing.assert_allclose(a.logits_with, c.logits_with, atol=1e-2)
        np.testing.assert_allclose(a.logits_without, c.logits_without, atol=1e-2)


def test_empty_answer_and_too_long_prompt_are_refused(forcer):
    from sda_local.errors import PromptTooLongError

    with pytest.raises(ValueError, match="no tokens"):
        forcer.force(Q, INSTR, ["   "])
    with pytest.raises(PromptTooLongError):
        forcer.force([{"role": "user", "content": "the sea " * 400}], INSTR, ["a"])


def test_scores_are_the_log_of_what_the_sampler_draws_from_plausibility_included(forcer):
    f = forcer.force(Q, INSTR, ["the true answer is a safe sea"])[0]
    settings = default_settings((0.5,), ("ln2", "off"), plausibilities=(0.3,))
    assert {s.plausibility for s in settings} == {0.0, 0.3} and "sda λ=0.50 ln2 α=0.3" in [s.name for s in settings]
    lp, _ = answer_logprobs(f.logits_with, f.logits_without, f.targets, settings, k=2.0, t0=0.6)
    for j, s in enumerate(settings):
        t0 = 0.6 if s.temperature is None else s.temperature
        params = SamplingParams(k=2.0, t0=t0, temperature_mode=s.mode, plausibility=s.plausibility)
        for i, y in enumerate(f.targets):  # the engine's own chain on the same logits
            if s.kind == "sda":
                probs, _ = core.build_chain(params, s.lam).distribution(f.logits_with[i], f.logits_without[i])
            else:
                z = f.logits_with[i] if s.kind == "instruction" else f.logits_without[i]
                probs, _ = core.build_chain(params, None).distribution(z)
            if probs[y] == 0.0:
                assert lp[j, i] == -np.inf, (s.name, i)
            else:
                assert lp[j, i] == pytest.approx(np.log(float(probs[y])), abs=1e-4), (s.name, i)
    constrained = [j for j, s in enumerate(settings) if s.plausibility]
    assert np.isinf(lp[constrained]).any()           # the constraint rules some reference tokens out …
    assert np.isfinite(lp[[j for j, s in enumerate(settings) if not s.plausibility]]).all()  # … α = 0 none
