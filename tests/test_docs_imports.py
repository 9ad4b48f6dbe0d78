"""Every ``import`` line of the Python code blocks in README.md and docs/*.md runs: a renamed module or a
removed name breaks this test, not a reader's first try."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
IMPORT = re.compile(r"^(?:from\s+\S+\s+import\s+[^#\n]+|import\s+[^#\n]+)", re.M)


def import_lines() -> list[tuple[str, str]]:
    out = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in BLOCK.findall(md.read_text("utf-8")):
            out += [(md.name, line.strip()) for line in IMPORT.findall(block)]
    return out


def test_the_docs_have_python_examples():
    assert len(import_lines()) >= 5


@pytest.mark.parametrize("where, line", import_lines())
def test_each_import_line_of_the_docs_runs(where, line):
    exec(compile(line, f"{where}: {line}", "exec"), {})
