"""The engine's stream layouts, as plain data (no numpy, no llama.cpp: ``--help`` texts import it).

- ``"batched"`` — one llama.cpp context with the streams as sequences; they advance in one ``llama_decode``;
- ``"contexts"`` — two contexts over the same weights, one decode each per step.

``sda_local.runtime.streams`` builds them.
"""
from __future__ import annotations

from typing import Literal

Layout = Literal["batched", "contexts"]
LAYOUTS: tuple[str, ...] = ("batched", "contexts")
DEFAULT_LAYOUT: Layout = "batched"  # see docs/benchmark.md: the faster layout on CPU here
