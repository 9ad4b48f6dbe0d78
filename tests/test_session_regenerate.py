"""``ChatSession``'s regenerations on the tiny random-weight GGUF (mechanics): ``regenerate_base`` answers the last
message again through the one turn (a new base answer, then λ and the aligned answer), with the seed rule it shares
with ``regenerate`` (``next_draw``); a stop before its new answer puts the turn back; ``TurnRecord.from_dict``."""
from __future__ import annotations

import pytest

from sda_local.core import SamplingParams
from sda_local.errors import SdaError
from sda_local.judges import FixedEvaluator
from sda_local.session import ChatSession, TurnRecord, next_draw
from sda_local.turn import BaseToken, LambdaChosen, TurnSettings


def tiny_settings(seed: int | None = 1) -> TurnSettings:
    # contrast none: the tiny model's byte-level prompts are long, and two turns must fit its 256-token context
    return TurnSettings(sampling=SamplingParams(seed=seed, max_tokens=6, contrast="none"))


def session(engine, seed: int | None = 1) -> ChatSession:
    return ChatSession(engine, FixedEvaluator(lam=0.5), tiny_settings(seed))


def draws(engine, seed: int) -> list[tuple[str, str, int]]:
    """Send, regenerate the base answer, regenerate the aligned answer, regenerate the base answer: each turn's
    (base, aligned, draw)."""
    s = session(engine, seed)
    out = []
    for step in (s.send, s.regenerate_base, s.regenerate, s.regenerate_base):
        list(step("Hello?") if step == s.send else step())
        t = s.turns[-1]
        out.append((t.base, t.aligned, t.regenerations))
    return out


def test_regenerate_base_draws_a_new_base_answer_reproducibly_for_a_fixed_seed(tiny_engine):
    first = draws(tiny_engine, seed=1)
    assert [d for _, _, d in first] == [0, 1, 2, 3]  # one count for both kinds of regeneration
    bases = [b for b, _, _ in first]
    assert bases[1] != bases[0] and bases[2] == bases[1] and bases[3] not in bases[:3]
    assert len({a for _, a, _ in first}) == 4  # every draw is a new aligned answer
    assert draws(tiny_engine, seed=1) == first  # a fixed seed: the same draws again, in the same order


def test_regenerate_base_runs_the_whole_turn_and_keeps_the_settings_as_given(tiny_engine):
    s = session(tiny_engine)
    list(s.send("Hello?"))
    list(s.send("And then?"))
    before = list(s.turns)
    events = list(s.regenerate_base())
    assert any(isinstance(e, BaseToken) for e in events) and any(isinstance(e, LambdaChosen) for e in events)
    assert events[-1].turn is s.turns[-1] and len(s.turns) == 2 and s.turns[0] is before[0]
    new = s.turns[-1]
    assert new.user == "And then?" and new.base != before[1].base and new.regenerations == 1
    assert new.settings["sampling"]["seed"] == 1  # the record keeps the seed as given; its draw says the offset
    assert s.messages()[-1]["content"] == new.aligned
    list(s.regenerate())  # the new base answer is what an aligned regeneration reuses
    assert s.turns[-1].base == new.base and s.turns[-1].regenerations == 2


def test_a_stop_during_regenerate_base_puts_the_previous_turn_back(tiny_engine):
    s = session(tiny_engine)
    list(s.send("Hello?"))
    before, kept = list(s.turns), s.kept
    gen = s.regenerate_base()
    next(gen)  # under way: the turn is out of the chat while it runs
    assert s.turns == []
    gen.close()  # stopped before its new aligned answer was recorded
    assert s.turns == before and s.kept is kept
    list(s.regenerate())  # what regenerate reuses came back with it
    assert s.turns[-1].base == before[0].base and s.turns[-1].regenerations == 1


def test_the_seed_rule_counts_every_version_of_the_turn(tiny_engine):
    turn = TurnRecord.from_dict({"user": "u", "base": "b", "aligned": "a", "score": None, "lam": 0.5,
                                 "lam_source": "fixed", "evaluator": "fixed", "warnings": [], "settings": {},
                                 "timings": {}, "regenerations": 2})
    assert next_draw(turn) == 3 and next_draw(turn, drawn=5) == 6
    s = session(tiny_engine)
    list(s.send("Hello?"))
    first = s.turns[-1]
    list(s.regenerate_base())
    s.switch([first], drawn=1)  # back to version 1 (the chat's ‹): its next draw is not version 2's again
    list(s.regenerate_base())
    assert s.turns[-1].regenerations == 2


def test_regenerate_base_refuses_without_a_turn_and_bad_settings_before_it_starts(tiny_engine):
    s = session(tiny_engine)
    with pytest.raises(SdaError, match="nothing to regenerate"):
        s.regenerate_base()
    list(s.send("Hello?"))
    before, settings = list(s.turns), s.settings
    bad = TurnSettings(sampling=SamplingParams(seed=1, max_tokens=0))
    with pytest.raises(SdaError, match="invalid setting"):
        s.regenerate_base(bad)
    assert s.turns == before and s.settings is settings


def test_turn_records_come_back_from_their_dicts():
    rec = TurnRecord("u", "b", "a", None, 0.5, "fixed", "fixed", [], {}, {}, regenerations=1)
    assert TurnRecord.from_dict({**rec.to_dict(), "arena": {"vote": None}}) == rec  # other keys are ignored
    with pytest.raises(SdaError, match="that version is damaged"):
        TurnRecord.from_dict({"user": "u"}, "that version")
    with pytest.raises(SdaError, match="the turn is damaged"):
        TurnRecord.from_dict(["not", "a", "dict"])
