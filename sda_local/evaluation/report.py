"""Write an evaluation report as JSON (machine-readable) and Markdown (for people), side by side.

Every evaluation command writes ``<out>/<stem>.json`` and ``<out>/<stem>.md`` through ``write_report``;
per-item rows go to ``<out>/items.jsonl`` through ``sda_local.jsonl.JsonlWriter`` and are read back (resume)
with ``sda_local.jsonl.read_jsonl``; both are importable from here too, where the eval commands look for them.
"""
from __future__ import annotations

import json
import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterable, Sequence

from ..jsonl import JsonlWriter, read_jsonl

__all__ = ["JsonlWriter", "decode_speed", "md_table", "pct", "read_jsonl", "run_info", "write_report"]


def decode_speed(samples: Iterable[tuple[str, int, float]]) -> dict[str, dict]:
    """Decode speed per system from (system, tokens generated, decode seconds) of each answer: tokens and
    seconds summed, tokens/s = their ratio (what ``sda-local generate`` prints for one answer)."""
    acc: dict[str, list[float]] = {}
    for name, n, sec in samples:
        a = acc.setdefault(name, [0, 0.0])
        a[0] += int(n)
        a[1] += float(sec)
    return {name: {"tokens": int(n), "decode_seconds": round(sec, 3),
                   "tokens_per_second": round(n / sec, 2) if sec > 0 else None} for name, (n, sec) in acc.items()}


def run_info(engine=None) -> dict:
    """Where and when a report was made (and with which model, if an engine is given)."""
    info = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "platform": platform.platform(),
            "cpus": os.cpu_count(), "python": platform.python_version()}
    for key, dist in (("sda_local", "sda-local"), ("llama_cpp_python", "llama-cpp-python")):
        try:
            info[key] = version(dist)
        except PackageNotFoundError:  # run from a source tree that was never installed
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
