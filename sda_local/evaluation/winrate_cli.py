"""Argument wiring for ``sda-local eval winrate`` (the logic is in ``winrate.py``)."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_winrate_command(eval_sub) -> None:
    w = eval_sub.add_parser("winrate", help="pairwise win rate of SDA vs base and instruction-only (paper protocol)")
    w.add_argument("--dataset", "-d", action="append", required=True, help="JSONL file (repeatable)")
    w.add_argument("--out", default="results/winrate", help="output folder (items.jsonl makes it resumable)")
    w.add_argument("--limit", type=int, default=None, help="first N valid items of each dataset")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--preset", default=None, help="default: by dataset (truthfulqa→honesty, beavertails→harmlessness…)")
    w.add_argument("--max-tokens", type=int, default=128)
    w.add_argument("--mapping", default="sigmoid")
    w.add_argument("--model", "-m", default=None)
    w.add_argument("--n-ctx", type=int, default=None)
    w.add_argument("--threads", type=int, default=None)
    g = w.add_argument_group("λ evaluator (rates the base answer)")
    g.add_argument("--evaluator", choices=("local", "openai", "fixed"), default="local")
    g.add_argument("--score", type=float, default=None, help="fixed evaluator: the score")
    g.add_argument("--lam", type=float, default=None, help="fixed evaluator: λ itself")
    j = w.add_argument_group("pairwise judge")
    j.add_argument("--judge", choices=("local", "openai"), default="local")
    j.add_argument("--judge-model", default=None, help="local judge GGUF (default: the chat model)")
    j.add_argument("--openai-model", default=None)
    j.add_argument("--openai-base-url", default=None)
    j.add_argument("--openai-api-key", default=None)
    j.add_argument("--timeout", type=float, default=60.0)
    j.add_argument("--retries", type=int, default=2)
    w.set_defaults(func=cmd_winrate)


def cmd_winrate(args) -> int:
    from ..engine import Engine
    from ..evaluators import make_evaluator
    from .datasets import load_jsonl, report_problems
    from .winrate import run_winrate

    datasets = []
    for path in args.dataset:
        ds = load_jsonl(path, limit=args.limit)
        report_problems(ds, sys.stderr)
        datasets.append(ds)
    engine = Engine(args.model, n_ctx=args.n_ctx, n_threads=args.threads)
    remote = dict(openai_model=args.openai_model, openai_base_url=args.openai_base_url,
                  openai_api_key=args.openai_api_key, timeout=args.timeout, max_retries=args.retries)
    if args.evaluator == "fixed":
        evaluator = make_evaluator("fixed", score=args.score, lam=args.lam if args.score is None else None)
    else:
        evaluator = make_evaluator(args.evaluator, engine=engine, judge_model=args.judge_model, **remote)
    # the same kind with the same options is the same judge: one instance, not a second copy of the GGUF
    judge = evaluator if args.judge == args.evaluator else \
        make_evaluator(args.judge, engine=engine, judge_model=args.judge_model, **remote)
    report = run_winrate(engine, evaluator, judge, datasets, Path(args.out), preset=args.preset, seed=args.seed,
                         max_tokens=args.max_tokens, mapping=args.mapping)
    print(json.dumps(report["results"], indent=2))
    print(f"report: {Path(args.out) / 'winrate.md'}", file=sys.stderr)
    return 0
