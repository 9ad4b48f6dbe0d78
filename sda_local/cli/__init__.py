"""Command line: ``sda-local <command>`` (entry point ``sda_local.cli:main``).

- ``app``       the parser and ``main`` (user errors → one line, exit 2)
- ``options``   the options every command shares, declared once (sampling, turn, model, evaluator, preset)
- ``output``    printing answers, turns and λ (text or JSON lines)
- ``generate``, ``score``, ``catalog`` (models, presets), ``bench``: one module per command;
  ``sda-local eval …`` and ``sda-local palrs …`` live in ``sda_local.evaluation.cli`` and ``sda_local.palrs.cli``.
"""
from __future__ import annotations

from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    # imported here so that a command module importing ``sda_local.cli.options`` does not load every command
    from .app import main as run

    return run(argv)
