"""``sda-local bench-eval``: seconds per question of ``sda-local eval truthfulqa`` (default grid), split into
teacher forcing (llama.cpp) and scoring (numpy), as JSON.  Run on an idle machine and compare runs made under
the same load.

    sda-local bench-eval ../shared/datasets/truthfulqa.dev.jsonl --limit 20 --model smollm2-135m [--each-answer] [--ubatch 512]
"""
from __future__ import annotations

import argparse
import os
import tempfile

from ..evaluation.datasets import load_jsonl
from ..evaluation.truthfulqa import TruthfulQAConfig, run_truthfulqa
from ..presets import get_preset
from ..runtime.engine import Engine


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("data", help="TruthfulQA JSONL")
    ap.add_argument("--limit", type=int, default=20, help="questions (default 20)")
    ap.add_argument("--model", default="smollm2-135m", help="registry id, file or path (default smollm2-135m)")
    ap.add_argument("--each-answer", action="store_true",
                    help="feed every answer on its own instead of each distinct prefix once (same numbers, slower)")
    ap.add_argument("--ubatch", type=int, default=None, metavar="N", help="llama.cpp's micro-batch (default 63)")


def run(args: argparse.Namespace) -> dict:
    ds = load_jsonl(args.data, limit=args.limit)
    cfg = TruthfulQAConfig(instruction=get_preset("honesty").instruction)
    eng = Engine(args.model)
    try:
        with tempfile.TemporaryDirectory() as out:
            rep = run_truthfulqa(eng, ds, cfg, out, progress=False, share_prefixes=not args.each_answer,
                                 ubatch=args.ubatch)
    finally:
        eng.close()
    return {"model": args.model, "n_questions": rep["summary"]["n_questions"],
            "n_settings": len(rep["summary"]["settings"]), **rep["timing"],
            "load_average_1m": round(os.getloadavg()[0], 2)}

