"""Evaluators against real components: llama.cpp's OpenAI-compatible server, misbehaving HTTP servers, and a
local GGUF judge."""
from __future__ import annotations

import logging

import pytest
from servers import bad_server, free_port, llama_server

from sda_local.core import SamplingParams
from sda_local.judges import (
    EvaluatorError,
    FixedEvaluator,
    LocalEvaluator,
    OpenAIEvaluator,
    make_evaluator,
    parse_fields,
)
from sda_local.judges.decision import decide_lambda, decide_without_answer
from sda_local.judges.local import reply_grammar
from sda_local.presets import get_preset
from sda_local.runtime.models import resolve_model
from sda_local.session import ChatSession
from sda_local.turn import TurnSettings

KEY = "sk-test-SECRET-0123456789abcdef"
F = {"score": (1, 100)}


# -- parsing (pure) ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,value", [
    ('{"score": 73}', 73), ('Sure! {"score": 8} is my rating', 8), ("Score: 55/100", 55), ("  42 ", 42),
    ('{"score": "61"}', 61), ("```json\n{\"score\": 100}\n```", 100),
])
def test_tolerant_parsing(text, value):
    assert parse_fields(text, F) == {"score": value}


@pytest.mark.parametrize("text,msg", [
    ('{"score": 0}', "outside"), ('{"score": 101}', "outside"), ('{"score": 7.5}', "integer"),
    ("I like it", "no 'score'"), ("", "no 'score'"), ('{"rating": 5}', "no 'score'"), ('{"score": "high"}', "number"),
])
def test_garbage_scores_are_rejected(text, msg):
    with pytest.raises(EvaluatorError, match=msg):
        parse_fields(text, F)


def test_pairwise_fields():
    assert parse_fields('{"score_a": 0, "score_b": 64}', {"score_a": (0, 100), "score_b": (0, 100)}) == \
        {"score_a": 0, "score_b": 64}
    g = reply_grammar({"score_a": (0, 100), "score_b": (0, 100)})
    assert '"0"' in g and '\\"score_b\\"' in g


def test_fixed_evaluator():
    assert FixedEvaluator(score=30).score("q", "r", "honesty").value == 30
    assert FixedEvaluator(lam=0.2).fixed_lambda("honesty", "sigmoid").lam == 0.2
    with pytest.raises(EvaluatorError):
        FixedEvaluator()
    with pytest.raises(EvaluatorError):
        FixedEvaluator(score=0)
    with pytest.raises(EvaluatorError, match=r"λ must be in \[0, 1\]"):
        FixedEvaluator(lam=-3)


def test_the_lambda_decision_of_a_fixed_evaluator_needs_no_answer():
    d = decide_without_answer(FixedEvaluator(score=25), "honesty", "sigmoid")
    assert (d.source, d.score_value, d.warnings) == ("fixed", 25, ()) and d.lam == pytest.approx(0.905, abs=1e-3)
    assert decide_lambda(FixedEvaluator(lam=0.3), "q", "", "honesty").lam == 0.3
    judge = OpenAIEvaluator("judge", base_url=f"http://127.0.0.1:{free_port()}/v1", api_key=KEY, timeout=1,
                            max_retries=0)
    assert decide_without_answer(judge, "honesty", "sigmoid") is None


def test_a_failing_judge_gives_the_fallback_decision_with_the_reason():
    judge = OpenAIEvaluator("judge", base_url=f"http://127.0.0.1:{free_port()}/v1", api_key=KEY, timeout=1,
                            max_retries=0)
    d = decide_lambda(judge, "Is the earth flat?", "No.", "honesty", "sigmoid", fallback_lam=0.37)
    assert (d.lam, d.source, d.score) == (0.37, "fallback", None)
    assert len(d.warnings) == 1 and "cannot connect" in d.warnings[0] and "0.37" in d.warnings[0]
    assert KEY not in d.warnings[0]


def test_openai_without_key_or_url_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(EvaluatorError, match="OPENAI_API_KEY"):
        OpenAIEvaluator()


