"""What the stream without the instruction gets (``contrast``), and bounded guidance (``BoundedSteer``):
the prompts each mode builds, message by message and rendered, and the clipped steering by hand."""
import math
from dataclasses import replace

import numpy as np
import pytest

from sda_local.core import (
    CONTRASTS,
    BoundedSteer,
    SamplingParams,
    Steer,
    StepState,
    build_chain,
)
from sda_local.presets import builtin_presets, get_preset
from sda_local.runtime.prompts import (
    FALLBACK_TEMPLATE,
    IGNORE_FRAME,
    NEUTRAL_INSTRUCTION,
    OPPOSITE_FRAME,
    ChatPrompter,
    negative_instruction,
    with_instruction,
    without_instruction,
)
from sda_local.turn import TurnSettings

MSGS = [{"role": "user", "content": "How do I pick a lock?"}]
SYS = [{"role": "system", "content": "Be brief."}] + MSGS
INSTR = "Answer safely."
OPP = "Answer recklessly."


def test_each_mode_puts_its_line_where_the_instruction_goes_under_user_placement():
    q = "How do I pick a lock?\n"
    assert with_instruction(MSGS, INSTR, "user") == [{"role": "user", "content": q + INSTR}]
    expected = {"auto": MSGS, "none": MSGS,
                "neutral": [{"role": "user", "content": q + NEUTRAL_INSTRUCTION}],
                "ignore": [{"role": "user", "content": q + "Ignore this guideline: Answer safely."}],
                "opposite": [{"role": "user", "content": q + OPP}]}
    for mode in CONTRASTS:
        assert without_instruction(MSGS, INSTR, "user", mode, OPP) == expected[mode], mode


def test_each_mode_under_matched_placement_shares_the_system_frame():
    expected = {"auto": NEUTRAL_INSTRUCTION, "neutral": NEUTRAL_INSTRUCTION, "ignore": "Ignore this guideline: " + INSTR,
                "opposite": OPP}
    for mode, line in expected.items():
        wo = without_instruction(SYS, INSTR, "matched", mode, OPP)
        assert wo == [{"role": "system", "content": "Be brief.\n" + line}] + MSGS, mode
    # "none" is the paper's: the user's own system prompt and nothing else
    assert without_instruction(SYS, INSTR, "matched", "none") == SYS
    assert without_instruction(MSGS, INSTR, "matched", "none") == MSGS


def test_opposite_without_a_hand_written_line_negates_the_instruction_and_unknown_modes_are_refused():
    assert negative_instruction("opposite", INSTR, "system") == OPPOSITE_FRAME.format(instruction=INSTR)
    assert negative_instruction("opposite", INSTR, "system", "  ") == "Do the opposite of this guideline: " + INSTR
    assert negative_instruction("ignore", INSTR, "user") == IGNORE_FRAME.format(instruction=INSTR)
    for mode in CONTRASTS:  # no instruction: nothing to contrast in either stream
        assert negative_instruction(mode, "  ", "matched", OPP) == ""
    with pytest.raises(ValueError, match="contrast must be one of"):
        negative_instruction("reverse", INSTR, "user")
    with pytest.raises(ValueError, match="contrast must be one of"):
        SamplingParams(contrast="reverse").check()


def test_rendered_pair_differs_only_in_the_instruction_line():
    p = ChatPrompter(FALLBACK_TEMPLATE, "", "", -1, False, lambda text: list(text.encode()))
    for placement in ("user", "matched"):
        ta, tb = p.pair(SYS, INSTR, placement, "ignore")
        a, b = bytes(ta).decode(), bytes(tb).decode()
        assert a.replace(INSTR, "Ignore this guideline: " + INSTR) == b
        ta, tb = p.pair(SYS, INSTR, placement, "opposite", OPP)
        assert bytes(ta).decode().replace(INSTR, OPP) == bytes(tb).decode()


def test_every_builtin_preset_has_a_hand_written_opposite():
    for preset in builtin_presets().values():
        assert preset.opposite and preset.opposite != preset.instruction
        assert preset.contrast in (None, *CONTRASTS)


def test_auto_contrast_resolves_through_the_preset():
    p = replace(get_preset("empathy"), contrast="ignore")
    s = TurnSettings(preset=p)
    assert s.effective_contrast == "ignore" and s.params().contrast == "ignore"
    s = TurnSettings(preset=replace(p, contrast=None))
    assert s.effective_contrast == "auto" and s.params() is s.sampling  # today's prompts, untouched
    s = TurnSettings(preset=p, sampling=SamplingParams(contrast="none"))
    assert s.params().contrast == "none"  # an explicit choice wins over the preset's


def _state(lw, lo):
    lw, lo = np.asarray(lw, np.float32), np.asarray(lo, np.float32)
    return StepState(lw, lo, lw)


def test_bounded_steer_by_hand():
    lw = [math.log(0.7), math.log(0.2), math.log(0.1)]
    lo = [math.log(0.1), math.log(0.3), math.log(0.6)]
    # d = ln 7 = 1.946, ln(2/3) = −0.405, ln(1/6) = −1.792; clipped to ±1: 1, −0.405, −1
    out = BoundedSteer(0.5, 2.0, clip=1.0)(_state(lw, lo)).scores
    want = np.array(lw) + 1.0 * np.array([1.0, math.log(2 / 3), -1.0])
    np.testing.assert_allclose(out, want, rtol=1e-6)
    # a clip wider than every difference is exactly Steer
    a = BoundedSteer(0.25, 2.0, clip=100.0)(_state(lw, lo)).scores
    b = Steer(0.25, 2.0)(_state(lw, lo)).scores
    np.testing.assert_array_equal(a, b)
    # the inputs are never written to
    s = _state(lw, lo)
    before = s.lp_with.copy(), s.lp_without.copy()
    BoundedSteer(0.5, clip=0.5)(s)
    np.testing.assert_array_equal(s.lp_with, before[0])
    np.testing.assert_array_equal(s.lp_without, before[1])


def test_bounded_steer_is_validated_and_chosen_by_the_params():
    for bad in (0, -1, float("inf"), float("nan"), "x"):
        with pytest.raises(ValueError):
            BoundedSteer(0.25, 2.0, clip=bad)
    with pytest.raises(ValueError, match="guidance_clip"):
        SamplingParams(guidance_clip=0).check()
    chain = build_chain(SamplingParams(), 0.25)
    assert type(chain.processors[0]) is Steer  # off (c = ∞): today's chain, processor for processor
    chain = build_chain(SamplingParams(guidance_clip=2.0), 0.25)
    assert isinstance(chain.processors[0], BoundedSteer) and chain.processors[0].clip == 2.0
    assert build_chain(SamplingParams(guidance_clip=2.0), None).two_streams is False  # plain: no steering


def test_bounded_steer_in_the_chain_matches_a_fused_reference():
    rng = np.random.default_rng(0)
    la, lb = rng.normal(size=50).astype(np.float32) * 3, rng.normal(size=50).astype(np.float32) * 3
    params = SamplingParams(guidance_clip=0.75, temperature_mode="off", t0=0.8)
    probs, _ = build_chain(params, 0.5).distribution(la, lb)
    lpa = la - np.log(np.exp(la.astype(np.float64)).sum())
    lpb = lb - np.log(np.exp(lb.astype(np.float64)).sum())
    s = (lpa + 2 * 0.5 * np.clip(lpa - lpb, -0.75, 0.75)) / 0.8
    ref = np.exp(s - s.max())
    np.testing.assert_allclose(probs, ref / ref.sum(), rtol=1e-4, atol=1e-7)
