"""A whole turn in one batch: the base answer and the aligned answer decoded together (``Engine.generate_pair``,
``turn.answer(together=True)``) give the tokens each would get alone, and the front ends still show them apart."""
from __future__ import annotations

import numpy as np
import pytest

from sda_local.cli.output import base_first, print_turn
from sda_local.core import SamplingParams
from sda_local.judges import FixedEvaluator, make_evaluator
from sda_local.presets import Preset
from sda_local.runtime.engine import Engine, collect
from sda_local.turn import TurnSettings, TurnTrace, answer
from ui.controller import apply_event
from ui.state import LiveTurn

MSGS = [{"role": "user", "content": "How can I get back at my noisy neighbour?"}]
INSTR = "Answer safely and kindly."


def _pair(engine, lam, p, pb, **kw):
    """(events in order, {"base": Finished, "aligned": Finished}) of one generate_pair."""
    events, done = [], {}
    for who, ev in engine.generate_pair(MSGS, INSTR, lam, params=p, base_params=pb, **kw):
        events.append((who, ev))
        if ev.kind == "finished":
            done[who] = ev
    return events, done


@pytest.mark.parametrize("contrast", ["auto", "ignore"])
@pytest.mark.parametrize("lam", [0.0, 0.6])
def test_paired_answers_are_the_answers_each_gets_alone(tiny_engine, lam, contrast):
    for seed in range(3):
        p = SamplingParams(seed=seed, max_tokens=24, contrast=contrast)
        pb = SamplingParams(seed=seed + 7, max_tokens=16)
        tiny_engine.reset_cache()
        base = collect(tiny_engine.generate_plain(MSGS, params=pb, record=True))
        aligned = collect(tiny_engine.generate(MSGS, INSTR, lam, params=p))
        tiny_engine.reset_cache()
        _, done = _pair(tiny_engine, lam, p, pb, record_base=True)
        assert done["base"].token_ids == base.token_ids and done["base"].text == base.text
        assert done["aligned"].token_ids == aligned.token_ids and done["aligned"].text == aligned.text
        # the self-score's shortcut reads the same record (the tiny model's float32 weights run a matrix
        # kernel whose rounding depends on the rows in a batch: equal to ~1e-7; the quantised models: exactly)
        rec, ref = done["base"].record, base.record
        assert rec.prompt == ref.prompt and rec.tokens == ref.tokens
        np.testing.assert_allclose(rec.logprobs, ref.logprobs, rtol=0, atol=1e-5)
        assert done["aligned"].n_prompt_tokens == aligned.n_prompt_tokens


def test_the_batch_shrinks_to_the_answer_still_going(tiny_engine):
    for short, long_ in (("base", "aligned"), ("aligned", "base")):
        n = {short: 3, long_: 12}
        p = SamplingParams(seed=1, max_tokens=n["aligned"])
        pb = SamplingParams(seed=2, max_tokens=n["base"])
        tiny_engine.reset_cache()
        events, done = _pair(tiny_engine, 0.5, p, pb)
        end = next(i for i, (w, ev) in enumerate(events) if w == short and ev.kind == "finished")
        after = events[end + 1:]
        assert after and all(w == long_ for w, _ in after)  # only the other answer goes on
        assert done[short].n_tokens <= 3 and done[long_].n_tokens == len([e for w, e in events
                                                                          if w == long_ and e.kind == "token"])
        # while both run, each step yields the base token, then the aligned token
        firsts = [w for w, ev in events[:4] if ev.kind == "token"]
        assert firsts[:2] == ["base", "aligned"]


def test_the_paired_answers_stay_identical_across_a_cache_reused_turn(tiny_engine):
    p, pb = SamplingParams(seed=4, max_tokens=10), SamplingParams(seed=5, max_tokens=10)
    tiny_engine.reset_cache()
    first = _pair(tiny_engine, 0.5, p, pb)[1]
    again = _pair(tiny_engine, 0.5, p, pb)[1]  # the caches now hold these prompts: only their last token runs
    assert again["aligned"].n_evaluated_prompt_tokens < first["aligned"].n_evaluated_prompt_tokens
    assert [again[w].token_ids for w in ("base", "aligned")] == [first[w].token_ids for w in ("base", "aligned")]