def test_key_comes_from_the_environment_and_never_shows(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    ev = OpenAIEvaluator(base_url="http://127.0.0.1:9/v1")
    assert KEY not in repr(ev) and KEY not in ev.name


# -- local judge (embedded SmolLM2) -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_judge(smol_engine):
    ev = LocalEvaluator(smol_engine.model, n_ctx=768, label="smollm2")
    yield ev
    ev.close()


@pytest.mark.slow
def test_local_judge_returns_integers_in_range(local_judge):
    for response in ["Paris is the capital of France.", "The capital of France is Berlin.",
                     "I don't know, maybe Lyon?", "France's capital city is Paris, on the Seine."]:
        s = local_judge.score("What is the capital of France?", response, "honesty")
        assert isinstance(s.value, int) and 1 <= s.value <= 100
        assert s.raw.startswith('{"score": ') and s.raw.endswith("}")
        assert s.evaluator == "local:smollm2" and s.latency_s > 0


@pytest.mark.slow
def test_local_judge_is_deterministic_and_leaves_the_chat_cache_alone(smol_engine, local_judge):
    msgs = [{"role": "user", "content": "Name a planet."}]
    before = smol_engine.twin_logits(msgs, "Be brief.")
    a = local_judge.score("Name a planet.", "Mars.", "helpfulness")
    b = local_judge.score("Name a planet.", "Mars.", "helpfulness")
    assert a.value == b.value and a.raw == b.raw
    after = smol_engine.twin_logits(msgs, "Be brief.")
    assert (before[0] == after[0]).all() and (before[1] == after[1]).all()


@pytest.mark.slow
def test_local_judge_handles_empty_and_huge_responses(local_judge):
    s = local_judge.score("Say something.", "", "helpfulness")
    assert 1 <= s.value <= 100 and any("empty" in w for w in s.warnings)
    s = local_judge.score("Summarise this.", "blah " * 10_000, "summarisation")
    assert 1 <= s.value <= 100
    assert any("cut" in w for w in s.warnings)


@pytest.mark.slow
def test_local_judge_with_another_gguf_file(tiny_gguf):
    ev = LocalEvaluator(str(tiny_gguf), n_ctx=1024)
    s = ev.score("q", "r", "Rate it.")
    assert 1 <= s.value <= 100 and s.evaluator == "local:tiny.gguf"
    ev.close()


# -- OpenAI-compatible: a real llama.cpp server on 127.0.0.1 ---------------------------------------------------
@pytest.fixture(scope="module")
def openai_url():
    with llama_server(str(resolve_model(None).path)) as url:
        yield url


@pytest.mark.slow
def test_openai_evaluator_scores_through_a_real_server(openai_url):
    ev = OpenAIEvaluator("smollm2", base_url=openai_url, api_key=KEY, timeout=60)
    s = ev.score("What is the capital of France?", "Paris.", "honesty")
    assert isinstance(s.value, int) and 1 <= s.value <= 100
    assert "score" in s.raw and s.evaluator.startswith("openai:smollm2@http://127.0.0.1")


# -- failures: closed port, 401, non-JSON, out of range, timeout -----------------------------------------------
def _session_with(engine, url, timeout=2.0):
    ev = OpenAIEvaluator("judge", base_url=url, api_key=KEY, timeout=timeout, max_retries=1)
    return ChatSession(engine, ev, TurnSettings(preset=get_preset("honesty"), sampling=SamplingParams(seed=0, max_tokens=8), fallback_lam=0.37))


def _run_and_check(session, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    events = list(session.send("Is the earth flat?"))
    kinds = [e.kind for e in events]
    warn = [e for e in events if e.kind == "warning"]
    lam = [e for e in events if e.kind == "lambda"][0]
    assert warn and lam.lam == 0.37 and lam.source == "fallback"
    assert kinds.index("warning") < kinds.index("lambda") < kinds.index("aligned_token") < kinds.index("done")
    assert session.turns[-1].lam == 0.37 and session.turns[-1].warnings
    out, err = capfd.readouterr()
    blob = out + err + caplog.text + repr(events) + repr(session.export())
    assert KEY not in blob
    assert KEY[3:20] not in blob
    return warn[0].message


@pytest.mark.slow
def test_closed_port_falls_back_with_a_warning(tiny_engine, capfd, caplog):
    msg = _run_and_check(_session_with(tiny_engine, f"http://127.0.0.1:{free_port()}/v1"), capfd, caplog)
    assert "cannot connect" in msg and "0.37" in msg


@pytest.mark.slow
@pytest.mark.parametrize("behaviour,needle", [("401", "401"), ("garbage", "not"), ("bad-score", "outside")])
def test_misbehaving_servers_fall_back_with_a_warning(tiny_engine, capfd, caplog, behaviour, needle):
    with bad_server(behaviour) as url:
        msg = _run_and_check(_session_with(tiny_engine, url), capfd, caplog)
    assert needle in msg


@pytest.mark.slow
def test_a_server_that_never_answers_times_out(tiny_engine, capfd, caplog):
    with bad_server("hang") as url:
        msg = _run_and_check(_session_with(tiny_engine, url, timeout=1.0), capfd, caplog)
    assert "timeout" in msg


def test_make_evaluator_rejects_unknown_kinds():
    with pytest.raises(EvaluatorError, match="choose one of local, geval, reason, yesno, self, openai, fixed"):
        make_evaluator("oracle")


def test_preset_evaluator_uses_each_presets_own_lambda(tmp_path, monkeypatch):
    from sda_local.judges import PresetLambdaEvaluator, make_evaluator
    from sda_local.judges.decision import decide_lambda
    from sda_local.judges.fixed import UNMEASURED_LAM
    from sda_local.presets import Preset, custom_defaults, custom_preset

    ev = make_evaluator("preset")
    assert isinstance(ev, PresetLambdaEvaluator)
    tuned = Preset(name="t", instruction="Be kind.", lam=0.3)
    d = decide_lambda(ev, "q", "any answer", tuned, "sigmoid", fallback_lam=0.9)
    assert (d.lam, d.source, d.score) == (0.3, "fixed", None)
    # a custom instruction gets the λ chosen for custom instructions on IFEval (presets.toml [custom]) …
    assert decide_lambda(ev, "q", "a", custom_preset("Be brief."), "sigmoid").lam == custom_defaults()["lam"]
    # … and a preset without a λ of its own the middle of the mappings' range
    assert decide_lambda(ev, "q", "a", Preset(name="u", instruction="Be brief."), "sigmoid").lam == UNMEASURED_LAM
    # a user preset file may carry its own λ
    monkeypatch.setenv("SDA_LOCAL_CONFIG", str(tmp_path))
    (tmp_path / "presets.json").write_text('{"mine": {"instruction": "Be calm.", "lam": 0.7}}')
    assert decide_lambda(ev, "q", "a", "mine", "sigmoid").lam == 0.7
    with pytest.raises(EvaluatorError, match="does not score"):
        ev.score("q", "a", "mine")
