"""Argument wiring for ``sda-local eval winrate`` (the logic is in ``winrate.py``)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .options import (evaluator_from_args, evaluator_parent, model_from_args, model_parent, preset_from_args,
                      preset_parent, sampling_from_args, sampling_parent, turn_parent)
from ..judges import JUDGE_KINDS
from ..evaluation.datasets import load_jsonl, report_problems
from ..evaluation.winrate import WinrateConfig, run_winrate


def cmd_winrate(args) -> int:
    datasets = []
    for path in args.dataset:
        ds = load_jsonl(path, limit=args.limit)
        report_problems(ds, sys.stderr)
        datasets.append(ds)
    cfg = WinrateConfig(preset=preset_from_args(args), sampling=sampling_from_args(args), mapping=args.mapping,
                        fallback_lam=args.fallback_lam, placements=tuple(args.placement))
    options = evaluator_from_args(args)
    engine = model_from_args(args).open()
    evaluator = options.build(engine)
    # the same kind with the same options is the same judge: one instance, not a second copy of the GGUF
    judge = evaluator if args.judge == options.effective_kind else options.build_judge(args.judge, engine)
    try:
        report = run_winrate(engine, evaluator, judge, datasets, Path(args.out), cfg, fluency=not args.no_fluency)
    finally:
        for ev in {id(evaluator): evaluator, id(judge): judge}.values():
            ev.close()
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
    w.add_argument("--judge", choices=JUDGE_KINDS, default="local",
                   help="the pairwise judge; it uses the evaluator options --judge-model, --openai-… (default local)")
    w.add_argument("--no-fluency", action="store_true",
                   help="skip the fluency measure (one teacher-forced pass per item's answers)")
    w.set_defaults(func=cmd_winrate)
