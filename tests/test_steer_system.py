"""Steering toward the conversation's own system prompt (``TurnSettings.steer_toward = "system"``): the system
message is in exactly one stream, the base answer sees the conversation as written, and the CLI offers it."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from sda_local.core import SamplingParams
from sda_local.errors import SdaError
from sda_local.judges import FixedEvaluator
from sda_local.presets import custom_defaults
from sda_local.runtime.engine import collect
from sda_local.turn import TurnSettings, TurnTrace, answer, steer_target

PIRATE = "Always answer like a pirate, and end every answer with Arr."
CONVO = [{"role": "system", "content": PIRATE}, {"role": "user", "content": "Where is the library?"}]


def settings(**kw) -> TurnSettings:
    return TurnSettings(steer_toward="system", sampling=SamplingParams(max_tokens=6, seed=5, **kw))


def texts(engine, convo, s: TurnSettings) -> tuple[str, str]:
    msgs, st = steer_target(list(convo), s)
    ta, tb = engine.prompter.pair(msgs, st.preset.instruction, st.effective_placement, st.effective_contrast,
                                  st.preset.opposite)
    return engine.model.detokenize(ta), engine.model.detokenize(tb)


@pytest.mark.parametrize("contrast", ["none", "neutral", "ignore", "opposite"])
def test_the_system_message_is_in_exactly_one_stream(tiny_engine, contrast):
    with_, without = texts(tiny_engine, CONVO, settings(contrast=contrast))
    assert with_.count(PIRATE) == 1 and PIRATE not in without.replace("Ignore this guideline: " + PIRATE, "") \
        .replace("Do the opposite of this guideline: " + PIRATE, "")
    assert with_ == tiny_engine.model.detokenize(tiny_engine.prompt_tokens(CONVO))  # the conversation as written
    if contrast == "ignore":
        assert "Ignore this guideline: " + PIRATE in without
    if contrast == "none":
        assert "Where is the library?" in without and "system" not in without.lower().split("user")[0][-1:]


def test_without_a_system_message_it_says_what_to_give():
    with pytest.raises(SdaError, match="system message"):
        steer_target([{"role": "user", "content": "Hi"}], settings())
    msgs, s = steer_target(list(CONVO), replace(settings(), steer_toward="preset"))
    assert msgs == CONVO and s.preset.name == "helpfulness"  # the preset as before


def test_it_uses_the_custom_instruction_settings(tiny_engine):
    msgs, s = steer_target(list(CONVO), settings())
    d = custom_defaults()
    assert msgs == CONVO[1:] and s.preset.instruction == PIRATE and s.effective_placement == "system"
    assert s.preset.lam == d["lam"] and s.effective_contrast == d["contrast"]


def test_a_turn_steers_toward_it_and_the_base_answer_keeps_it(tiny_engine):
    s = settings()
    lam = custom_defaults()["lam"]
    together = TurnTrace.run(answer(tiny_engine, FixedEvaluator(lam=lam), CONVO, s, base="always"))
    apart = TurnTrace.run(answer(tiny_engine, FixedEvaluator(lam=lam), CONVO, s, base="always", together=False))
    assert together.aligned.token_ids == apart.aligned.token_ids
    assert together.base.token_ids == apart.base.token_ids
    # the base answer: the conversation as written, plain sampling
    assert apart.base.token_ids == collect(tiny_engine.generate_plain(CONVO, params=s.params())).token_ids
    # the aligned answer: SDA toward the system message, placed where it was
    steered = steer_target(list(CONVO), s)[1].params()  # (the contrast resolved through the custom settings)
    direct = collect(tiny_engine.generate(CONVO[1:], PIRATE, lam, placement="system", params=steered))
    assert together.aligned.token_ids == direct.token_ids


def test_the_cli_steers_toward_the_system_prompt(tiny_gguf):
    r = subprocess.run([sys.executable, "-m", "sda_local.cli", "generate", "Where is the library?", "--model",
                        str(tiny_gguf), "--system", PIRATE, "--steer-toward", "system", "--max-tokens", "4",
                        "--seed", "1", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "sda_local.cli", "generate", "Hi", "--model", str(tiny_gguf),
                        "--steer-toward", "system", "--max-tokens", "4"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "system message" in r.stderr
