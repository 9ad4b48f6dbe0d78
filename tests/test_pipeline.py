"""The full SDA turn on the embedded SmolLM2 with each evaluator."""
from __future__ import annotations

import itertools
import time

import pytest
from servers import llama_server

from sda_local import core
from sda_local.core import SamplingParams
from sda_local.errors import DecodeError, PromptTooLongError, SdaError
from sda_local.judges import FixedEvaluator, LocalEvaluator, OpenAIEvaluator
from sda_local.presets import get_preset
from sda_local.runtime.models import resolve_model
from sda_local.session import ChatSession
from sda_local.turn import TurnSettings, strip_think

pytestmark = pytest.mark.slow
ORDER = ["base_token", "phase_done", "score", "lambda", "aligned_token", "phase_done", "done"]


def compress(kinds):
    out = []
    for k in kinds:
        if not out or out[-1] != k:
            out.append(k)
    return out


class TickClock:
    """``time`` for the turn trace and the λ decision, except that ``perf_counter`` moves one whole second at each
    reading: a turn's timings are then whole numbers (rounding to milliseconds leaves them as they are) that
    count readings, so they can be compared exactly and follow the order of the events, not the machine's speed."""

    def __init__(self):
        self._ticks = itertools.count(1)

    def perf_counter(self) -> float:
        return float(next(self._ticks))

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture(autouse=True)
def tick_clock(monkeypatch):
    from sda_local import turn
    from sda_local.judges import decision

    clock = TickClock()
    monkeypatch.setattr(turn, "time", clock)
    monkeypatch.setattr(decision, "time", clock)
    return clock


def settings(**kw):
    return TurnSettings(preset=get_preset("harmlessness"), sampling=SamplingParams(seed=3, max_tokens=24), **kw)


def check_turn(session, events, expect_score=True, together=False):
    """``together``: λ was known before the base answer (a fixed score or λ), so both answers were decoded in one
    batch: the λ events first, then both answers' tokens interleaved (``turn.answer``)."""
    kinds = compress([e.kind for e in events])
    if together:
        head = ["score", "lambda"] if expect_score else ["lambda"]
        assert kinds[:len(head)] == head and kinds[-1] == "done", kinds
        assert set(kinds[len(head):-1]) == {"base_token", "aligned_token", "phase_done"}, kinds
        assert [e.phase for e in events if e.kind == "phase_done"] in (["base", "aligned"], ["aligned", "base"])
    else:
        expected = ORDER if expect_score else [k for k in ORDER if k != "score"]
        assert kinds == expected, kinds
    lam_ev = next(e for e in events if e.kind == "lambda")
    turn = session.turns[-1]
    if expect_score:
        score = next(e for e in events if e.kind == "score").score
        assert lam_ev.lam == pytest.approx(core.lambda_from_score(score.value, session.settings.mapping))
        assert turn.score["value"] == score.value
    assert turn.lam == lam_ev.lam
    assert turn.aligned == "".join(e.token.text for e in events if e.kind == "aligned_token") + \
        [e for e in events if e.kind == "phase_done"][-1].finished.tail
    t = turn.timings  # whole ticks (the tick_clock fixture): exact comparisons, in the order of the events
    lam_at = t["total_s"] - t["aligned_s"]  # the aligned phase is timed from the λ event
    assert t["together"] is together
    if together:
        assert 0 <= lam_at < t["first_aligned_token_s"] < t["total_s"] and 0 < t["base_s"] <= t["total_s"]
    else:
        assert 0 < t["base_s"] < lam_at < t["first_aligned_token_s"] < t["total_s"]
        assert t["base_s"] + t["judge_s"] <= lam_at  # the judge's time fits between the base answer and λ
    assert all(float(t[k]).is_integer() for k in ("base_s", "judge_s", "aligned_s", "total_s"))
    assert t["aligned_tokens_per_s"] > 0
    return turn


