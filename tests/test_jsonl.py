"""The one JSONL reader (sda_local.jsonl): every malformed line is named by its line number; a torn last line is
what an interrupted append leaves, which resume logs ignore and the writer repairs."""
from __future__ import annotations

import json

import pytest

from sda_local.errors import SdaError
from sda_local.jsonl import (
    JsonlError,
    JsonlWriter,
    LineProblem,
    read_jsonl,
    read_records,
)


def write(path, text: str):
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_every_bad_line_is_a_problem_with_its_line_number(tmp_path):
    p = write(tmp_path / "x.jsonl", '{"a": 1}\n\n{broken\n[1, 2]\n{"a": 2}\n   \n{"b": 3}\n')
    recs = read_records(p, check=lambda r: None if "a" in r else "no field 'a'")
    assert recs.rows == [(1, {"a": 1}), (5, {"a": 2})] and recs.dicts() == [{"a": 1}, {"a": 2}]
    assert [(pr.line, pr.torn) for pr in recs.problems] == [(3, False), (4, False), (7, False)]
    assert recs.problems[0].message.startswith("not valid JSON (")
    assert recs.problems[1].message == "expected a JSON object, got list"
    assert str(recs.problems[2]) == "line 7: no field 'a'" and recs.n_lines == 7


def test_raise_problems_names_up_to_ten_lines_in_the_callers_error(tmp_path):
    class MyError(SdaError):
        pass

    p = write(tmp_path / "bad.jsonl", "".join("oops\n" for _ in range(12)) + '{"ok": 1}\n')
    recs = read_records(p)
    with pytest.raises(MyError) as e:
        recs.raise_problems(MyError, "Fix it.")
    msg = str(e.value)
    assert msg.startswith(f"{p}: 12 malformed lines — line 1: not valid JSON")
    assert "line 10:" in msg and "line 11:" not in msg and "… and 2 more" in msg and msg.endswith("Fix it.")
    assert read_records(write(tmp_path / "good.jsonl", '{"ok": 1}\n')).raise_problems().rows == [(1, {"ok": 1})]


def test_limit_stops_reading_after_enough_valid_records(tmp_path):
    p = write(tmp_path / "x.jsonl", "nope\n" + "".join(json.dumps({"i": i}) + "\n" for i in range(5)) + "nope\n")
    recs = read_records(p, limit=2)
    assert recs.dicts() == [{"i": 0}, {"i": 1}] and recs.n_lines == 3 and len(recs.problems) == 1
    with pytest.raises(ValueError, match="limit"):
        read_records(p, limit=0)


def test_a_line_that_is_not_utf8_is_a_problem_of_that_line(tmp_path):
    p = write(tmp_path / "x.jsonl", b'{"a": 1}\n{"a": "caf\xe9"}\n{"a": 3}\n')
    recs = read_records(p)
    assert [r["a"] for r in recs.dicts()] == [1, 3]
    assert recs.problems == [LineProblem(2, "not UTF-8 text (byte 11 of the line)")]


def test_a_missing_file_raises_the_callers_error(tmp_path):
    with pytest.raises(JsonlError, match="pairs file .* not found"):
        read_records(tmp_path / "none.jsonl", what="pairs file")


def test_a_torn_last_line_is_flagged_and_ignored_by_the_log_reader(tmp_path):
    p = write(tmp_path / "items.jsonl", '{"id": 1}\n{"id": 2}\n{"id": 3, "te')
    recs = read_records(p)
    assert recs.problems == [LineProblem(3, "incomplete last line (no newline at the end: an interrupted write?)",
                                         torn=True)]
    assert read_jsonl(p) == [{"id": 1}, {"id": 2}]
    assert read_jsonl(tmp_path / "not-yet.jsonl") == []
    write(p, '{"id": 1}\n{"id": 2, "te\n{"id": 3}\n')  # damage inside the log is not an interrupted write
    with pytest.raises(JsonlError, match="line 2: not valid JSON"):
        read_jsonl(p)


def test_appending_cuts_a_torn_line_and_keeps_a_whole_unterminated_one(tmp_path):
    torn = write(tmp_path / "torn.jsonl", '{"id": 1}\n{"id": 2, "te')
    with JsonlWriter(torn, append=True) as w:
        w.write({"id": 3})
    assert torn.read_text() == '{"id": 1}\n{"id": 3}\n'
    whole = write(tmp_path / "whole.jsonl", '{"id": 1}\n{"id": 2}')
    with JsonlWriter(whole, append=True) as w:
        w.write({"id": 3})
    assert read_jsonl(whole) == [{"id": 1}, {"id": 2}, {"id": 3}]
    with JsonlWriter(whole) as w:  # not appending: a new log
        w.write({"id": "é"})
    assert whole.read_text("utf-8") == '{"id": "é"}\n'
