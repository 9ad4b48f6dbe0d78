"""The progress bar of the eval and palrs commands (tqdm): counts, the note, the callback form, --quiet."""
from __future__ import annotations

import io

from sda_local.evaluation.progress import Progress


def test_counts_and_the_last_note_reach_the_stream():
    buf = io.StringIO()
    bar = Progress("refusal", 4, stream=buf)
    for i in range(4):
        bar.update(note=f"harmful sda {i}")
    bar.close()
    out = buf.getvalue()
    assert "[refusal]" in out and "4/4" in out and "harmful sda 3" in out and out.endswith("\n")


def test_the_callback_form_follows_done_of_total_and_closes_at_the_end():
    buf = io.StringIO()
    bar = Progress("pairs", stream=buf)  # the total arrives with the first call
    for done in (1, 2, 3):
        bar(done, 3)
    assert bar.n == 3 and bar.total == 3 and "3/3" in buf.getvalue()
    assert buf.getvalue().endswith("\n")  # closed: the line is finished


def test_a_disabled_bar_prints_nothing():
    buf = io.StringIO()
    bar = Progress("truthfulqa", 2, stream=buf, enabled=False)
    bar.update(note="x")
    bar(2, 2)
    bar.close()
    assert buf.getvalue() == ""


def test_a_log_is_not_redrawn_on_every_item():
    buf = io.StringIO()  # not a terminal
    bar = Progress("winrate", 500, stream=buf)
    for _ in range(500):
        bar.update()
    bar.close()
    assert buf.getvalue().count("\r") <= 3  # the first draw, perhaps one on the way, the last
