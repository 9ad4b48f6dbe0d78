"""``sda-local eval …``: argparse wiring for the evaluation commands (the work is in the sibling modules).

``add_commands(subparsers)`` creates the ``eval`` group.  A module of this package that defines
``add_command(eval_subparsers)`` and is listed in ``PLUGGABLE`` (e.g. ``winrate``) is registered too, once
it exists.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import SdaError

PLUGGABLE = ("winrate",)


def _common(p: argparse.ArgumentParser, default_out: str) -> None:
    from ..cli import _add_model_args

    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default=None, help="alignment preset for the instruction (see `sda-local presets`)")
    src.add_argument("--instruction", default=None, help="a custom alignment instruction instead of a preset")
    p.add_argument("--placement", choices=("user", "system"), default="user",
                   help="where the instruction goes in the 'with' stream (default: appended to the user turn)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N valid records of each file")
    p.add_argument("--format", default=None, help="dataset format, if the file name does not say it")
    p.add_argument("--k", type=float, default=2.0, help="steering gain k (default 2)")
    p.add_argument("--t0", type=float, default=0.6, help="base temperature T0 (default 0.6)")
    p.add_argument("--out", default=default_out, help=f"report folder (default {default_out})")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    _add_model_args(p)


def _instruction(args, default_preset: str) -> tuple[str, str | None]:
    from ..presets import get_preset

    if args.instruction:
        if not args.instruction.strip():
            raise SdaError("--instruction is empty")
        return args.instruction.strip(), None
    name = args.preset or default_preset
    return get_preset(name).instruction, name


def _engine(args):
    from ..engine import DEFAULT_VARIANT, Engine

    return Engine(args.model, n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers, n_threads=args.threads,
                  variant=args.variant or DEFAULT_VARIANT)


def _load(path: str, args):
    from .datasets import load_jsonl, report_problems

    ds = load_jsonl(path, limit=args.limit, format=args.format)
    report_problems(ds, sys.stderr)
    print(f"sda-local: {ds.path.name}: {len(ds.items)} item(s), format {ds.format}"
          + (f", {len(ds.problems)} malformed line(s) skipped" if ds.problems else ""), file=sys.stderr)
    return ds


def cmd_truthfulqa(args) -> int:
    from .truthfulqa import TruthfulQAConfig, print_headline, run_truthfulqa

    instruction, preset = _instruction(args, "honesty")
    ds = _load(args.data, args)
    if ds.format != "truthfulqa":
        raise SdaError(f"{args.data}: expected TruthfulQA records (Question, Best Answer, Correct Answers, "
                       f"Incorrect Answers), got format {ds.format!r}")
    cfg = TruthfulQAConfig(instruction=instruction, preset=preset, lams=args.lams, modes=args.modes, k=args.k,
                           t0=args.t0, placement=args.placement)
    cfg.settings()  # validate before loading the model
    eng = _engine(args)
    try:
        report = run_truthfulqa(eng, ds, cfg, args.out, progress=not args.quiet)
    finally:
        eng.close()
    print(f"sda-local: wrote {args.out}/truthfulqa.json, truthfulqa.md, items.jsonl", file=sys.stderr)
    print_headline(report, sys.stdout)
    return 0


def cmd_refusal(args) -> int:
    from .refusal import RefusalConfig, run_refusal

    if not args.harmful and not args.benign:
        raise SdaError("give at least one dataset: --harmful FILE … and/or --benign FILE …")
    instruction, preset = _instruction(args, "harmlessness")
    sets = [(_load(p, args), "harmful") for p in args.harmful] + [(_load(p, args), "benign") for p in args.benign]
    names = [ds.name for ds, _ in sets]
    if len(set(names)) != len(names):
        raise SdaError(f"two datasets have the same name ({', '.join(names)}); rename one file")
    cfg = RefusalConfig(instruction=instruction, preset=preset, lams=args.lams, k=args.k, t0=args.t0,
                        top_p=args.top_p, temperature_mode=args.temperature_mode, max_tokens=args.max_tokens,
                        seed=args.seed, placement=args.placement, phrases_file=args.phrases)
    eng = _engine(args)
    try:
        report = run_refusal(eng, sets, cfg, args.out, resume=args.resume, progress=not args.quiet)
    finally:
        eng.close()
    print(f"sda-local: wrote {args.out}/refusal.json, refusal.md, items.jsonl", file=sys.stderr)
    for kind, block in report["summary"]["pooled"].items():
        label = "refusal on harmful" if kind == "harmful" else "over-refusal on benign"
        print(f"{label}: " + ", ".join(f"{s} {d['rate']:.1%}" for s, d in block.items()))
    return 0


def _lam(text: str) -> float:
    x = float(text)
    if not (x == x and abs(x) != float("inf")):
        raise argparse.ArgumentTypeError(f"λ must be a finite number, got {text!r}")
    return x


def add_commands(subparsers) -> argparse.ArgumentParser:
    """Create ``sda-local eval`` with its subcommands; returns the ``eval`` parser."""
    ev = subparsers.add_parser("eval", help="measure alignment on a dataset (truthfulqa, refusal, …)",
                               description="Alignment measurements on JSONL prompt sets (truthfulqa and refusal are judge-free; winrate uses a judge); reports as JSON + Markdown.")
    sub = ev.add_subparsers(dest="eval_command", required=True, metavar="{truthfulqa,refusal,winrate}")

    t = sub.add_parser("truthfulqa", help="teacher-forced TruthfulQA MC1/MC2: base vs instruction vs SDA grid",
                       description="Score every reference answer of each question under base, instruction-only and "
                                   "SDA (λ grid × temperature modes) by teacher forcing; no sampling, exact numbers.")
    t.add_argument("data", help="TruthfulQA JSONL (e.g. ../shared/datasets/truthfulqa.dev.jsonl)")
    t.add_argument("--lams", type=_lam, nargs="+", default=[0.25, 0.5, 0.75, 1.0], help="λ grid (default 0.25 0.5 0.75 1)")
    t.add_argument("--modes", nargs="+", choices=("ln2", "sharp", "off"), default=["ln2", "sharp", "off"],
                   help="temperature modes (default all three)")
    _common(t, "results/truthfulqa")
    t.set_defaults(func=cmd_truthfulqa)

    r = sub.add_parser("refusal", help="refusal rate on harmful prompts, over-refusal on benign ones",
                       description="Answer each prompt with base, instruction-only and SDA at fixed λ values; count "
                                   "refusals with the phrase-list detector.")
    r.add_argument("--harmful", nargs="+", default=[], metavar="FILE", help="harmful prompt sets (JSONL)")
    r.add_argument("--benign", nargs="+", default=[], metavar="FILE", help="benign prompt sets (JSONL)")
    r.add_argument("--lams", type=_lam, nargs="+", default=[0.5, 1.0],
                   help="fixed SDA λ values (default 0.5 1.0; no evaluator is used)")
    r.add_argument("--top-p", type=float, default=0.95)
    r.add_argument("--temperature-mode", choices=("ln2", "sharp", "off"), default="ln2")
    r.add_argument("--max-tokens", type=int, default=64, help="tokens per answer (default 64)")
    r.add_argument("--seed", type=int, default=0, help="base seed; each prompt uses seed + its line number")
    r.add_argument("--phrases", default=None, help="a refusal phrase file instead of the packaged list")
    r.add_argument("--resume", action="store_true", help="continue an interrupted run in the same --out")
    _common(r, "results/refusal")
    r.set_defaults(func=cmd_refusal)

    for name in PLUGGABLE:
        try:
            mod = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        if hasattr(mod, "add_command"):
            mod.add_command(sub)
    return ev