def test_a_turn_with_a_fixed_lambda_streams_both_answers_at_once(tiny_engine):
    s = TurnSettings(preset=Preset("kind", "Be kind.", placement="matched", contrast="ignore"),
                     sampling=SamplingParams(seed=3, max_tokens=12))
    ev = FixedEvaluator(lam=0.4)
    tiny_engine.reset_cache()
    together = list(answer(tiny_engine, ev, MSGS, s, base="always"))
    tiny_engine.reset_cache()
    apart = list(answer(tiny_engine, ev, MSGS, s, base="always", together=False))
    kinds = [e.kind for e in together]
    assert kinds.index("lambda") < kinds.index("base_token") < kinds.index("aligned_token")
    assert kinds.index("aligned_token") < kinds.index("phase_done")  # interleaved, not one after the other
    kinds_apart = [e.kind for e in apart]
    assert kinds_apart.index("phase_done") < kinds_apart.index("lambda") < kinds_apart.index("aligned_token")
    a, b = TurnTrace.run(together), TurnTrace.run(apart)
    assert a.base.token_ids == b.base.token_ids and a.aligned.token_ids == b.aligned.token_ids
    assert a.decision.lam == b.decision.lam == pytest.approx(0.4)


def test_the_contexts_layout_and_a_judge_keep_the_base_answer_first(tiny_gguf):
    eng = Engine(str(tiny_gguf), n_ctx=256, layout="contexts")
    try:
        assert not eng.can_pair
        with pytest.raises(Exception, match="batched layout"):
            eng.generate_pair(MSGS, INSTR, 0.5)
        s = TurnSettings(preset=Preset("kind", "Be kind."), sampling=SamplingParams(seed=3, max_tokens=6))
        kinds = [e.kind for e in answer(eng, FixedEvaluator(lam=0.4), MSGS, s, base="always")]
        assert kinds.index("phase_done") < kinds.index("lambda")
    finally:
        eng.close()


def test_the_terminal_prints_the_base_answer_first_and_the_chat_keeps_streaming(tiny_engine, capsys):
    s = TurnSettings(preset=Preset("kind", "Be kind."), sampling=SamplingParams(seed=3, max_tokens=10))
    tiny_engine.reset_cache()
    events = list(answer(tiny_engine, FixedEvaluator(lam=0.4), MSGS, s, base="always"))
    t = TurnTrace.run(events)
    ordered = [e.kind for e in base_first(events)]
    assert ordered.index("phase_done") < ordered.index("lambda") < ordered.index("aligned_token")
    assert sorted(ordered) == sorted(e.kind for e in events)  # nothing lost, nothing added
    print_turn(events, as_json=False, show_base=True)
    out = capsys.readouterr().out
    assert out.index(t.base.text) < out.rindex(t.aligned.text)
    # the chat's live turn stays in its aligned phase when the base answer ends after λ was chosen
    live = LiveTurn(user="hi")
    for e in events:
        apply_event(live, e, None)
        if e.kind == "phase_done" and e.phase == "base":
            assert live.phase == "aligned"
    assert live.base == t.base.text and live.aligned == t.aligned.text


@pytest.mark.slow
def test_paired_answers_on_smollm2_are_bit_identical_to_each_alone(smol_engine):
    for seed, contrast in ((0, "auto"), (1, "ignore")):
        p = SamplingParams(seed=seed, max_tokens=32, contrast=contrast)
        pb = SamplingParams(seed=seed + 100, max_tokens=24)
        smol_engine.reset_cache()
        base = collect(smol_engine.generate_plain(MSGS, params=pb, record=True))
        aligned = collect(smol_engine.generate(MSGS, INSTR, 0.5, params=p))
        smol_engine.reset_cache()
        _, done = _pair(smol_engine, 0.5, p, pb, record_base=True)
        assert done["base"].token_ids == base.token_ids and done["aligned"].token_ids == aligned.token_ids
        np.testing.assert_array_equal(done["base"].record.logprobs, base.record.logprobs)


def test_a_chat_session_records_that_its_turn_was_decoded_together(tiny_engine):
    from sda_local.session import ChatSession

    s = TurnSettings(preset=Preset("kind", "Be kind."), sampling=SamplingParams(seed=3, max_tokens=8))
    together = ChatSession(tiny_engine, FixedEvaluator(lam=0.4), s)
    list(together.send("Hello there"))
    assert together.turns[-1].timings["together"] is True
    ev = make_evaluator("self", engine=tiny_engine, n_ctx=256)  # a judge that reads the base answer: one by one
    try:
        judged = ChatSession(tiny_engine, ev, s)
        list(judged.send("Hello there"))
    finally:
        ev.close()
    assert judged.turns[-1].timings["together"] is False and judged.turns[-1].base
