"""``sda-local eval …``: argparse wiring for the evaluation commands (the work is in the sibling modules).

``add_commands(subparsers)`` creates the ``eval`` group: ``truthfulqa``, ``refusal`` (here), ``winrate``
(``winrate_cli``), ``judge`` (``judge_cli``) and ``samples`` (``samples_cli``).  Sampling and model options come
from the shared parents (``sda_local.cli.options``); every grid can also sweep the plausibility constraint
(``--plausibility A [A ...]``) and the instruction's placement (``--placements P [P ...]``; ``--placement P`` is
the same option).
"""
from __future__ import annotations

import argparse
import sys

from .. import core
from ..errors import SdaError
from ..evaluation.datasets import Dataset, load_jsonl, report_problems
from ..evaluation.refusal import RefusalConfig, run_refusal
from ..evaluation.truthfulqa import TruthfulQAConfig, print_headline, run_truthfulqa
from ..presets import Preset
from ..runtime.engine import Engine
from .eval_ifeval import add_ifeval_command
from .eval_judge import add_judge_command, positive_int
from .eval_samples import add_samples_command
from .eval_winrate import add_winrate_command
from .options import (
    lambda_list_type,
    model_from_args,
    model_parent,
    preset_from_args,
    preset_parent,
    sampling_from_args,
    sampling_parent,
    turn_parent,
)

PLAUSIBILITY_GRID = {"plausibility": "--plausibility"}
PLACEMENT_GRID = {"placement": ["--placements", "--placement"]}


def load_dataset(path: str, limit: int | None = None, format: str | None = None) -> Dataset:
    """Load a JSONL prompt set, report its malformed lines on stderr, and say what was read."""
    ds = load_jsonl(path, limit=limit, format=format)
    report_problems(ds, sys.stderr)
    print(f"sda-local: {ds.path.name}: {len(ds.items)} item(s), format {ds.format}"
          + (f", {len(ds.problems)} malformed line(s) skipped" if ds.problems else ""), file=sys.stderr)
    return ds


def _preset_name(args, preset: Preset) -> str | None:
    return None if args.instruction is not None else preset.name


def _run(engine: Engine, job):
    try:
        return job(engine)
    finally:
        engine.close()


def cmd_truthfulqa(args) -> int:
    preset = preset_from_args(args)
    ds = load_dataset(args.data, args.limit, args.format)
    if ds.format != "truthfulqa":
        raise SdaError(f"{args.data}: expected TruthfulQA records (Question, Best Answer, Correct Answers, "
                       f"Incorrect Answers), got format {ds.format!r}")
    cfg = TruthfulQAConfig(instruction=preset.instruction, preset=_preset_name(args, preset), lams=args.lams,
                           modes=args.temperature_mode, plausibilities=args.plausibility,
                           sampling=sampling_from_args(args), placements=args.placement,
                           contrasts=None if args.contrast == ["auto"] else args.contrast,
                           clips=None if args.guidance_clip == [None] else args.guidance_clip,
                           opposite=preset.opposite)
    cfg.settings()  # check the grid before loading the model
    report = _run(model_from_args(args).open(),
                  lambda eng: run_truthfulqa(eng, ds, cfg, args.out, progress=not args.quiet,
                                             share_prefixes=not args.each_answer, ubatch=args.ubatch))
    print(f"sda-local: wrote {args.out}/truthfulqa.json, truthfulqa.md, items.jsonl", file=sys.stderr)
    print_headline(report, sys.stdout)
    return 0


def cmd_refusal(args) -> int:
    if not args.harmful and not args.benign:
        raise SdaError("give at least one dataset: --harmful FILE … and/or --benign FILE …")
    preset = preset_from_args(args)
    sets = [(load_dataset(p, args.limit, args.format), "harmful") for p in args.harmful] + \
           [(load_dataset(p, args.limit, args.format), "benign") for p in args.benign]
    names = [ds.name for ds, _ in sets]
    if len(set(names)) != len(names):
        raise SdaError(f"two datasets have the same name ({', '.join(names)}); rename one file")
    cfg = RefusalConfig(instruction=preset.instruction, preset=_preset_name(args, preset), lams=args.lams,
                        plausibilities=args.plausibility, sampling=sampling_from_args(args),
                        placements=args.placement, phrases_file=args.phrases,
                        contrasts=None if args.contrast == ["auto"] else list(dict.fromkeys(args.contrast)))
    report = _run(model_from_args(args).open(),
                  lambda eng: run_refusal(eng, sets, cfg, args.out, resume=args.resume, progress=not args.quiet,
                                          fluency=not args.no_fluency))
    print(f"sda-local: wrote {args.out}/refusal.json, refusal.md, items.jsonl", file=sys.stderr)
    for kind, block in report["summary"]["pooled"].items():
        label = "refusal on harmful" if kind == "harmful" else "over-refusal on benign"
        print(f"{label}: " + ", ".join(f"{s} {d['rate']:.1%}" for s, d in block.items()))
    return 0


