"""α sweep of a control vector on TruthfulQA MC1/MC2 (placeholder until the evaluator lands)."""
from __future__ import annotations

from ..errors import SdaError


def add_sweep_args(p) -> None:
    p.add_argument("--vector", required=True, help="control-vector GGUF")


def run_sweep(args) -> int:
    raise SdaError("the TruthfulQA evaluator (sda_local.evaluation.truthfulqa) is not available yet")
