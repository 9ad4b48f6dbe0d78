"""The turn seam without bypasses (tiny random GGUF, real llama.cpp): a turn's prompts are tokenised once, prompts
given as tokens go through the same ``answer``, and ``instruction_only`` is the instruction in the prompt."""
from __future__ import annotations

import pytest

from sda_local.core import SamplingParams
from sda_local.errors import SdaError
from sda_local.judges import FixedEvaluator, make_evaluator
from sda_local.presets import Preset
from sda_local.runtime.engine import collect
from sda_local.turn import TurnPrompts, TurnSettings, TurnTrace, answer, instruction_only, turn_prompts

MSGS = [{"role": "user", "content": "How do I get back at a noisy neighbour?"}]


def settings(**kw) -> TurnSettings:
    return TurnSettings(preset=Preset("kind", "Be kind and lawful."), sampling=SamplingParams(seed=5, max_tokens=8),
                        **kw)


class CountingPrompter:
    """The engine's prompter, counting the conversations it renders and tokenises."""

    def __init__(self, prompter):
        self.prompter, self.calls = prompter, 0

    def tokens(self, messages):
        self.calls += 1
        return self.prompter.tokens(messages)

    def pair(self, *args, **kwargs):
        return type(self.prompter).pair(self, *args, **kwargs)  # (its own ``tokens`` calls are counted)

    def __getattr__(self, name):
        return getattr(self.prompter, name)


@pytest.mark.parametrize("together", [True, False])
def test_a_turn_tokenises_each_of_its_three_prompts_once(tiny_engine, monkeypatch, together):
    counting = CountingPrompter(tiny_engine.prompter)
    monkeypatch.setattr(tiny_engine, "prompter", counting)
    t = TurnTrace.run(answer(tiny_engine, FixedEvaluator(lam=0.4), MSGS, settings(), base="always",
                             together=together))
    assert t.base is not None and t.aligned is not None
    assert counting.calls == 3  # with, without, base: rendered once each, whatever the engine does with them


def test_prompts_given_as_tokens_answer_as_the_conversation_does(tiny_engine):
    s = settings()
    prompts = turn_prompts(tiny_engine, MSGS, s)
    tiny_engine.reset_cache()
    by_tokens = TurnTrace.run(answer(tiny_engine, FixedEvaluator(lam=0.4), prompts, s))
    tiny_engine.reset_cache()
    by_messages = TurnTrace.run(answer(tiny_engine, FixedEvaluator(lam=0.4), MSGS, s))
    assert by_tokens.aligned.token_ids == by_messages.aligned.token_ids
    assert by_tokens.decision.lam == pytest.approx(0.4) and by_tokens.base is None
    # the base answer too, when the prompts carry one
    both = TurnTrace.run(answer(tiny_engine, FixedEvaluator(lam=0.4), prompts, s, base="always"))
    assert both.base is not None and both.aligned.token_ids == by_messages.aligned.token_ids


def test_prompts_given_as_tokens_refuse_what_they_cannot_do(tiny_engine):
    s = settings()
    full = turn_prompts(tiny_engine, MSGS, s)
    text_like = TurnPrompts(full.with_instruction, full.without)  # no base prompt (a text completion)
    judge = make_evaluator("self", engine=tiny_engine)
    with pytest.raises(SdaError, match="prompt given as tokens"):
        answer(tiny_engine, judge, text_like, s)
    with pytest.raises(SdaError, match="no base answer"):
        answer(tiny_engine, FixedEvaluator(lam=0.4), text_like, s, base="always")


@pytest.mark.parametrize("placement", ["user", "system"])
def test_instruction_only_is_the_instruction_in_the_prompt_sampled_plainly(tiny_engine, placement):
    s = settings(placement=placement)
    got = collect(instruction_only(tiny_engine, MSGS, s))
    want = collect(tiny_engine.generate_plain(MSGS, s.preset.instruction, placement=placement, params=s.params()))
    assert got.token_ids == want.token_ids and got.n_prompt_tokens == want.n_prompt_tokens


def test_instruction_only_toward_the_system_prompt_is_the_conversation_as_written(tiny_engine):
    convo = [{"role": "system", "content": "Answer in one short sentence."}, *MSGS]
    s = settings(system_prompt="", steer_toward="system")
    got = collect(instruction_only(tiny_engine, convo, s))
    want = collect(tiny_engine.generate_plain(convo, params=s.params()))
    assert got.token_ids == want.token_ids
