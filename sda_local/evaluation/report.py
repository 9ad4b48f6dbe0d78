"""Write an evaluation report as JSON (machine-readable) and Markdown (for people), side by side.

Every evaluation command writes ``<out>/<stem>.json`` and ``<out>/<stem>.md`` through ``write_report``;
per-item rows go to ``<out>/items.jsonl`` through ``JsonlWriter``.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Iterable, Sequence


def run_info(engine=None) -> dict:
    """Where and when a report was made (and with which model, if an engine is given)."""
    info = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "platform": platform.platform(),
            "cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        from importlib.metadata import version
        info["sda_local"] = version("sda-local")
        info["llama_cpp_python"] = version("llama-cpp-python")
    except Exception:  # pragma: no cover - not installed as a distribution
        pass
    if engine is not None:
        info["model"] = engine.info()
    return info


def md_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def write_report(out_dir: str | os.PathLike, stem: str, data: dict, markdown: str) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jp, mp = out / f"{stem}.json", out / f"{stem}.md"
    tmp = jp.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(jp)
    mp.write_text(markdown.rstrip() + "\n", encoding="utf-8")
    return jp, mp


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
    """Cut a last line that an interrupted write left without its newline, so appends start on a fresh line."""
    if not path.exists():
        return
    with path.open("rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a JSONL file written by ``JsonlWriter``; a torn last line (interrupted write) is ignored."""
    rows = []
    p = Path(path)
    if not p.exists():
        return rows
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
