"""Argument wiring for ``sda-local eval winrate`` (the logic is in ``winrate.py``)."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from ..evaluation.datasets import load_jsonl, report_problems
from ..evaluation.winrate import WinrateConfig, run_winrate
from ..judges import PAIRWISE_JUDGE_KINDS
from ..judges.spec import Judges
from .options import (
    evaluator_from_args,
    evaluator_parent,
    model_from_args,
    model_parent,
    preset_from_args,
    preset_parent,
    sampling_from_args,
    sampling_parent,
    turn_parent,
)


def cmd_winrate(args) -> int:
    datasets = []
    for path in args.dataset:
        ds = load_jsonl(path, limit=args.limit)
        report_problems(ds, sys.stderr)
        datasets.append(ds)
    cfg = WinrateConfig(preset=preset_from_args(args), sampling=sampling_from_args(args), mapping=args.mapping,
                        fallback_lam=args.fallback_lam, placements=tuple(args.placement))
    spec = evaluator_from_args(args)
    engine = model_from_args(args).open()
    judges = Judges(engine)  # the same kind with the same options is the same judge: one instance, one GGUF
    try:
        evaluator = judges.build(spec)
        judge = judges.build(replace(spec, kind=args.judge, lam=None, score=None))
        report = run_winrate(engine, evaluator, judge, datasets, Path(args.out), cfg, fluency=not args.no_fluency)
    finally:
        judges.close()
        engine.close()
    print(json.dumps(report["results"], indent=2))
    print(f"report: {Path(args.out) / 'winrate.md'}", file=sys.stderr)
    return 0


def add_winrate_command(eval_sub) -> None:
    w = eval_sub.add_parser("winrate", help="pairwise win rate of SDA vs base and instruction-only (paper protocol)",
                            parents=[preset_parent(None, "by dataset: truthfulqa→honesty, beavertails→harmlessness…"),
                                     evaluator_parent(timeout=60.0, title="λ evaluator (rates the base answer)"),
                                     turn_parent(only=("mapping", "fallback_lam", "placement"),
                                                 grid={"placement": ["--placements", "--placement"]}, placement="user"),
                                     sampling_parent(max_tokens=128, seed=0), model_parent()])
    w.add_argument("--dataset", "-d", action="append", required=True, help="JSONL file (repeatable)")
    w.add_argument("--out", default="results/winrate", help="output folder (items.jsonl makes it resumable)")
    w.add_argument("--limit", type=int, default=None, help="first N valid items of each dataset")
    w.add_argument("--judge", choices=PAIRWISE_JUDGE_KINDS, default="local",
                   help="the pairwise judge; it uses the evaluator options --judge-model, --openai-… (default local)")
    w.add_argument("--no-fluency", action="store_true",
                   help="skip the fluency measure (one teacher-forced pass per item's answers)")
    w.set_defaults(func=cmd_winrate)
