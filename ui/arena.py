"""Arena mode's data: a turn's base and aligned answers shown blind as A and B, the user's vote, and what the
votes give: preference pairs for ``sda-local palrs extract --pairs`` and the user's own win rate of SDA over base.

A turn (the chat's exported turn dict) carries ``"arena": {"a": "aligned" | "base", "vote": "A" | "B" | "tie" |
None}``: which answer was shown as A, and the vote.  The win rate is the paper's measure, (W − L) / N over the
N votes (ties count in N), with its standard error (outcomes +1 / 0 / −1, sample std / √N).
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Iterable

from sda_local.evaluation.metrics import mean_se
from sda_local.palrs.pairs import Pair, write_pairs

SYSTEMS = ("aligned", "base")
VOTES = ("A", "B", "tie")


def new_arena(rng: random.Random | None = None) -> dict:
    """A turn's arena entry: which answer is A (at random), no vote yet."""
    return {"a": (rng or random).choice(SYSTEMS), "vote": None}


def shown_as(arena: dict) -> dict[str, str]:
    """{"A": system, "B": system} for a turn's arena entry."""
    a = arena.get("a") if arena.get("a") in SYSTEMS else "aligned"
    return {"A": a, "B": SYSTEMS[1 - SYSTEMS.index(a)]}


def winner(arena: dict | None) -> str | None:
    """"aligned", "base", "tie", or None when the turn has no vote."""
    vote = (arena or {}).get("vote")
    if vote not in VOTES:
        return None
    return "tie" if vote == "tie" else shown_as(arena)[vote]


def _answers(turn: dict) -> dict[str, str]:
    return {"aligned": (turn.get("aligned") or "").strip(), "base": (turn.get("base") or "").strip()}


def preference_pairs(turns: Iterable[dict]) -> list[Pair]:
    """One pair per decided vote (not a tie) whose two answers are non-empty and differ: prompt = the user's
    message, chosen = the preferred answer."""
    pairs = []
    for t in turns:
        w = winner(t.get("arena"))
        answers = _answers(t)
        prompt = (t.get("user") or "").strip()
        if w in SYSTEMS and prompt and all(answers.values()) and answers["aligned"] != answers["base"]:
            loser = SYSTEMS[1 - SYSTEMS.index(w)]
            pairs.append(Pair(prompt, answers[w], answers[loser], {"winner": "sda" if w == "aligned" else "base"}))
    return pairs


@dataclass(frozen=True)
class WinRate:
    """SDA (the aligned answer) against base over the user's votes."""

    wins: int
    losses: int
    ties: int
    rate: float      # (W − L) / N
    se: float        # standard error of ``rate``

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    def text(self) -> str:
        if not self.n:
            return "no votes yet: switch Arena on and pick the better answer of a turn"
        return (f"SDA over base: win rate (W − L)/N = {self.rate:+.2f} ± {self.se:.2f} (standard error), "
                f"N = {self.n} votes: {self.wins} SDA, {self.losses} base, {self.ties} ties")


def win_rate(turns: Iterable[dict]) -> WinRate:
    outcomes = [{"aligned": 1, "base": -1, "tie": 0}[w] for w in (winner(t.get("arena")) for t in turns) if w]
    if not outcomes:
        return WinRate(0, 0, 0, 0.0, 0.0)
    rate, se = mean_se(outcomes)
    return WinRate(outcomes.count(1), outcomes.count(-1), outcomes.count(0), rate, se)


def export_preferences(turns: Iterable[dict], path: str | os.PathLike) -> tuple[int, WinRate]:
    """Write the votes' preference pairs as JSONL (``palrs.pairs`` format) to ``path``; (pairs written, win rate)."""
    turns = list(turns)
    return write_pairs(path, preference_pairs(turns)), win_rate(turns)
