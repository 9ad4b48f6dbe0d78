"""The twin-stream layouts of the engine, as plain data (no numpy, no llama.cpp: ``--help`` texts import it).

- ``"batched"`` — one llama.cpp context with two sequences; both streams advance in one ``llama_decode``;
- ``"contexts"`` — two contexts over the same weights, one decode each per step.

``sda_local.runtime.engine`` re-exports these names.
"""
from __future__ import annotations

from typing import Literal

Variant = Literal["batched", "contexts"]
VARIANTS: tuple[str, ...] = ("batched", "contexts")
DEFAULT_VARIANT: Variant = "batched"  # see README "Benchmark": the faster layout on CPU here
