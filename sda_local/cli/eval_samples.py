"""Argument wiring for ``sda-local eval samples`` (the logic is in ``samples.py``).

    sda-local eval samples [--presets honesty empathy …] [--per-preset 5] [--data-dir ../shared/datasets]
                           [--evaluator preset | --lam 0.5 | …] [--placement P] [--plausibility A] [--out DIR]
"""
from __future__ import annotations

import shlex
import sys

from .options import (evaluator_from_args, evaluator_parent, model_from_args, model_parent, sampling_from_args,
                      sampling_parent, turn_parent, turn_settings_from_args)
from ..presets import builtin_presets, get_preset
from .eval_judge import positive_int
from ..evaluation.samples import PRESET_SOURCES, run_samples, select_prompts

DEFAULT_DATA_DIR = "../shared/datasets"


def cmd_samples(args) -> int:
    presets = [get_preset(name) for name in dict.fromkeys(args.presets)]
    plan = [select_prompts(args.data_dir, p, args.per_preset) for p in presets]  # every file checked before loading
    settings = turn_settings_from_args(args, presets[0], sampling_from_args(args))
    options = evaluator_from_args(args)
    engine = model_from_args(args).open()
    evaluator = None
    try:
        evaluator = options.build(engine)
        report = run_samples(engine, evaluator, plan, settings, args.out,
                             command=shlex.join(["sda-local", *sys.argv[1:]]), progress=not args.quiet)
    finally:
        if evaluator is not None:
            evaluator.close()
        engine.close()
    print(f"sda-local: wrote {args.out}/samples.md, samples.json, samples.jsonl", file=sys.stderr)
    for name, per in report["quality"].items():
        print(f"{name}: " + ", ".join(f"{s} echo {q['echo']['k']}/{q['n']}" for s, q in per.items()))
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
                 turn_parent(), sampling_parent(max_tokens=128, seed=0), model_parent()])
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
