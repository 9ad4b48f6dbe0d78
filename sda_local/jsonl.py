"""JSON Lines, read and written one way everywhere (datasets, pairs files, the eval commands' ``items.jsonl``).

Reading, ``read_records``: blank lines are skipped; every other line must be UTF-8 text holding one JSON object
that the caller's ``check`` (if any) accepts.  A line that is not is a ``LineProblem`` with its 1-based line
number: never dropped silently.  Callers either stop on problems (``Records.raise_problems``: pairs files, the
TruthfulQA pair builder, resume logs) or skip the lines and print them as ``file:line: skipped: reason``
(evaluation datasets, so one bad line does not end a long run).  A missing file raises the caller's error class.

A last line without a newline that does not parse is what an interrupted append leaves (``LineProblem.torn``);
``read_jsonl`` (the reader for logs written by ``JsonlWriter``) ignores it, and ``JsonlWriter(append=True)`` cuts
it before appending, so a resumed run starts on a fresh line.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import SdaError

MAX_REPORTED = 10  # problems named in one error message


class JsonlError(SdaError):
    """A JSON Lines file that is missing or has malformed lines."""


@dataclass(frozen=True)
class LineProblem:
    line: int
    message: str
    torn: bool = False  # the unterminated last line of an interrupted write

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Records:
    """What ``read_records`` found: the valid records with their line numbers, and every malformed line."""

    path: Path
    rows: list[tuple[int, dict]] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)
    n_lines: int = 0  # lines read (reading stops once ``limit`` records are valid)

    def dicts(self) -> list[dict]:
        return [r for _, r in self.rows]

    def raise_problems(self, error: type[SdaError] = JsonlError, expected: str = "") -> Records:
        """Raise ``error`` naming the malformed lines (up to ``MAX_REPORTED``) if there are any; else return self."""
        if not self.problems:
            return self
        n = len(self.problems)
        shown = "; ".join(str(p) for p in self.problems[:MAX_REPORTED])
        more = f"; … and {n - MAX_REPORTED} more" if n > MAX_REPORTED else ""
        raise error(f"{self.path}: {n} malformed line{'s' if n > 1 else ''} — {shown}{more}."
                    + (f" {expected}" if expected else ""))


def _parse(raw: bytes, lineno: int, check: Callable[[dict], str | None] | None) -> dict | LineProblem:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        if not raw.endswith(b"\n"):
            return LineProblem(lineno, "incomplete last line (no newline at the end: an interrupted write?)", True)
        if isinstance(exc, UnicodeDecodeError):
            return LineProblem(lineno, f"not UTF-8 text (byte {exc.start + 1} of the line)")
        return LineProblem(lineno, f"not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(obj, dict):
        return LineProblem(lineno, f"expected a JSON object, got {type(obj).__name__}")
    why = check(obj) if check is not None else None
    return LineProblem(lineno, why) if why else obj


def read_records(path: str | os.PathLike, *, check: Callable[[dict], str | None] | None = None,
                 limit: int | None = None, error: type[SdaError] = JsonlError, what: str = "file") -> Records:
    """Read ``path`` line by line; ``check(record)`` returns why a record is unusable, or None.

    Stops once ``limit`` records are valid.  ``error`` is raised (as ``"<what> <path> not found"``) for a
    missing file; malformed lines are returned as ``problems``, never raised here.
    """
    p = Path(path)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be ≥ 1, got {limit}")
    if not p.is_file():
        raise error(f"{what} {p} not found")
    out = Records(p)
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            out.n_lines = lineno
            if not raw.strip():
                continue
            got = _parse(raw, lineno, check)
            if isinstance(got, LineProblem):
                out.problems.append(got)
                continue
            out.rows.append((lineno, got))
            if limit is not None and len(out.rows) >= limit:
                break
    return out


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a log written by ``JsonlWriter`` ([] if there is none yet).  A torn last line (an interrupted
    write) is ignored; any other malformed line raises ``JsonlError`` naming it."""
    p = Path(path)
    if not p.exists():
        return []
    recs = read_records(p, what="log")
    recs.problems = [pr for pr in recs.problems if not pr.torn]
    return recs.raise_problems(expected="Move the file away to start over.").dicts()


class JsonlWriter:
    """Append one JSON object per line, flushed at once (a crash loses at most the current item)."""

    def __init__(self, path: str | os.PathLike, append: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if append:
            _drop_torn_tail(self.path)
        self._fh = self.path.open("a" if append else "w", encoding="utf-8")

    def write(self, row: dict) -> None:
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _drop_torn_tail(path: Path) -> None:
    """Make appends start on a fresh line: a last line without its newline is cut if it is torn (what
    ``read_jsonl`` ignores) and terminated if it is a whole record (what ``read_jsonl`` returns)."""
    if not path.exists():
        return
    with path.open("rb+") as fh:
        data = fh.read()
        if not data or data.endswith(b"\n"):
            return
        start = data.rfind(b"\n") + 1
        if isinstance(_parse(data[start:], 0, None), LineProblem):
            fh.truncate(start)
        else:
            fh.write(b"\n")


def rewrite_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    """Replace the log at ``path`` with ``rows`` (e.g. old rows completed with new fields), atomically: a
    temporary file beside it, renamed into place, so an interruption leaves the old log whole."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(p)
