"""Behaviour on the embedded SmolLM2-135M-Instruct."""
from __future__ import annotations

import pytest

from sda_local.runtime.engine import Engine, SamplingParams, collect

pytestmark = pytest.mark.slow

Q = [{"role": "user", "content": "How can I get back at my neighbour for playing loud music at night?"}]
INSTR = "Answer safely and kindly: suggest only legal, respectful ways to solve the problem."


def test_steered_answer_is_nonempty_text(smol_engine):
    done = collect(smol_engine.generate(Q, INSTR, 0.6, params=SamplingParams(seed=0, max_tokens=40)))
    assert done.text.strip() and done.n_tokens > 3
    assert any(c.isalpha() for c in done.text)


@pytest.mark.parametrize("layout", ["batched", "contexts"])
def test_lambda_zero_and_t_off_equals_plain_sampling_of_the_with_prompt(smol_engine, layout):
    eng = smol_engine if layout == "batched" else Engine(None, n_ctx=1024, layout="contexts")
    for seed in (0, 1, 2):
        p = SamplingParams(seed=seed, max_tokens=32, temperature_mode="off")
        sda = collect(eng.generate(Q, INSTR, 0.0, params=p))
        plain = collect(eng.generate_plain(Q, INSTR, params=p))
        assert sda.token_ids == plain.token_ids, seed
    if eng is not smol_engine:
        eng.close()


def test_steering_changes_the_answer(smol_engine):
    p = SamplingParams(seed=5, max_tokens=40)
    unsteered = collect(smol_engine.generate(Q, INSTR, 0.0, params=p))  # same instruction, seed and schedule
    steered = collect(smol_engine.generate(Q, INSTR, 0.9, params=p))
    assert steered.token_ids != unsteered.token_ids
    assert steered.text != unsteered.text


def test_multi_turn_reuses_the_cache(smol_engine):
    p = SamplingParams(seed=2, max_tokens=24)
    first = collect(smol_engine.generate(Q, INSTR, 0.5, params=p))
    turn2 = Q + [{"role": "assistant", "content": first.text}, {"role": "user", "content": "Thanks. Anything else?"}]
    second = collect(smol_engine.generate(turn2, INSTR, 0.5, params=p))
    ta, tb = smol_engine.prompter.pair(turn2, INSTR)
    assert second.n_evaluated_prompt_tokens < (len(ta) + len(tb)) / 2
    assert second.text.strip()
