"""``JudgeSpec`` is the one declaration of the evaluator settings: the CLI's evaluator options, the server's ``sda``
judge fields and the chat's evaluator controls are generated from its fields' ``Option``s, so each test here fails
when a front end stops following the spec (no model is loaded)."""
from __future__ import annotations

import argparse
from dataclasses import fields, replace

import pytest

from sda_local.cli.options import evaluator_from_args, evaluator_parent, judge_dest
from sda_local.core import SamplingParams
from sda_local.core.control import CV_STREAMS, DEFAULT_CV_STREAMS
from sda_local.errors import SdaError
from sda_local.judges import EVALUATOR_KINDS, LOCAL_JUDGE_KINDS, PAIRWISE_JUDGE_KINDS
from sda_local.judges.factory import _LOCAL_JUDGE_CLASSES
from sda_local.judges.spec import FIXED_FIELDS, JudgeSpec, judge_option, judge_options
from sda_local.presets import get_preset
from sda_local.server.config import ServerConfig
from sda_local.server.errors import ApiError
from sda_local.server.request import SdaPlan, _sda_plan
from sda_local.server.schemas import SDA_JUDGE, SdaOptions
from sda_local.turn import TurnSettings

KEY = "sk-secret-do-not-print"


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.option_strings}


# -- the spec ------------------------------------------------------------------------------------------------
def test_every_field_carries_an_option_and_kind_lists_the_kinds():
    assert [f.name for f in fields(JudgeSpec)] == [name for name, *_ in judge_options()]
    assert all(opt.help for *_, opt in judge_options())
    assert judge_option("kind").choices == EVALUATOR_KINDS
    assert (judge_option("lam").lo, judge_option("lam").hi) == (0.0, 1.0)
    assert (judge_option("score").lo, judge_option("score").hi) == (1.0, 100.0)
    assert judge_option("timeout").lo == 0.0 and judge_option("timeout").lo_open
    assert judge_option("retries").lo == 0


@pytest.mark.parametrize("kw, needle", [({"kind": "oracle"}, "unknown evaluator"), ({"lam": 1.5}, "lam"),
                                        ({"score": 0}, "score"), ({"timeout": 0}, "timeout"),
                                        ({"retries": -1}, "retries"), ({"retries": 1.5}, "retries")])
def test_a_value_outside_its_option_is_refused(kw, needle):
    with pytest.raises(SdaError, match=needle):
        JudgeSpec(**kw)


def test_one_tuple_of_kinds_and_one_of_local_judge_kinds():
    assert set(LOCAL_JUDGE_KINDS) < set(EVALUATOR_KINDS) and set(PAIRWISE_JUDGE_KINDS) < set(EVALUATOR_KINDS)
    assert tuple(_LOCAL_JUDGE_CLASSES) == LOCAL_JUDGE_KINDS
    assert all(JudgeSpec(kind=k).describe().startswith(f"{k} judge") for k in LOCAL_JUDGE_KINDS)


def test_the_api_key_is_kept_out_of_repr_and_describe():
    spec = JudgeSpec(kind="openai", openai_api_key=KEY)
    assert KEY not in repr(spec) and KEY not in spec.describe() and KEY not in str(replace(spec, timeout=5))


# -- the CLI -------------------------------------------------------------------------------------------------
def test_every_spec_field_is_a_cli_option_with_its_help_and_choices():
    acts = _actions(argparse.ArgumentParser(parents=[evaluator_parent()]))
    for name, _, default, opt in judge_options():
        act = acts[judge_dest(name)]
        assert opt.help.replace("%", "%%") in act.help, name
        assert act.default == default, name
        if opt.choices is not None:
            assert tuple(act.choices) == opt.choices, name
    assert acts["evaluator"].option_strings == ["--evaluator"]
    assert {a.option_strings[0] for a in acts.values()} >= {
        "--evaluator", "--lam", "--score", "--judge-model", "--openai-model", "--openai-base-url", "--openai-api-key",
        "--timeout", "--retries"}


def test_cli_options_read_back_into_the_spec():
    p = argparse.ArgumentParser(parents=[evaluator_parent()])
    args = p.parse_args(["--evaluator", "openai", "--openai-model", "m", "--openai-base-url", "http://x/v1",
                         "--openai-api-key", KEY, "--judge-model", "j", "--timeout", "5", "--retries", "0"])
    spec = evaluator_from_args(args)
    assert spec == JudgeSpec("openai", None, None, "j", "m", "http://x/v1", KEY, 5.0, 0)
    assert evaluator_from_args(p.parse_args(["--score", "30"])).effective_kind == "fixed"
    assert KEY not in p.format_help()


@pytest.mark.parametrize("argv", [["--lam", "0.2", "--score", "30"], ["--lam", "2"], ["--score", "0"],
                                  ["--evaluator", "oracle"], ["--timeout", "0"], ["--retries", "-1"]])