def _common(default_preset: str, default_out: str) -> list[argparse.ArgumentParser]:
    """Options every dataset evaluation has: preset or instruction, placement grid, dataset reading, output, model."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--limit", type=int, default=None, help="use only the first N valid records of each file")
    p.add_argument("--format", default=None, help="dataset format, if the file name does not say it")
    p.add_argument("--out", default=default_out, help=f"report folder (default {default_out})")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    return [preset_parent(default_preset), turn_parent(only=("placement",), grid=PLACEMENT_GRID, placement="user"), p, model_parent()]


def add_commands(subparsers) -> argparse.ArgumentParser:
    """Create ``sda-local eval`` with its subcommands; returns the ``eval`` parser."""
    ev = subparsers.add_parser("eval", help="measure alignment on a dataset (truthfulqa, refusal, winrate, judge, "
                                            "samples, ifeval)",
                               description="Alignment measurements on JSONL prompt sets (truthfulqa and refusal are "
                                           "judge-free; winrate uses a judge); reports as JSON + Markdown.")
    sub = ev.add_subparsers(dest="eval_command", required=True,
                            metavar="{truthfulqa,refusal,winrate,judge,samples,ifeval}")

    t = sub.add_parser("truthfulqa", help="teacher-forced TruthfulQA MC1/MC2: base vs instruction vs SDA grid",
                       description="Score every reference answer of each question under base, instruction-only and "
                                   "SDA (λ grid × temperature modes × plausibility α × placement × contrast × "
                                   "guidance clip) by teacher "
                                   "forcing; no sampling, exact numbers.",
                       parents=[*_common("honesty", "results/truthfulqa"),
                                sampling_parent(only=("k", "t0", "temperature_mode", "plausibility", "contrast",
                                                      "guidance_clip"),
                                                grid={"temperature_mode": "--modes", **PLAUSIBILITY_GRID,
                                                      "contrast": "--contrasts", "guidance_clip": "--clips"},
                                                temperature_mode=core.TEMPERATURE_MODES)])
    t.add_argument("data", help="TruthfulQA JSONL (e.g. ../shared/datasets/truthfulqa.dev.jsonl)")
    t.add_argument("--lams", type=lambda_list_type(), nargs="+", default=[0.25, 0.5, 0.75, 1.0],
                   help="λ grid (default 0.25 0.5 0.75 1)")
    t.add_argument("--each-answer", action="store_true",
                   help="feed every answer on its own instead of each distinct answer prefix once: the same numbers "
                        "bit for bit, about a third more tokens to decode (to check that, or to time it)")
    t.add_argument("--ubatch", type=positive_int, default=None, metavar="N",
                   help="tokens llama.cpp computes at once (default 63: under 64, SmolLM2's numbers do not depend on "
                        "the batch layout; 512 is about 15%% faster on Qwen 1.5B, whose numbers move either way)")
    t.set_defaults(func=cmd_truthfulqa)

    r = sub.add_parser("refusal", help="refusal rate on harmful prompts, over-refusal on benign ones",
                       description="Answer each prompt with base, instruction-only and SDA at fixed λ values (and "
                                   "plausibility α values and placements); count refusals with the phrase-list "
                                   "detector; measure echo, degeneration and fluency of every answer.",
                       parents=[*_common("harmlessness", "results/refusal"),
                                sampling_parent(grid={**PLAUSIBILITY_GRID, "contrast": "--contrasts"}, max_tokens=64,
                                                seed=0)])
    r.add_argument("--harmful", nargs="+", default=[], metavar="FILE", help="harmful prompt sets (JSONL)")
    r.add_argument("--benign", nargs="+", default=[], metavar="FILE", help="benign prompt sets (JSONL)")
    r.add_argument("--lams", type=lambda_list_type(), nargs="+", default=[0.5, 1.0],
                   help="fixed SDA λ values (default 0.5 1.0; no evaluator is used)")
    r.add_argument("--phrases", default=None, help="a refusal phrase file instead of the packaged list")
    r.add_argument("--resume", action="store_true", help="continue an interrupted run in the same --out")
    r.add_argument("--no-fluency", action="store_true",
                   help="skip the fluency measure (one teacher-forced pass per prompt's answers)")
    r.set_defaults(func=cmd_refusal)

    add_winrate_command(sub)
    add_judge_command(sub)
    add_samples_command(sub)
    add_ifeval_command(sub)
    return ev
