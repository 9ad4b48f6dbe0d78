"""``sda-local palrs …`` commands and the control-vector options of ``sda-local generate``.

Wired into ``sda_local.cli.build_parser`` by ``add_commands(sub)`` and ``add_generate_args(parser)``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from ..errors import SdaError


# -- progress ------------------------------------------------------------------------------------------------

class Progress:
    """A plain progress bar on stderr: redrawn in place on a terminal, a line every 10 % otherwise."""

    def __init__(self, label: str, stream=None, width: int = 28):
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.t0 = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1

    def __call__(self, done: int, total: int) -> None:
        el = time.perf_counter() - self.t0
        frac = done / total if total else 1.0
        eta = el / done * (total - done) if done else 0.0
        filled = int(round(frac * self.width))
        line = (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} "
                f"{el:.0f}s elapsed, ~{eta:.0f}s left")
        if self.tty:
            print("\r" + line, end="\n" if done >= total else "", file=self.stream, flush=True)
        else:
            decile = int(frac * 10)
            if decile != self._last_decile or done >= total:
                self._last_decile = decile
                print(line, file=self.stream, flush=True)


# -- generate options ------------------------------------------------------------------------------------------

def add_generate_args(p: argparse.ArgumentParser, streams: bool = True) -> None:
    """``--control-vector PATH[:SCALE]`` (repeatable), ``--cv-scale``, ``--cv-layers``, ``--cv-streams``."""
    g = p.add_argument_group("residual steering (PaLRS control vectors; same files as llama.cpp --control-vector)")
    g.add_argument("--control-vector", action="append", default=None, metavar="PATH[:SCALE]",
                   help="control-vector GGUF to add to the residual stream, optionally with a scale (repeatable: "
                        "the vectors are summed)")
    g.add_argument("--cv-scale", type=float, default=1.0, help="multiplies every control vector (α; default 1)")
    g.add_argument("--cv-layers", default=None, metavar="A-B",
                   help="apply only to layers A..B, inclusive (default: all; like --control-vector-layer-range)")
    if not streams:
        return
    g.add_argument("--cv-streams", choices=("aligned", "both"), default="aligned",
                   help="steer only the aligned stream (default; uses the 'contexts' layout) or both streams")


def engine_kwargs(args) -> dict:
    """Engine keyword arguments for the control-vector options (empty when none were given)."""
    vecs = getattr(args, "control_vector", None)
    if not vecs:
        return {}
    return {"control_vectors": list(vecs), "cv_scale": args.cv_scale, "cv_layers": args.cv_layers,
            "cv_streams": args.cv_streams}


# -- commands ----------------------------------------------------------------------------------------------------

def cmd_pairs(args) -> int:
    from .pairs import build_pairs, write_pairs

    pairs = build_pairs(args.dataset, args.split)
    if args.limit is not None:
        pairs = pairs[: max(1, args.limit)]
    n = write_pairs(args.out, pairs)
    print(f"wrote {n} pairs ({args.dataset}, split {args.split}) to {args.out}", file=sys.stderr)
    return 0


def cmd_extract(args) -> int:
    from ..backend import LoadedModel
    from ..models import resolve_model
    from .cvec import parse_layer_range, write_control_vector
    from .extract import extract
    from .pairs import load_pairs

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
    import numpy as np

    from .cvec import read_control_vector

    cv = read_control_vector(args.vector)
    out = {"path": str(cv.path), "model_hint": cv.model_hint, "n_embd": cv.n_embd,
           "layers": {int(n): round(float(np.linalg.norm(v)), 4) for n, v in sorted(cv.directions.items())},
           "metadata": {k: v for k, v in cv.metadata.items() if k.startswith(("palrs.", "general.name"))}}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def cmd_generate(args) -> int:
    """Residual steering alone: plain sampling (no SDA, no instruction) on the control-vector-steered stream."""
    from ..cli import _params, _stream
    from ..engine import Engine

    if not args.control_vector:
        raise SdaError("give at least one --control-vector PATH[:SCALE]")
    params = _params(args)
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
               [{"role": "user", "content": args.question}]
    eng = Engine(args.model, n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers, n_threads=args.threads,
                 variant="contexts", control_vectors=args.control_vector, cv_scale=args.cv_scale,
                 cv_layers=args.cv_layers, cv_streams="aligned")
    err = sys.stderr
    if args.base:
        if not args.json:
            print("── base answer (no steering) ──", file=err, flush=True)
        _stream(eng.generate_plain(messages, params=params, stream="base"), "base", args.json)
    if not args.json:
        c = eng.control
        print(f"── residual-steered answer ({', '.join(c['vectors'])} × {c['scale']:g}, layers "
              f"{c['layers'][0]}-{c['layers'][1]}) ──", file=err, flush=True)
    done = _stream(eng.generate_plain(messages, params=params, stream="aligned"), "cv", args.json)
    if not args.json and done is not None:
        print(f"[{done.n_tokens} tokens, {done.tokens_per_second:.1f} tok/s, stop: {done.finish_reason}]",
              file=err, flush=True)
    return 0


def cmd_sweep(args) -> int:
    from .sweep import run_sweep

    return run_sweep(args)


def add_commands(sub) -> None:
    """Add ``palrs`` and its subcommands to the top-level subparsers."""
    from ..cli import _add_model_args, _add_sampling_args

    pp = sub.add_parser("palrs", help="PaLRS residual steering: preference pairs → control vectors",
                        description="PaLRS (arXiv 2509.23982): steering vectors from preference pairs, written as "
                                    "llama.cpp control vectors.")
    ps = pp.add_subparsers(dest="palrs_command", required=True)

    a = ps.add_parser("pairs", help="build preference pairs (JSONL prompt/chosen/rejected) from a dataset")
    a.add_argument("--dataset", default="truthfulqa", help="dataset name or path (builder: truthfulqa)")
    a.add_argument("--split", choices=("train", "heldout", "all"), default="train",
                   help="questions to use: train (~1/4, hashed), heldout (the rest) or all (default train)")
    a.add_argument("--limit", type=int, default=None, help="keep the first N pairs")
    a.add_argument("--out", required=True, help="output JSONL")
    a.set_defaults(func=cmd_pairs)

    e = ps.add_parser("extract", help="extract a control vector from preference pairs")
    e.add_argument("--pairs", required=True, help="JSONL with prompt, chosen, rejected")
    e.add_argument("--out", required=True, help="output control-vector GGUF")
    e.add_argument("--model", "-m", default=None, help="registry id, file name in models/, or path (default: smollm2-135m)")
    e.add_argument("--layers", default=None, metavar="A-B",
                   help="candidate layers, inclusive (default: 1 to n_layer-1); the best one is selected")
    e.add_argument("--position", choices=("last", "mean"), default="mean",
                   help="response position: the last token (end of turn) or the mean over the answer (default mean)")
    e.add_argument("--limit", type=int, default=None, help="use the first N pairs")
    e.add_argument("--all-layers", action="store_true",
                   help="write every candidate layer's rescaled vector, not only the selected one")
    e.add_argument("--system", default=None, help="a system message for every pair")
    e.add_argument("--max-tokens", type=int, default=1024, help="longest prompt+answer kept (default 1024)")
    e.add_argument("--threads", type=int, default=None)
    e.add_argument("--n-gpu-layers", type=int, default=-1)
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("--json", action="store_true", help="print a JSON summary")
    e.set_defaults(func=cmd_extract)

    i = ps.add_parser("info", help="show a control vector's layers, norms and metadata")
    i.add_argument("vector")
    i.set_defaults(func=cmd_info)

    g = ps.add_parser("generate", help="answer with residual steering alone (no SDA, no instruction)")
    g.add_argument("question")
    g.add_argument("--system", default=None, help="a system message")
    g.add_argument("--base", action="store_true", help="print the unsteered answer first")
    g.add_argument("--json", action="store_true")
    add_generate_args(g, streams=False)
    _add_model_args(g)
    _add_sampling_args(g)
    g.set_defaults(func=cmd_generate)

    s = ps.add_parser("sweep", help="α sweep on TruthfulQA MC1/MC2 (needs `sda-local eval truthfulqa`)")
    from .sweep import add_sweep_args

    add_sweep_args(s)
    s.set_defaults(func=cmd_sweep)
