"""Argument wiring for ``sda-local eval ifeval`` (the logic is in ``evaluation/ifeval.py``).

    sda-local eval ifeval ../shared/datasets/ifeval.dev.jsonl [--systems base inline … sda] [--limit N]
        [--offset N] [--resume] [--max-tokens 256] [--lams 0.25 0.5] [--placements user system]
        [--contrasts none ignore] [--clips none 2] [--plausibility 0 0.1] [--adaptive off jsd] [--out DIR]
"""
from __future__ import annotations

import shlex
import sys

from ..core import ADAPTIVE_MODES, CONTRASTS, sampling_options
from ..evaluation.ifeval import SYSTEMS, IfevalConfig, load_rows, parse_point, run_ifeval
from ..runtime.prompts import PLACEMENTS
from .eval_judge import positive_int
from .options import lambda_list_type, model_from_args, model_parent, option_type, sampling_from_args, sampling_parent

_OPTS = {name: opt for name, _, _, opt in sampling_options()}


def cmd_ifeval(args) -> int:
    rows = load_rows(args.data, offset=args.offset, limit=args.limit)
    grid = {"placement": args.placements, "contrast": args.contrasts, "lam": args.lams,
            "guidance_clip": args.clips, "plausibility": args.alphas, "adaptive_guidance": args.adaptive}
    cfg = IfevalConfig(systems=list(dict.fromkeys(args.systems)), grid={k: v for k, v in grid.items() if v},
                       points=[parse_point(t) for t in args.points], sampling=sampling_from_args(args))
    cfg.all_systems()  # names checked before the model loads
    print(f"sda-local: {args.data}: {len(rows)} prompt(s) from offset {args.offset}", file=sys.stderr)
    engine = model_from_args(args).open()
    try:
        report = run_ifeval(engine, rows, cfg, args.out, resume=args.resume, progress=not args.quiet,
                            command=shlex.join(["sda-local", *sys.argv[1:]]))
    finally:
        engine.close()
    print(f"sda-local: wrote {args.out}/report.json, report.md, items.jsonl", file=sys.stderr)
    for name, d in report["systems"].items():
        print(f"{name}: prompt strict {d['prompt_strict']['mean']:.3f} ± {d['prompt_strict']['se']:.3f}, "
              f"loose {d['prompt_loose']['mean']:.3f}; instruction strict {d['instruction_strict']['mean']:.3f}")
    return 0


def add_ifeval_command(eval_sub) -> None:
    p = eval_sub.add_parser(
        "ifeval", help="instruction adherence on IFEval's verifiable constraints (strict / loose)",
        description="Answer each IFEval prompt with base, inline (IFEval's own prompt), instruction-only (the "
                    "constraints in the user turn or as the system message) and SDA toward the constraints, the same "
                    "seed per prompt; score with lm-eval's IFEval checkers.  Writes report.json, report.md and "
                    "items.jsonl.  Grid options add one SDA system per point.",
        parents=[sampling_parent(only=("k", "t0", "top_p", "temperature_mode", "echo_block", "max_tokens", "seed"),
                                 max_tokens=256, seed=0), model_parent()])
    p.add_argument("data", help="IFEval JSONL with request and constraints (../shared/datasets/ifeval.dev.jsonl)")
    p.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS), metavar="SYSTEM",
                   help=f"which of {', '.join(SYSTEMS)} to run (default all; sda = the shipped settings for a "
                        "custom instruction)")
    g = p.add_argument_group("SDA grid (each point is one more system)")
    g.add_argument("--lams", nargs="+", type=lambda_list_type(), default=None, metavar="LAM")
    g.add_argument("--placements", nargs="+", choices=PLACEMENTS, default=None)
    g.add_argument("--contrasts", nargs="+", choices=[c for c in CONTRASTS if c != "auto"], default=None)
    g.add_argument("--clips", nargs="+", type=option_type("guidance_clip", float, _OPTS["guidance_clip"]), default=None,
                   metavar="C", help="guidance clip c (none = off)")
    g.add_argument("--plausibility", dest="alphas", nargs="+", type=option_type("plausibility", float, _OPTS["plausibility"]), default=None,
                   metavar="A", help="plausibility α (0 = off)")
    g.add_argument("--adaptive", nargs="+", choices=ADAPTIVE_MODES, default=None, help="adaptive guidance")
    g.add_argument("--point", dest="points", action="append", default=[], metavar="K=V,…",
                   help="one more SDA system with these settings, e.g. lam=0.5,placement=system,contrast=none "
                        "(keys: placement, contrast, lam, guidance_clip, plausibility, adaptive_guidance); repeatable")
    p.add_argument("--limit", type=positive_int, default=None, help="use N prompts")
    p.add_argument("--offset", type=int, default=0, help="skip the first N prompts")
    p.add_argument("--resume", action="store_true", help="continue a run in the same --out (its answers are kept)")
    p.add_argument("--out", default="results/ifeval", help="report folder (default results/ifeval)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ifeval)
