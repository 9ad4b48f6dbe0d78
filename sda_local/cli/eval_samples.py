"""Argument wiring for ``sda-local eval samples`` (the logic is in ``samples.py``).

    sda-local eval samples [--presets honesty empathy …] [--per-preset 5] [--data-dir ../shared/datasets]
                           [--evaluator preset | --lam 0.5 | …] [--placement P] [--plausibility A] [--out DIR]
                           [--contrast neutral ignore opposite] [--guidance-clip none 2] [--lam-grid 0.25 0.5]
"""
from __future__ import annotations

import shlex
import sys

from ..evaluation.samples import (
    PRESET_SOURCES,
    run_samples,
    select_prompts,
    variant_grid,
)
from ..judges import LAMBDA_OPTION
from ..judges.spec import Judges
from ..presets import builtin_presets, get_preset
from .eval_judge import positive_int
from .options import (
    evaluator_from_args,
    evaluator_parent,
    model_from_args,
    model_parent,
    option_type,
    sampling_from_args,
    sampling_parent,
    turn_parent,
    turn_settings_from_args,
)

DEFAULT_DATA_DIR = "../shared/datasets"
GRID = {"contrast": "--contrast", "guidance_clip": "--guidance-clip", "echo_block": "--echo-block"}


def grid_from_args(args) -> tuple[dict, dict]:
    """(single values, grid axes): a grid flag given one value is a plain setting; several make a grid."""
    single, axes = {}, {}
    for name in GRID:
        values = list(dict.fromkeys(getattr(args, name)))
        (single.__setitem__(name, values[0]) if len(values) == 1 else axes.__setitem__(name, values))
    return single, axes


def cmd_samples(args) -> int:
    presets = [get_preset(name) for name in dict.fromkeys(args.presets)]
    plan = [select_prompts(args.data_dir, p, args.per_preset) for p in presets]  # every file checked before loading
    single, axes = grid_from_args(args)
    settings = turn_settings_from_args(args, presets[0], sampling_from_args(args, **single))
    variants = variant_grid(args.lam_grid, **axes)
    spec = evaluator_from_args(args)
    engine = model_from_args(args).open()
    judges = Judges(engine)
    try:
        report = run_samples(engine, judges.build(spec), plan, settings, args.out,
                             command=shlex.join(["sda-local", *sys.argv[1:]]), progress=not args.quiet,
                             variants=variants)
    finally:
        judges.close()
        engine.close()
    print(f"sda-local: wrote {args.out}/samples.md, samples.json, samples.jsonl", file=sys.stderr)
    for name, per in report["quality"].items():
        print(f"{name}: " + ", ".join(f"{s} echo {q['echo']['k']}/{q['n']} narration {q['narration']['k']}/{q['n']}"
                                      for s, q in per.items()))
    return 0


def add_samples_command(eval_sub) -> None:
    s = eval_sub.add_parser(
        "samples", help="side-by-side answers per preset: base, instruction-only and SDA",
        description="For each preset, answer its first prompts of the matching dev split (honesty: truthfulqa, "
                    "harmlessness: beavertails, empathy: empathy, summarisation: dialogsum, helpfulness: the "
                    "truthfulqa prompts after honesty's) three times with the same seed: without the instruction, "
                    "with it, and with SDA (λ from the evaluator on the base answer).  Writes samples.md (escaped "
                    "model text), samples.jsonl and samples.json, with the judge-free quality of every answer.",
        parents=[evaluator_parent(title="λ evaluator (rates the base answer; --evaluator preset: each preset's λ)"),
                 turn_parent(), sampling_parent(max_tokens=160, seed=0, grid=GRID), model_parent()])
    s.add_argument("--lam-grid", nargs="+", type=option_type("lam", float, LAMBDA_OPTION), metavar="LAM",
                   help="fixed λ values, each a point of the grid (with --contrast / --guidance-clip / --echo-block "
                        "lists: every combination); base and instruction-only are answered once per prompt")
    s.add_argument("--presets", nargs="+", choices=list(PRESET_SOURCES), default=list(builtin_presets()),
                   metavar="PRESET", help=f"presets to sample (default all: {', '.join(builtin_presets())})")
    s.add_argument("--per-preset", type=positive_int, default=5, metavar="N",
                   help="prompts per preset (default 5)")
    s.add_argument("--data-dir", default=DEFAULT_DATA_DIR, metavar="DIR",
                   help=f"folder with the dev splits ({', '.join(sorted({x.file for x in PRESET_SOURCES.values()}))}; "
                        f"default {DEFAULT_DATA_DIR})")
    s.add_argument("--out", default="results/samples", help="output folder (default results/samples)")
    s.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    s.set_defaults(func=cmd_samples)
