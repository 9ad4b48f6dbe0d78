"""Command line: ``sda-local <command>`` (entry point ``sda_local.cli:main``).

- ``app``       the parser and ``main`` (user errors → one line, exit 2)
- ``options``   the options every command shares, declared once (sampling, turn, model, evaluator, preset)
- ``output``    printing answers, turns and λ (text or JSON lines)
- one module per command: ``generate``, ``score``, ``catalog`` (models, presets), ``bench`` (bench, bench-eval),
  ``serve`` (serve, bench-serve), ``chat``, ``eval`` (+ ``eval_judge``, ``eval_samples``, ``eval_winrate``),
  ``palrs``.  The packages they drive (``evaluation``, ``palrs``, ``server``, ``bench``, ``ui``) hold the logic
  and never import ``cli``.
"""
from __future__ import annotations

from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    # imported here, so that ``python -m sda_local.chat --help`` (cli.chat) loads no other command
    from .app import main as run

    return run(argv)
