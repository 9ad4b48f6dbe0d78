"""Where the instruction goes: the three placements, message by message, and rendered with a real template."""
import pytest

from sda_local.runtime.prompts import (
    FALLBACK_TEMPLATE,
    NEUTRAL_INSTRUCTION,
    PLACEMENTS,
    ChatPrompter,
    with_instruction,
    without_instruction,
)

MSGS = [{"role": "user", "content": "How do I pick a lock?"}]
SYS = [{"role": "system", "content": "Be brief."}] + MSGS
INSTR = "Answer safely."


def test_user_placement_appends_to_the_last_user_message():
    assert with_instruction(MSGS, INSTR, "user") == [{"role": "user", "content": "How do I pick a lock?\nAnswer safely."}]
    assert without_instruction(MSGS, INSTR, "user") == MSGS


def test_system_placement_adds_or_extends_the_system_message():
    assert with_instruction(MSGS, INSTR, "system")[0] == {"role": "system", "content": INSTR}
    assert with_instruction(SYS, INSTR, "system")[0] == {"role": "system", "content": "Be brief.\nAnswer safely."}
    assert without_instruction(SYS, INSTR, "system") == SYS


def test_matched_placement_gives_both_streams_the_same_frame():
    w, wo = with_instruction(SYS, INSTR, "matched"), without_instruction(SYS, INSTR, "matched")
    assert w[0] == {"role": "system", "content": "Be brief.\nAnswer safely."}
    assert wo[0] == {"role": "system", "content": "Be brief.\n" + NEUTRAL_INSTRUCTION}
    assert w[1:] == wo[1:] == MSGS
    # no system prompt of the user's: each stream gets one line of its own in the same place
    assert without_instruction(MSGS, INSTR, "matched")[0] == {"role": "system", "content": NEUTRAL_INSTRUCTION}
    # an empty instruction changes nothing in either stream
    assert with_instruction(MSGS, "  ", "matched") == without_instruction(MSGS, "", "matched") == MSGS


def test_inputs_are_not_modified_and_unknown_placement_is_refused():
    before = [dict(m) for m in SYS]
    with_instruction(SYS, INSTR, "matched")
    without_instruction(SYS, INSTR, "matched")
    assert SYS == before
    with pytest.raises(ValueError, match="placement must be one of"):
        with_instruction(MSGS, INSTR, "footer")
    assert PLACEMENTS == ("user", "system", "matched")


def test_matched_pair_differs_only_inside_the_system_message():
    """Rendered: the two prompts share everything but the system line (the frame cancels)."""
    p = ChatPrompter(FALLBACK_TEMPLATE, "", "", -1, False, lambda text: list(text.encode()))
    w = p.render(with_instruction(MSGS, INSTR, "matched"))
    wo = p.render(without_instruction(MSGS, INSTR, "matched"))
    assert w.replace(INSTR, NEUTRAL_INSTRUCTION) == wo
    ta, tb = p.pair(MSGS, INSTR, "matched")
    assert bytes(ta).decode() == w and bytes(tb).decode() == wo