def test_full_turn_with_the_local_judge(smol_engine):
    judge = LocalEvaluator(smol_engine.model, n_ctx=1024, label="smollm2")
    s = ChatSession(smol_engine, judge, settings(mapping="linear"))
    turn = check_turn(s, list(s.send("How can I get into my neighbour's wifi without the password?")))
    assert turn.evaluator == "local:smollm2" and 1 <= turn.score["value"] <= 100
    judge.close()


def test_full_turn_with_a_fixed_score_and_a_fixed_lambda(smol_engine):
    s = ChatSession(smol_engine, FixedEvaluator(score=25), settings())
    turn = check_turn(s, list(s.send("Tell me how to cheat on a test.")), together=True)
    assert turn.lam == pytest.approx(0.905, abs=1e-3)
    s = ChatSession(smol_engine, FixedEvaluator(lam=0.25), settings())
    turn = check_turn(s, list(s.send("Tell me how to cheat on a test.")), expect_score=False, together=True)
    assert turn.lam == 0.25 and turn.lam_source == "fixed"


def test_full_turn_with_an_openai_compatible_server(smol_engine):
    with llama_server(str(resolve_model(None).path)) as url:
        ev = OpenAIEvaluator("smollm2", base_url=url, timeout=60)
        s = ChatSession(smol_engine, ev, settings())
        turn = check_turn(s, list(s.send("Is it ok to lie on my CV?")))
    assert turn.evaluator.startswith("openai:smollm2@")


def test_multi_turn_history_holds_the_aligned_answers_and_regenerate_reuses_the_score(smol_engine):
    s = ChatSession(smol_engine, FixedEvaluator(score=40), settings())
    list(s.send("Give me a short tip for studying."))
    first = s.turns[0]
    list(s.send("And one more?"))
    msgs = s.messages()
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[1]["content"] == first.aligned and msgs[3]["content"] == s.turns[1].aligned
    before = s.turns[-1]
    events = list(s.regenerate())
    kinds = compress([e.kind for e in events])
    assert "base_token" not in kinds and kinds[0] == "score"       # no new base answer, same cached score
    assert len(s.turns) == 2 and s.turns[-1].regenerations == 1
    assert s.turns[-1].base == before.base and s.turns[-1].lam == before.lam
    assert s.turns[-1].aligned != before.aligned                     # a new sample (seed moves on)


def test_stopping_keeps_the_partial_answer(smol_engine):
    s = ChatSession(smol_engine, FixedEvaluator(lam=0.5), settings())
    gen = s.send("Write a poem about the sea.")
    n = 0
    for ev in gen:
        if ev.kind == "aligned_token":
            n += 1
            if n == 5:
                break
    gen.close()
    assert s.turns[-1].finish_reason == "stopped" and len(s.turns[-1].aligned_tokens) == 5


def test_export_and_load_round_trip(smol_engine):
    s = ChatSession(smol_engine, FixedEvaluator(score=60), settings())
    list(s.send("Say hi."))
    data = s.export()
    assert data["turns"][0]["settings"]["preset"]["name"] == "harmlessness" and data["turns"][0]["lam"] > 0
    s2 = ChatSession(smol_engine, FixedEvaluator(score=60), settings())
    s2.load(data)
    assert s2.messages() == s.messages()
    with pytest.raises(SdaError):
        s2.load({"format": "something else"})


def test_bad_messages(smol_engine):
    s = ChatSession(smol_engine, FixedEvaluator(lam=0.5), settings())
    with pytest.raises(SdaError, match="empty"):
        s.send("   ")
    with pytest.raises(PromptTooLongError, match="tokens"):
        s.send("word " * 3000)
    assert s.turns == []
    with pytest.raises(SdaError, match="nothing to regenerate"):
        s.regenerate()


def test_strip_think():
    assert strip_think("<think>plan\nmore</think>\nAnswer.") == "Answer."
    assert strip_think("No thinking here.") == "No thinking here."


