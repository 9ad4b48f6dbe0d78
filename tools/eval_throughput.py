"""Seconds per question of `sda-local eval truthfulqa` (default grid), split into teacher forcing (llama.cpp) and
scoring (numpy); prints JSON.  Run on an idle machine and compare runs made under the same load.

    .venv/bin/python tools/eval_throughput.py ../shared/datasets/truthfulqa.dev.jsonl --limit 20 \
        --model smollm2-135m [--share-prefixes]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from sda_local.engine import Engine
from sda_local.evaluation.datasets import load_jsonl
from sda_local.evaluation.truthfulqa import TruthfulQAConfig, run_truthfulqa
from sda_local.presets import get_preset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="TruthfulQA JSONL")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--share-prefixes", action="store_true")
    args = ap.parse_args(argv)
    ds = load_jsonl(args.data, limit=args.limit)
    cfg = TruthfulQAConfig(instruction=get_preset("honesty").instruction)
    eng = Engine(args.model)
    try:
        with tempfile.TemporaryDirectory() as out:
            rep = run_truthfulqa(eng, ds, cfg, out, progress=False, share_prefixes=args.share_prefixes)
    finally:
        eng.close()
    print(json.dumps({"model": args.model, "n_questions": rep["summary"]["n_questions"],
                      "n_settings": len(rep["summary"]["settings"]), **rep["timing"],
                      "load_average_1m": round(os.getloadavg()[0], 2)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
