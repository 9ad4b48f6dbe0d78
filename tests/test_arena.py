"""Arena votes → preference pairs (the format `sda-local palrs extract --pairs` reads) and the win rate of SDA
over base, (W − L)/N with its standard error."""
from __future__ import annotations

import json
import math
import random
import subprocess
import sys

import pytest
from sda_local.ui.arena import (
    export_preferences,
    new_arena,
    preference_pairs,
    shown_as,
    win_rate,
    winner,
)

from sda_local.palrs.pairs import load_pairs


def turn(user, aligned, base, a, vote):
    return {"user": user, "aligned": aligned, "base": base, "arena": {"a": a, "vote": vote}}


TURNS = [
    turn("Tips for sleep?", "Keep a regular schedule and a dark, cool room.", "idk lol", "aligned", "A"),
    turn("Say hi.", "Hello! How can I help?", "hi.", "base", "A"),            # base was A: base wins
    turn("Name a fruit.", "An apple.", "Banana", "base", "B"),                # aligned was B: SDA wins
    turn("Capital of France?", "Paris.", "Paris, I think.", "aligned", "tie"),
    turn("Unvoted", "x", "y", "aligned", None),
    turn("Same answers", "Same.", "Same.", "aligned", "A"),                    # counted, but no pair
]


def test_votes_map_to_the_system_shown_under_each_letter():
    assert shown_as({"a": "base"}) == {"A": "base", "B": "aligned"}
    assert [winner(t["arena"]) for t in TURNS] == ["aligned", "base", "aligned", "tie", None, "aligned"]
    rng = random.Random(0)
    assert {new_arena(rng)["a"] for _ in range(50)} == {"aligned", "base"}  # both orders occur
    assert new_arena(rng)["vote"] is None


def test_win_rate_is_w_minus_l_over_n_with_its_standard_error():
    wr = win_rate(TURNS)
    assert (wr.wins, wr.losses, wr.ties, wr.n) == (3, 1, 1, 5)
    assert wr.rate == pytest.approx((3 - 1) / 5)
    x = [1, -1, 1, 0, 1]
    mean = sum(x) / 5
    assert wr.se == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in x) / 4 / 5))
    assert "N = 5" in wr.text() and "+0.40" in wr.text()
    assert win_rate([]).n == 0 and "no votes" in win_rate([]).text()


def test_pairs_hold_the_preferred_answer_as_chosen():
    pairs = preference_pairs(TURNS)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [
        ("Tips for sleep?", "Keep a regular schedule and a dark, cool room.", "idk lol"),
        ("Say hi.", "hi.", "Hello! How can I help?"),
        ("Name a fruit.", "An apple.", "Banana")]
    assert [p.extra["winner"] for p in pairs] == ["sda", "base", "sda"]


@pytest.mark.slow
def test_exported_preferences_feed_palrs_extract(tmp_path):
    path = tmp_path / "prefs.jsonl"
    n, wr = export_preferences(TURNS, path)
    assert n == 3 and wr.n == 5
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert all({"prompt", "chosen", "rejected"} <= set(rec) for rec in lines)
    assert len(load_pairs(path)) == 3  # the palrs reader's own checks pass
    out = tmp_path / "taste.gguf"
    r = subprocess.run([sys.executable, "-m", "sda_local.cli", "palrs", "extract", "--pairs", str(path), "--out",
                        str(out), "--quiet", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.stat().st_size > 0 and "from 3 pairs" in r.stdout
