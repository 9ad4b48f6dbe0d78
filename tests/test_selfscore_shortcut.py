"""The self-score's shortcut through the chat engine's own caches (``generate_plain(record=True)`` records the
base answer's log-probs in its ``Finished``, the turn hands that record to the judge as a ``BaseAnswer``, and
``Engine.aligned_logprobs`` forces the answer through stream A), on the embedded SmolLM2."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from sda_local.core import SamplingParams, StepState
from sda_local.judges import BaseAnswer, FixedEvaluator, make_evaluator
from sda_local.judges.selfscore import SelfScoreEvaluator, criterion_preset
from sda_local.judges.spec import Judges
from sda_local.presets import get_preset
from sda_local.runtime.answer_record import LogprobRecorder, target_logprobs
from sda_local.runtime.backend import Context
from sda_local.runtime.engine import collect
from sda_local.server.config import ServerConfig
from sda_local.server.request import build_plan, parse_body
from sda_local.server.worker import Runner
from sda_local.session import ChatSession
from sda_local.turn import TurnSettings, TurnTrace, answer

pytestmark = pytest.mark.slow
Q = "How do I keep basil alive on a windowsill?"
MSGS = [{"role": "user", "content": Q}]
P = SamplingParams(seed=0, max_tokens=32)


def test_recorder_reads_each_drawn_token_one_step_later():
    rec = LogprobRecorder()
    lps = [np.log(np.array([0.5, 0.25, 0.25], np.float32)), np.log(np.array([0.1, 0.2, 0.7], np.float32))]
    rec(StepState(lps[0], None, lps[0], history=[]))
    rec(StepState(lps[1], None, lps[1], history=[1]))        # token 1 was drawn from lps[0]
    assert rec.finish([1, 2]) == pytest.approx([np.log(0.25), np.log(0.7)])
    assert LogprobRecorder().finish([3]) is None              # nothing recorded: no record


def test_a_recorded_answer_is_the_plain_answer_with_its_log_probs(smol_engine):
    base = collect(smol_engine.generate_plain(MSGS, params=P, record=True))
    plain = collect(smol_engine.generate_plain(MSGS, params=P))
    assert base.token_ids == plain.token_ids and base.text == plain.text
    assert plain.record is None and "record" not in base.to_dict()
    rec = base.record
    assert rec.tokens == tuple(base.token_ids) and list(rec.prompt) == smol_engine.prompt_tokens(MSGS)
    # the same log-probs from a one-token-at-a-time decode of prompt + answer in a context of its own
    ctx = Context(smol_engine.model, 1024, n_threads=smol_engine.n_threads)
    try:
        prompt, rows = list(rec.prompt), []
        for i, t in enumerate(prompt):
            ctx.add(t, i, 0, i == len(prompt) - 1)
        ctx.decode()
        rows.append(ctx.logits(len(prompt) - 1).copy())
        for j, t in enumerate(base.token_ids[:-1]):
            ctx.add(t, len(prompt) + j, 0, True)
            ctx.decode()
            rows.append(ctx.logits(0).copy())
    finally:
        ctx.close()
    np.testing.assert_allclose(rec.logprobs, target_logprobs(np.stack(rows), base.token_ids), atol=1e-4)


def test_self_score_takes_the_shortcut_in_a_turn_and_agrees_with_the_teacher_forcer(smol_engine):
    fast = make_evaluator("self", engine=smol_engine)
    slow = SelfScoreEvaluator(smol_engine.model, prompter=smol_engine.prompter, label="forcer")
    try:
        session = ChatSession(smol_engine, fast, TurnSettings(preset=get_preset("helpfulness"), sampling=P,
                                                              placement="user"))
        events = list(session.send(Q))
        assert fast.shortcuts == 1                      # scored from the base answer's record and stream A
        base = session.turns[-1].base
        got = next(e.score for e in events if e.kind == "score")
        ref = slow.score(Q, base, "helpfulness")
        assert slow.shortcuts == 0
        r_fast, r_ref = (float(s.raw.split()[2]) for s in (got, ref))
        # llama.cpp rounds a one-token decode and a batch differently (per token up to ~0.2 nats on this model);
        # the mean over the answer agrees closely
        assert abs(r_fast - r_ref) < 0.03 and abs(got.value - ref.value) < 8
        assert got.raw.split(" over ")[1] == ref.raw.split(" over ")[1]  # the same number of tokens, same τ
        # stream A's half: the forced answer's log-probs agree with the forcer's "with" stream on average, and
        # forcing again from A's own cache (the prompt kept) repeats itself exactly
        instr = criterion_preset("helpfulness").instruction
        toks = smol_engine.model.tokenize(base.strip(), add_bos=False, special=False)
        fa = slow.forcer.force(MSGS, instr, [base])[0]
        lw = smol_engine.aligned_logprobs(MSGS, instr, toks)
        assert abs(float(np.mean(lw - target_logprobs(fa.logits_with, fa.targets)))) < 0.03
        again = smol_engine.aligned_logprobs(MSGS, instr, toks)
        np.testing.assert_array_equal(again, smol_engine.aligned_logprobs(MSGS, instr, toks))
    finally:
        fast.close()
        slow.close()


def test_no_shortcut_without_a_record_of_this_answer(smol_engine):
    fast = make_evaluator("self", engine=smol_engine)
    try:
        done = collect(smol_engine.generate_plain(MSGS, params=P, record=True))
        s = fast.score(Q, "Water it when the soil is dry and give it sun.", "helpfulness")
        assert fast.shortcuts == 0 and 1 <= s.value <= 100    # no base answer handed over: no shortcut
        other = BaseAnswer(MSGS, smol_engine, done.record)
        fast.score(Q, "Water it when the soil is dry and give it sun.", "helpfulness", base=other)
        assert fast.shortcuts == 0                            # the record is of another answer
        bread = [{"role": "user", "content": "Why does bread go stale?"}]
        rec = collect(smol_engine.generate_plain(bread, params=P, record=True)).record
        fast.score(Q, done.text, "helpfulness", base=BaseAnswer(MSGS, smol_engine, rec))
        assert fast.shortcuts == 0                            # the recorded prompt is another question's
        fast.score(Q, done.text, "helpfulness", base=BaseAnswer(MSGS, smol_engine, done.record))
        assert fast.shortcuts == 1                            # and this is the one that matches
    finally:
        fast.close()


def test_the_aligned_answer_does_not_depend_on_the_shortcut(smol_engine):
    """The forced pass leaves stream A as it found it: the aligned answer that follows is the one the same base
    answer and λ give without the self-score, token for token."""
    fast = make_evaluator("self", engine=smol_engine)
    try:
        settings = TurnSettings(preset=get_preset("helpfulness"), sampling=P, placement="user")
        t = TurnTrace.run(answer(smol_engine, fast, MSGS, settings))
        assert fast.shortcuts == 1
        smol_engine.reset_cache()
        again = TurnTrace.run(answer(smol_engine, FixedEvaluator(lam=t.decision.lam), MSGS, settings,
                                    base="always"))
        assert again.base.token_ids == t.base.token_ids
        assert again.aligned.token_ids == t.aligned.token_ids
    finally:
        fast.close()


def test_the_server_scores_its_base_answer_through_the_shortcut(smol_engine):
    """A request with ``sda.evaluator = "self"``: the turn records the server's base answer and hands it to the
    self-score, which reads it instead of forcing both streams again."""
    judges = Judges(smol_engine)
    try:
        body = {"model": "m", "messages": MSGS, "max_tokens": 16, "seed": 0,
                "sda": {"preset": "helpfulness", "evaluator": "self", "placement": "user", "return_base": True}}
        plan = build_plan(parse_body(json.dumps(body).encode()), ServerConfig(), {"m"})
        out: list[tuple] = []
        Runner(smol_engine, judges).run(plan, threading.Event(), out.append)
        assert out[-1][0] == "done", out[-1]
        assert judges.get(plan.sda.judge).shortcuts == 1
        assert out[-1][1].sda["base_tokens"] > 0 and out[-1][1].sda["lam_source"] == "score"
    finally:
        judges.close()
