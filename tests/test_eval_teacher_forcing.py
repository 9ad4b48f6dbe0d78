"""The teacher-forcing scorer against independent decodes on the tiny random GGUF (real llama.cpp, no mocks)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax

from sda_local.backend import Context
from sda_local.evaluation.teacher_forcing import TeacherForcer
from sda_local.evaluation.token_logprobs import Setting, answer_logprobs

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
