"""``sda-local palrs …`` commands, and the control-vector options of ``sda-local generate``.

``add_commands(sub)`` adds the ``palrs`` group; ``control_vector_parent()`` / ``control_vector_kwargs(args)`` give
``generate`` its ``--control-vector`` options and the engine arguments they mean.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys

import numpy as np

from ..core import CV_STREAMS
from ..core.control import DEFAULT_CV_STREAMS
from ..errors import SdaError
from ..evaluation.progress import Progress
from ..palrs.cvec import (
    control_vectors,
    parse_layer_range,
    read_control_vector,
    write_control_vector,
)
from ..palrs.extract import POSITIONS, extract
from ..palrs.pairs import SPLITS, build_pairs, load_pairs, write_pairs
from ..palrs.sweep import (
    DEFAULT_ALPHAS,
    SweepConfig,
    parse_floats,
    render_markdown,
    run_sweep,
)
from ..runtime.backend import LoadedModel
from ..runtime.models import resolve_model
from .options import (
    lambda_list_type,
    model_from_args,
    model_parent,
    preset_from_args,
    preset_parent,
    sampling_from_args,
    sampling_parent,
    text_arg,
)
from .output import print_finished, print_stream

# -- generate options ------------------------------------------------------------------------------------------

def control_vector_parent(streams: bool = True) -> argparse.ArgumentParser:
    """``--control-vector PATH[:SCALE]`` (repeatable), ``--cv-scale``, ``--cv-layers``, ``--cv-streams``."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("residual steering (PaLRS control vectors; same files as llama.cpp --control-vector)")
    g.add_argument("--control-vector", action="append", default=None, metavar="PATH[:SCALE]",
                   help="control-vector GGUF to add to the residual stream, optionally with a scale (repeatable: "
                        "the vectors are summed)")
    g.add_argument("--cv-scale", type=float, default=1.0, help="multiplies every control vector (α; default 1)")
    g.add_argument("--cv-layers", default=None, metavar="A-B",
                   help="apply only to layers A..B, inclusive (default: all; like --control-vector-layer-range)")
    if streams:
        g.add_argument("--cv-streams", choices=CV_STREAMS, default=DEFAULT_CV_STREAMS,
                       help="steer only the aligned stream (default; uses the 'contexts' layout) or both streams")
    else:
        p.set_defaults(cv_streams=DEFAULT_CV_STREAMS)
    return p


def control_vector_kwargs(args: argparse.Namespace) -> dict:
    """Engine keyword arguments for the control-vector options (empty when none were given)."""
    if not args.control_vector:
        return {}
    return {"control": control_vectors(args.control_vector, scale=args.cv_scale, layers=args.cv_layers,
                                       streams=args.cv_streams)}


# -- commands ----------------------------------------------------------------------------------------------------

def cmd_pairs(args) -> int:
    pairs = build_pairs(args.dataset, args.split)
    if args.limit is not None:
        pairs = pairs[: max(1, args.limit)]
    n = write_pairs(args.out, pairs)
    print(f"wrote {n} pairs ({args.dataset}, split {args.split}) to {args.out}", file=sys.stderr)
    return 0


def cmd_extract(args) -> int:
    pairs = load_pairs(args.pairs, limit=args.limit)
    layers = parse_layer_range(args.layers)
    choice = resolve_model(args.model)
    model = LoadedModel(choice.path, n_gpu_layers=args.n_gpu_layers)
    print(f"extracting from {len(pairs)} pairs on {choice.name} ({model.n_layer} layers, n_embd {model.n_embd}), "
          f"position {args.position}", file=sys.stderr, flush=True)
    res = extract(model, pairs, layers=layers, position=args.position, system=args.system,
                  max_tokens=args.max_tokens, n_threads=args.threads,
                  progress=None if args.quiet else Progress("pairs"))
    directions = res.directions(all_layers=args.all_layers)
    write_control_vector(args.out, directions, res.model_hint, res.metadata())
    summary = {"out": str(args.out), "model": choice.name, "layers_written": sorted(directions), **res.summary()}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {args.out}: direction.{res.selected} (layer {res.selected}, cosine {summary['cosine']}, "
              f"norm {summary['norm']}) from {res.n_pairs} pairs in {res.seconds:.1f} s"
              + (f"; {len(directions)} layers written" if args.all_layers else ""))
        print(f"use it: sda-local generate \"…\" --model {args.model or choice.name} --control-vector {args.out}:0.1"
              f"   or llama.cpp: --control-vector-scaled {args.out} 0.1", file=sys.stderr)
    return 0


def cmd_info(args) -> int:
    cv = read_control_vector(args.vector)
    out = {"path": str(cv.path), "model_hint": cv.model_hint, "n_embd": cv.n_embd,
           "layers": {int(n): round(float(np.linalg.norm(v)), 4) for n, v in sorted(cv.directions.items())},
           "metadata": {k: v for k, v in cv.metadata.items() if k.startswith(("palrs.", "general.name"))}}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def cmd_generate(args) -> int:
    """Residual steering alone: plain sampling (no SDA, no instruction) on the control-vector-steered stream."""
    question = text_arg(args.question, "question", 'sda-local palrs generate "Is the earth flat?" --control-vector V')
    if not args.control_vector:
        raise SdaError("give at least one --control-vector PATH[:SCALE]")
    params = sampling_from_args(args)
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
               [{"role": "user", "content": question}]
    eng = model_from_args(args).open(**control_vector_kwargs(args))
    err = sys.stderr
    try:
        if args.base:
            if not args.json:
                print("── base answer (no steering) ──", file=err, flush=True)
            print_stream(eng.generate_plain(messages, params=params, stream="base"), "base", args.json)
        if not args.json:
            c = eng.control
            where = f"layers {c.layers[0]}-{c.layers[1]}" if c.layers else "all layers"
            print(f"── residual-steered answer ({c.description}, {where}) ──", file=err, flush=True)
        done = print_stream(eng.generate_plain(messages, params=params, stream="aligned"), "cv", args.json)
    finally:
        eng.close()
    if not args.json:
        print_finished(done)
    return 0