# -- bugs fixed in issue 10 (mechanics, on the tiny random-weight GGUF) --------------------------------------
class FailsMidAnswer:
    """The real engine, except that its SDA answer fails after ``n`` tokens the way a llama.cpp decode failure
    does (``DecodeError`` out of the generator): fault injection, every token before it is real."""

    def __init__(self, engine, n: int):
        self.engine, self.n = engine, n

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def generate_tokens(self, *args, **kwargs):
        gen = self.engine.generate_tokens(*args, **kwargs)
        try:
            for i, ev in enumerate(gen):
                if i == self.n:
                    raise DecodeError(f"step {i}: llama_decode failed (injected)")
                yield ev
        finally:
            gen.close()

    def generate_pair_tokens(self, *args, **kwargs):  # a turn whose λ is fixed decodes both answers together
        gen = self.engine.generate_pair_tokens(*args, **kwargs)
        try:
            i = 0
            for who, ev in gen:
                if who == "aligned":
                    if i == self.n:
                        raise DecodeError(f"step {i}: llama_decode failed (injected)")
                    i += 1
                yield who, ev
        finally:
            gen.close()


def tiny_settings():
    # contrast none: the tiny model's byte-level prompts are long, and two turns must fit its 256-token context
    return TurnSettings(sampling=SamplingParams(seed=1, max_tokens=6, contrast="none"))


def test_a_stopped_regenerate_keeps_both_turns_when_the_two_questions_are_equal(tiny_engine):
    s = ChatSession(tiny_engine, FixedEvaluator(lam=0.5), tiny_settings())
    list(s.send("Again?"))
    list(s.send("Again?"))
    before = list(s.turns)
    gen = s.regenerate()
    assert next(gen).kind == "lambda"     # stopped before the first aligned token
    gen.close()
    assert s.turns == before


def test_an_engine_error_mid_answer_is_recorded_as_an_error_and_kept_out_of_the_history(tiny_engine):
    s = ChatSession(FailsMidAnswer(tiny_engine, 3), FixedEvaluator(lam=0.5), tiny_settings())
    kinds = []
    with pytest.raises(DecodeError, match="injected"):
        for ev in s.send("Hi there."):
            kinds.append(ev.kind)
    assert kinds.count("aligned_token") == 3
    bad = s.turns[-1]
    assert bad.finish_reason == "error" and len(bad.aligned_tokens) == 3
    assert any("injected" in w for w in bad.warnings)
    assert s.messages() == []             # the partial answer is not sent with the next prompt
    s.engine = tiny_engine
    list(s.send("Hello again."))
    assert [m["content"] for m in s.messages() if m["role"] == "user"] == ["Hello again."]


def test_a_fixed_score_is_the_lambda_source_fixed_everywhere(tiny_engine):
    s = ChatSession(tiny_engine, FixedEvaluator(score=30), tiny_settings())
    events = list(s.send("Hi."))
    lam = next(e for e in events if e.kind == "lambda")
    assert lam.source == "fixed" and lam.score == 30
    assert s.turns[-1].lam_source == "fixed" and s.turns[-1].lam == pytest.approx(core.lambda_from_score(30))
    events = list(s.regenerate())
    assert next(e for e in events if e.kind == "lambda").source == "fixed"
    assert s.turns[-1].lam_source == "fixed" and s.turns[-1].regenerations == 1


def test_auto_placement_is_the_presets_own_choice():
    from sda_local.presets import Preset
    from sda_local.turn import resolve_placement

    plain, matched = Preset("a", "Be kind."), Preset("b", "Be safe.", placement="matched")
    assert resolve_placement("auto", plain) == "user"          # a preset without one: the paper's placement
    assert resolve_placement("auto", matched) == "matched"
    assert resolve_placement("system", matched) == "system"    # an explicit choice wins
    s = TurnSettings(preset=matched)
    assert s.placement == "auto" and s.effective_placement == "matched"
    with pytest.raises(SdaError, match="placement must be one of auto, user, system, matched"):
        TurnSettings(preset=matched, placement="footer").check()
