"""A turn's versions, the chat's ‹ 1/2 ›: a regeneration (of the aligned or of the base answer) keeps the answers it
replaces as an older version of that turn.

Each version is a branch: the turn, then the turns that followed it while that version was shown.  The version
shown is the active one (as in the chat apps people use every day): its answers are the ones in the history the
next message is sent with; the others wait, as saved turn dicts.  Switching (``SessionState.show_version``) puts
the branch shown until then away and brings the other one back, later turns included.

Saved and exported in the turn's dict: ``"versions"``, one entry per version, the shown one ``null``, each other a
list of turn dicts (that version of the turn, then the turns after it, each with its own ``"versions"``), and
``"version"``, the number (from 1) of the one shown.  A turn without them has one version: conversations saved
before versions existed load as they were.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Versions:
    """The versions of one turn with more than one.  ``branches[i]``: version i + 1 as saved (None for the shown
    one: it is in the chat); ``kept[i]``: what ``ChatSession.regenerate`` keeps for that branch's last turn, while
    it is hidden (in memory only: a reloaded one needs a new turn to regenerate its aligned answer)."""

    branches: list[list[dict] | None]
    shown: int = 0
    kept: list[object | None] = field(default_factory=list)

    def __post_init__(self):
        self.kept = (self.kept + [None] * len(self.branches))[:len(self.branches)]

    @property
    def count(self) -> int:
        return len(self.branches)

    def to_dict(self) -> dict:
        return {"versions": [None if b is None else [dict(t) for t in b] for b in self.branches],
                "version": self.shown + 1}

    def hide_shown(self, branch: list[dict], kept: object | None) -> None:
        """The shown version becomes ``branch`` (saved as it stands now)."""
        self.branches[self.shown], self.kept[self.shown] = branch, kept

    def add_shown(self) -> None:
        """A new version, shown (the regenerated turn, in the chat)."""
        self.branches.append(None)
        self.kept.append(None)
        self.shown = len(self.branches) - 1

    def drawn(self) -> int:
        """The highest draw (``regenerations``) among the hidden versions' turns (0 when none says)."""
        draws = [b[0].get("regenerations") for b in self.branches if b]
        return max([d for d in draws if isinstance(d, int) and not isinstance(d, bool)], default=0)

    def take(self, i: int) -> tuple[list[dict], object | None]:
        """Version ``i`` (from 0) becomes the shown one: its branch and kept (the caller puts them in the chat)."""
        branch, kept = self.branches[i], self.kept[i]
        self.branches[i], self.kept[i], self.shown = None, None, i
        return branch, kept

    @classmethod
    def parse(cls, turn: dict) -> Versions | None:
        """The versions a saved turn dict carries; None when it has none, or they are not in the saved form."""
        found, number = turn.get("versions"), turn.get("version")
        if not isinstance(found, list) or len(found) < 2 or not isinstance(number, int) \
                or not 1 <= number <= len(found) or found[number - 1] is not None:
            return None
        branches = [b for i, b in enumerate(found) if i != number - 1]
        if not all(isinstance(b, list) and b and all(isinstance(t, dict) for t in b) for b in branches):
            return None
        return cls([None if b is None else [dict(t) for t in b] for b in found], number - 1)
