"""Load evaluation prompts from JSON Lines files in the formats of the shared dev splits.

Known formats (fields as in the SDA paper's prompt sets; see ``../shared/datasets/README.md``):

========== ================================================================ ==========================
format     required fields                                                  prompt
========== ================================================================ ==========================
truthfulqa Question, Best Answer, Correct Answers, Incorrect Answers        Question
beavertails prompt, category_id                                             prompt
harmfulqa  question, topic                                                  question
empathy    prompt, category                                                 prompt
dialogsum  dialogue                                                         "Summarise …" + dialogue
prompts    prompt *or* question (any other JSONL of prompts)                that field
========== ================================================================ ==========================

The format comes from ``format=`` if given, else from the file name (``beavertails.dev.jsonl`` →
beavertails), else from the first record that parses.  Lines are read by ``sda_local.jsonl.read_records``
(the project's one JSONL reader): a line that is not valid JSON, not an object, or lacks a required field is
skipped and recorded as a ``LineProblem`` with its 1-based line number; it never stops the load.  ``limit``
keeps the first N valid records.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import SdaError
from ..jsonl import LineProblem, read_records


class DatasetError(SdaError):
    """A dataset file that cannot be used at all (missing, unreadable, unknown format, no valid record)."""


@dataclass(frozen=True)
class Format:
    name: str
    required: tuple[str, ...]
    prompt: Callable[[dict], str]
    signature: tuple[str, ...]  # keys that identify the format in a record


def _field(name: str) -> Callable[[dict], str]:
    return lambda r: str(r[name]).strip()


def _first_of(*names: str) -> Callable[[dict], str]:
    def get(r: dict) -> str:
        for n in names:
            if isinstance(r.get(n), str) and r[n].strip():
                return r[n].strip()
        return ""
    return get


def _dialogsum_prompt(r: dict) -> str:
    return "Summarise the following dialogue in a few sentences.\n\n" + str(r["dialogue"]).strip()


# Order matters for detection: the first format whose signature keys are all present wins.
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("truthfulqa", ("Question", "Best Answer", "Correct Answers", "Incorrect Answers"), _field("Question"),
           ("Question", "Correct Answers")),
    Format("dialogsum", ("dialogue",), _dialogsum_prompt, ("dialogue",)),
    Format("beavertails", ("prompt",), _field("prompt"), ("prompt", "category_id")),
    Format("harmfulqa", ("question",), _field("question"), ("question", "topic")),
    Format("empathy", ("prompt",), _field("prompt"), ("prompt", "category")),
    Format("prompts", (), _first_of("prompt", "question", "Question"), ()),
)}

ANSWER_SEPARATOR = "; "


@dataclass(frozen=True)
class Item:
    """One valid record.  ``id`` is ``<dataset>:<line>`` and stays stable when other lines change."""

    id: str
    line: int
    prompt: str
    record: dict


@dataclass
class Dataset:
    path: Path
    name: str
    format: str
    items: list[Item] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)
    n_lines_read: int = 0

    def summary(self) -> dict:
        return {"path": str(self.path), "name": self.name, "format": self.format, "n_items": len(self.items),
                "n_lines_read": self.n_lines_read,
                "skipped": [{"line": p.line, "reason": p.message} for p in self.problems]}


def dataset_name(path: str | os.PathLike) -> str:
    """``beavertails.dev.jsonl`` → ``beavertails.dev``."""
    name = Path(path).name
    for suffix in (".jsonl", ".json", ".ndjson"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _format_from_name(path: Path) -> str | None:
    stem = path.name.lower()
    for name in FORMATS:
        if name != "prompts" and stem.startswith(name):
            return name
    return None


def detect_format(record: dict) -> str:
    for f in FORMATS.values():
        if f.signature and all(k in record for k in f.signature):
            return f.name
    return "prompts"


def split_answers(text: str) -> list[str]:
    """TruthfulQA answer lists are ``; ``-separated; empty parts and exact repeats are dropped."""
    out: list[str] = []
    for a in str(text).split(ANSWER_SEPARATOR):
        a = a.strip()
        if a and a not in out:
            out.append(a)
    return out


def _check(record: dict, fmt: Format) -> str | None:
    """Why ``record`` cannot be used in ``fmt``, or None."""
    for k in fmt.required:
        v = record.get(k)
        if v is None:
            return f"missing field {k!r}"
        if not isinstance(v, str) or not v.strip():
            return f"field {k!r} must be a non-empty string"
    if not fmt.prompt(record):
        return "no prompt text (expected a non-empty 'prompt' or 'question' field)"
    if fmt.name == "truthfulqa":
        if not split_answers(record["Incorrect Answers"]):
            return "no incorrect answers"
    return None


def load_jsonl(path: str | os.PathLike, *, limit: int | None = None, format: str | None = None) -> Dataset:
    """Read ``path``; skip (and record) malformed lines; keep the first ``limit`` valid records."""
    p = Path(path)
    if format is not None and format not in FORMATS:
        raise DatasetError(f"unknown dataset format {format!r}; choose one of {', '.join(FORMATS)}")
    fmt_name = format or _format_from_name(p)

    def check(record: dict) -> str | None:
        nonlocal fmt_name
        fmt_name = fmt_name or detect_format(record)  # the first record that parses decides
        return _check(record, FORMATS[fmt_name])

    recs = read_records(p, check=check, limit=limit, error=DatasetError, what="dataset file")
    fmt = FORMATS[fmt_name or "prompts"]
    name = dataset_name(p)
    ds = Dataset(path=p, name=name, format=fmt.name, problems=recs.problems, n_lines_read=recs.n_lines,
                 items=[Item(f"{name}:{line}", line, fmt.prompt(rec), rec) for line, rec in recs.rows])
    if not ds.items:
        detail = f"; first problem: {ds.problems[0]}" if ds.problems else ""
        raise DatasetError(f"{p}: no usable records ({len(ds.problems)} malformed line(s){detail})")
    return ds


def report_problems(ds: Dataset, stream, max_lines: int = 20) -> None:
    """Print skipped lines as ``file:line: skipped: reason`` (at most ``max_lines``, then a count)."""
    for prob in ds.problems[:max_lines]:
        print(f"{ds.path}:{prob.line}: skipped: {prob.message}", file=stream)
    if len(ds.problems) > max_lines:
        print(f"{ds.path}: … and {len(ds.problems) - max_lines} more skipped line(s)", file=stream)
