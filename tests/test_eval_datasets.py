"""Dataset loading: the shared formats, malformed lines reported with line numbers and skipped, --limit."""
from __future__ import annotations

import io
import json

import pytest

from sda_local.evaluation.datasets import (
    DatasetError,
    load_jsonl,
    report_problems,
    split_answers,
)

TQA = {"Type": "Adversarial", "Category": "Misconceptions", "Question": "Is the Earth flat?",
       "Best Answer": "No, it is round", "Best Incorrect Answer": "Yes",
       "Correct Answers": "No, it is round; No; It is roughly a sphere", "Incorrect Answers": "Yes; It is flat",
       "Source": "x"}


def write(path, lines):
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def test_malformed_lines_are_reported_with_line_numbers_and_skipped(tmp_path):
    p = write(tmp_path / "truthfulqa.mini.jsonl", [
        TQA,                                         # 1 ok
        "{not json",                                 # 2 invalid JSON
        "[1, 2]",                                    # 3 not an object
        {**TQA, "Question": ""},                     # 4 empty prompt field
        {k: v for k, v in TQA.items() if k != "Incorrect Answers"},  # 5 missing field
        "",                                          # 6 blank: ignored silently
        {**TQA, "Question": "Do bulls hate red?"},   # 7 ok
    ])
    ds = load_jsonl(p)
    assert ds.format == "truthfulqa" and ds.name == "truthfulqa.mini"
    assert [it.line for it in ds.items] == [1, 7]
    assert [it.id for it in ds.items] == ["truthfulqa.mini:1", "truthfulqa.mini:7"]
    assert [pr.line for pr in ds.problems] == [2, 3, 4, 5]
    assert "not valid JSON" in ds.problems[0].message
    assert "JSON object" in ds.problems[1].message
    assert "'Question'" in ds.problems[2].message
    assert "'Incorrect Answers'" in ds.problems[3].message
    buf = io.StringIO()
    report_problems(ds, buf)
    assert f"{p}:2: skipped: not valid JSON" in buf.getvalue()
    assert ds.summary()["skipped"][0] == {"line": 2, "reason": ds.problems[0].message}


def test_a_truncated_last_line_is_reported_not_dropped(tmp_path):
    p = tmp_path / "beavertails.cut.jsonl"
    p.write_text(json.dumps({"prompt": "q", "category_id": 1}) + '\n{"prompt": "cut sh', encoding="utf-8")
    ds = load_jsonl(p)
    assert len(ds.items) == 1 and [(pr.line, pr.torn) for pr in ds.problems] == [(2, True)]
    assert "incomplete last line" in ds.problems[0].message


def test_limit_keeps_the_first_valid_records(tmp_path):
    p = write(tmp_path / "beavertails.x.jsonl",
              ["oops"] + [{"prompt": f"q{i}", "category": "c", "category_id": 1} for i in range(5)])
    ds = load_jsonl(p, limit=2)
    assert [it.prompt for it in ds.items] == ["q0", "q1"] and len(ds.problems) == 1
    with pytest.raises(ValueError):
        load_jsonl(p, limit=0)


@pytest.mark.parametrize("name,record,fmt,prompt", [
    ("a.jsonl", {"prompt": "How?", "category": "x", "category_id": 0}, "beavertails", "How?"),
    ("b.jsonl", {"topic": "t", "subtopic": "s", "question": "Why?"}, "harmfulqa", "Why?"),
    ("c.jsonl", {"category": "sad", "prompt": "My dog died."}, "empathy", "My dog died."),
    ("d.jsonl", {"fname": "f", "dialogue": "#A#: hi", "summary1": "s"}, "dialogsum", None),
    ("e.jsonl", TQA, "truthfulqa", "Is the Earth flat?"),
    ("f.jsonl", {"question": "Plain?"}, "prompts", "Plain?"),
])
def test_formats_are_detected_from_the_fields(tmp_path, name, record, fmt, prompt):
    ds = load_jsonl(write(tmp_path / name, [record]))
    assert ds.format == fmt
    if prompt:
        assert ds.items[0].prompt == prompt
    else:
        assert "#A#: hi" in ds.items[0].prompt and ds.items[0].prompt.startswith("Summarise")


def test_the_shared_dev_splits_load_when_present():
    from pathlib import Path
    root = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    if not root.is_dir():
        pytest.skip("shared/datasets not beside the repository")
    for name, fmt in [("truthfulqa", "truthfulqa"), ("beavertails", "beavertails"), ("harmfulqa", "harmfulqa"),
                      ("empathy", "empathy"), ("dialogsum", "dialogsum")]:
        ds = load_jsonl(root / f"{name}.dev.jsonl", limit=5)
        assert ds.format == fmt and len(ds.items) == 5 and not ds.problems


def test_unusable_files_give_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(DatasetError, match="no usable records.*line 1"):
        load_jsonl(write(tmp_path / "bad.jsonl", ["{", "]"]))
    with pytest.raises(DatasetError, match="unknown dataset format"):
        load_jsonl(write(tmp_path / "ok.jsonl", [{"prompt": "x"}]), format="nope")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(DatasetError, match="line 1: not UTF-8"):
        load_jsonl(tmp_path / "latin1.jsonl")


def test_split_answers():
    assert split_answers("a; b;  ; a; c ") == ["a", "b", "c"]
