"""The placement axis of the evaluation grids: which placements a config holds, and how a system is named.

A grid of one placement is the single setting: its names carry no placement (``sda λ=0.5``), as in runs made
before the grid existed, so those runs resume.  With several, the placement goes into the name before any
plausibility tag: ``sda λ=0.5 matched α=0.1``.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import SdaError
from ..runtime.prompts import PLACEMENTS

# placements whose "without" stream is the plain conversation (only "matched" adds a neutral system line)
PLAIN_WITHOUT = ("user", "system")


def normalise_placements(placement: str, placements: Sequence[str] | None) -> tuple[str, list[str] | None]:
    """(the first placement, the grid or None when it holds one placement); ValueError naming a bad one."""
    grid = list(dict.fromkeys(placements or ()))
    for p in [*grid, placement]:
        if p == "auto":
            raise SdaError("an evaluation grid names its placements (user, system, matched); 'auto' is the chat's "
                           "and generate's per-preset choice")
        if p not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, got {p!r}")
    if not grid:
        return placement, None
    return grid[0], (grid if len(grid) > 1 else None)


def with_placement(name: str, placement: str, grid: Sequence[str]) -> str:
    """``name`` with the placement inserted before its `` α=…`` tag (unchanged for a one-placement grid)."""
    if len(grid) < 2:
        return name
    head, sep, alpha = name.partition(" α=")
    return f"{head} {placement}{sep}{alpha}"