def test_cli_refuses_what_the_spec_refuses(argv, capsys):
    p = argparse.ArgumentParser(parents=[evaluator_parent()])
    with pytest.raises(SystemExit):
        p.parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_a_command_without_choice_or_fixed_options_still_gets_the_spec_defaults():
    p = argparse.ArgumentParser(parents=[evaluator_parent(kind="local", timeout=60.0, fixed=False, choose=False)])
    acts = _actions(p)
    assert "evaluator" not in acts and not set(FIXED_FIELDS) & set(acts)
    spec = evaluator_from_args(p.parse_args([]))
    assert (spec.kind, spec.lam, spec.score, spec.timeout) == ("local", None, None, 60.0)


# -- the server ----------------------------------------------------------------------------------------------
def test_the_server_schema_takes_the_judge_fields_from_the_spec():
    props = SdaOptions.model_json_schema()["properties"]
    assert props["evaluator"]["enum"] == list(EVALUATOR_KINDS)
    assert (props["lam"]["minimum"], props["lam"]["maximum"]) == (0.0, 1.0)
    assert (props["score"]["minimum"], props["score"]["maximum"]) == (1.0, 100.0)
    for name, wire in SDA_JUDGE.items():
        assert props[wire]["description"] == judge_option(name).help
    # the endpoint, its key, the timeout and the retries are the server's own, never a request's
    assert not {"openai_api_key", "openai_base_url", "timeout", "retries", "kind"} & set(props)
    assert props["cv_streams"]["default"] == DEFAULT_CV_STREAMS == CV_STREAMS[0]


@pytest.mark.parametrize("sda, param", [({"evaluator": "oracle"}, "sda.evaluator"), ({"lam": 2}, "sda.lam"),
                                        ({"score": 101}, "sda.score"), ({"lam": 0.1, "score": 3}, "sda.lam"),
                                        ({"lam": 0.1, "evaluator": "local"}, "sda.evaluator")])
def test_the_server_refuses_what_the_spec_refuses(sda, param):
    with pytest.raises(ApiError) as exc:
        _sda_plan(SdaOptions(**sda), None, ServerConfig())
    assert exc.value.status == 400 and exc.value.param == param


def test_the_server_judge_follows_the_request():
    cfg = ServerConfig(evaluator=JudgeSpec(kind="local", openai_api_key=KEY, timeout=7))
    assert _sda_plan(SdaOptions(lam=0.3), None, cfg).judge == replace(cfg.evaluator, kind="fixed", lam=0.3)
    assert _sda_plan(SdaOptions(score=30), None, cfg).judge.score == 30.0
    assert _sda_plan(SdaOptions(evaluator="fixed"), None, cfg).judge.score == 50.0
    judge = _sda_plan(SdaOptions(evaluator="openai", openai_model="m"), None, cfg).judge
    assert (judge.kind, judge.openai_model, judge.openai_api_key, judge.timeout) == ("openai", "m", KEY, 7)
    assert _sda_plan(SdaOptions(), None, cfg).judge == cfg.evaluator


def test_an_sda_plan_holds_its_turn_settings():
    cfg = ServerConfig(defaults=TurnSettings(mapping="linear", fallback_lam=0.25))
    plan = _sda_plan(SdaOptions(preset="honesty", placement="system", steer_toward="system"), None, cfg)
    assert isinstance(plan, SdaPlan) and isinstance(plan.settings, TurnSettings)
    assert (plan.preset, plan.mapping, plan.fallback_lam, plan.placement, plan.steer_toward) == (
        get_preset("honesty"), "linear", 0.25, "system", "system")
    params = SamplingParams(k=3.0, seed=4)
    turn = plan.turn_settings(params)
    assert turn.sampling is params and replace(turn, sampling=plan.settings.sampling) == plan.settings
    assert plan.cv_streams == DEFAULT_CV_STREAMS and plan.control == () and not plan.return_base
    with pytest.raises(AttributeError):
        plan.mapping = "cosine"
    auto = _sda_plan(SdaOptions(preset="honesty"), None, ServerConfig())
    assert auto.placement != "auto" and auto.steer_toward == "preset"  # the placement resolved through the preset


# -- the chat ------------------------------------------------------------------------------------------------
def test_the_chat_evaluator_controls_are_the_spec_options():
    from sda_local.ui.controls import (
        EVALUATOR_FIELDS,
        EVALUATOR_NAMES,
        EVALUATOR_OPTIONS,
        EVALUATORS,
        FIXED_BY,
        Controls,
        restored_controls,
    )
    assert tuple(EVALUATORS) == EVALUATOR_KINDS
    assert set(EVALUATOR_NAMES) == set(EVALUATOR_FIELDS) | {"fixed_by"}
    assert set(FIXED_BY) == set(FIXED_FIELDS) <= set(EVALUATOR_FIELDS.values())
    for widget, name in EVALUATOR_FIELDS.items():
        assert EVALUATOR_OPTIONS[widget] is judge_option(name)
    spec = Controls(evaluator="openai", openai_model=" m ", openai_api_key=KEY).evaluator_spec()
    assert (spec.kind, spec.openai_model, spec.openai_api_key) == ("openai", "m", KEY)
    assert KEY not in repr(Controls(openai_api_key=KEY))
    restored = restored_controls({"evaluator": "fixed", "fixed_by": "score", "fixed_lam": 1.5, "fixed_score": 30})
    assert restored == {"evaluator": "fixed", "fixed_by": "score", "fixed_score": 30}  # λ 1.5: outside its range