def cmd_sweep(args) -> int:
    preset = preset_from_args(args)
    cfg = SweepConfig(vector=args.vector, out=args.out, alphas=parse_floats(args.alphas, "--alphas"),
                      aligned_alphas=parse_floats(args.aligned_alphas, "--aligned-alphas"),
                      cv_layers=parse_layer_range(args.cv_layers), dataset=args.dataset, split=args.split,
                      limit=args.limit, lams=tuple(args.lam or (0.5,)),
                      preset=None if args.instruction is not None else preset.name,
                      instruction=preset.instruction, plausibilities=tuple(args.plausibility),
                      sampling=sampling_from_args(args), command=_command_line())
    eng = model_from_args(args).open()
    try:
        summary = run_sweep(eng, cfg)
    finally:
        eng.close()
    print(render_markdown(summary))
    return 0


def _command_line() -> str:
    argv = sys.argv[1:]
    return "sda-local " + " ".join(map(shlex.quote, argv)) if argv[:1] == ["palrs"] else \
        " ".join(map(shlex.quote, sys.argv))


# -- parsers -----------------------------------------------------------------------------------------------------

def _add_extract(ps) -> None:
    e = ps.add_parser("extract", help="extract a control vector from preference pairs",
                      parents=[model_parent(layout=False, ctx=False)])
    e.add_argument("--pairs", required=True, help="JSONL with prompt, chosen, rejected")
    e.add_argument("--out", required=True, help="output control-vector GGUF")
    e.add_argument("--layers", default=None, metavar="A-B",
                   help="candidate layers, inclusive (default: 1 to n_layer-1); the best one is selected")
    e.add_argument("--position", choices=POSITIONS, default="mean",
                   help="response position: the last token (end of turn) or the mean over the answer (default mean)")
    e.add_argument("--limit", type=int, default=None, help="use the first N pairs")
    e.add_argument("--all-layers", action="store_true",
                   help="write every candidate layer's rescaled vector, not only the selected one")
    e.add_argument("--system", default=None, help="a system message for every pair")
    e.add_argument("--max-tokens", type=int, default=1024, help="longest prompt+answer kept (default 1024)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("--json", action="store_true", help="print a JSON summary")
    e.set_defaults(func=cmd_extract)


def _add_sweep(ps) -> None:
    s = ps.add_parser("sweep", help="α sweep on TruthfulQA MC1/MC2, alone and with SDA",
                      parents=[preset_parent("honesty"), model_parent(layout=False, ctx=False, n_ctx=512),
                               sampling_parent(only=("k", "t0", "temperature_mode", "plausibility"),
                                               aliases={"temperature_mode": ["--mode"]},
                                               grid={"plausibility": "--plausibility"})])
    s.add_argument("--vector", required=True, help="control-vector GGUF (from `sda-local palrs extract`)")
    s.add_argument("--alphas", default=DEFAULT_ALPHAS, help=f"α grid, comma-separated (default {DEFAULT_ALPHAS})")
    s.add_argument("--aligned-alphas", default="", help="α values also run with only the 'with' stream steered")
    s.add_argument("--cv-layers", default=None, metavar="A-B", help="apply only to layers A..B")
    s.add_argument("--dataset", default="truthfulqa", help="TruthfulQA file or name (default truthfulqa)")
    s.add_argument("--split", choices=SPLITS, default="heldout",
                   help="questions scored (default heldout: not those `palrs pairs` extracts from)")
    s.add_argument("--limit", type=int, default=None, help="score the first N questions of the split")
    s.add_argument("--lam", type=lambda_list_type(), action="append", default=None,
                   help="SDA λ (repeatable; default 0.5)")
    s.add_argument("--out", required=True, help="output folder (one subfolder per run, sweep.json, sweep.md)")
    s.set_defaults(func=cmd_sweep)


def add_commands(sub) -> None:
    """Add ``palrs`` and its subcommands to the top-level subparsers."""
    pp = sub.add_parser("palrs", help="PaLRS residual steering: preference pairs → control vectors",
                        description="PaLRS (arXiv 2509.23982): steering vectors from preference pairs, written as "
                                    "llama.cpp control vectors.")
    ps = pp.add_subparsers(dest="palrs_command", required=True)

    a = ps.add_parser("pairs", help="build preference pairs (JSONL prompt/chosen/rejected) from a dataset")
    a.add_argument("--dataset", default="truthfulqa", help="dataset name or path (builder: truthfulqa)")
    a.add_argument("--split", choices=SPLITS, default="train",
                   help="questions to use: train (~1/4, hashed), heldout (the rest) or all (default train)")
    a.add_argument("--limit", type=int, default=None, help="keep the first N pairs")
    a.add_argument("--out", required=True, help="output JSONL")
    a.set_defaults(func=cmd_pairs)

    _add_extract(ps)

    i = ps.add_parser("info", help="show a control vector's layers, norms and metadata")
    i.add_argument("vector")
    i.set_defaults(func=cmd_info)

    g = ps.add_parser("generate", help="answer with residual steering alone (no SDA, no instruction)",
                      parents=[control_vector_parent(streams=False), model_parent(layout=False), sampling_parent()])
    g.add_argument("question")
    g.add_argument("--system", default=None, help="a system message")
    g.add_argument("--base", action="store_true", help="print the unsteered answer first")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_generate)

    _add_sweep(ps)
