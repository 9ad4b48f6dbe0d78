"""Command line: ``sda-local <command>``.  Each command is one function; none holds any math."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .errors import SdaError


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", default=None, help="registry id, file name in models/, or path (default: smollm2-135m)")
    g.add_argument("--n-ctx", type=int, default=None, help="context tokens per stream (default: the registry's)")
    g.add_argument("--n-gpu-layers", type=int, default=-1, help="layers to offload (-1 = all; Metal/CUDA builds)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads (default: cores, at most 8)")
    g.add_argument("--variant", choices=("batched", "contexts"), default=None,
                   help="twin-stream layout: one context with two sequences, or two contexts")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--k", type=float, default=2.0, help="steering gain k (default 2)")
    g.add_argument("--t0", type=float, default=0.6, help="base temperature T0 (default 0.6)")
    g.add_argument("--top-p", type=float, default=0.95, help="nucleus mass (default 0.95)")
    g.add_argument("--temperature-mode", choices=("ln2", "sharp", "off"), default="ln2",
                   help="how T shrinks with the streams' JS divergence (default ln2)")
    g.add_argument("--max-tokens", type=int, default=256)
    g.add_argument("--seed", type=int, default=None, help="fixed seed: the same output every run")


def _engine(args):
    from .engine import DEFAULT_VARIANT, Engine

    return Engine(args.model, n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers, n_threads=args.threads,
                  variant=args.variant or DEFAULT_VARIANT)


def _params(args):
    from .engine import SamplingParams

    return SamplingParams(k=args.k, t0=args.t0, top_p=args.top_p, temperature_mode=args.temperature_mode,
                          max_tokens=args.max_tokens, seed=args.seed).check()


def _stream(events, label: str, as_json: bool, out=sys.stdout):
    from .engine import Finished

    done = None
    for ev in events:
        if isinstance(ev, Finished):
            done = ev
            if as_json:
                print(json.dumps({"stream": label, **ev.to_dict()}, ensure_ascii=False), file=out, flush=True)
            elif ev.tail:
                print(ev.tail, end="", file=out, flush=True)
        elif as_json:
            print(json.dumps({"stream": label, "index": ev.index, "token_id": ev.token_id, "text": ev.text,
                              "prob": round(ev.prob, 6), "js": None if ev.js is None else round(ev.js, 6),
                              "temperature": round(ev.temperature, 6)}, ensure_ascii=False), file=out, flush=True)
        else:
            print(ev.text, end="", file=out, flush=True)
    if not as_json:
        print(file=out, flush=True)
    return done


def cmd_generate(args) -> int:
    from . import core
    from .presets import custom_preset, get_preset

    preset = custom_preset(args.instruction) if args.instruction else get_preset(args.preset)
    if args.lam is not None:
        lam, how = args.lam, "given"
    else:
        score = args.score if args.score is not None else 50.0
        lam = core.lambda_from_score(score, args.mapping)
        how = f"score {score:g} via {args.mapping}"
    params = _params(args)
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
               [{"role": "user", "content": args.question}]
    eng = _engine(args)
    err = sys.stderr
    if args.base:
        if not args.json:
            print("── base answer (no instruction, no steering) ──", file=err, flush=True)
        _stream(eng.generate_plain(messages, params=params), "base", args.json)
    if not args.json:
        print(f"── SDA answer (preset {preset.name}, λ = {lam:.3f}, {how}) ──", file=err, flush=True)
    done = _stream(eng.generate(messages, preset.instruction, lam, placement=args.placement, params=params),
                   "sda", args.json)
    if not args.json and done is not None:
        print(f"[{done.n_tokens} tokens, {done.tokens_per_second:.1f} tok/s, stop: {done.finish_reason}]",
              file=err, flush=True)
    return 0


def cmd_models(args) -> int:
    from .models import found_files, is_available, load_registry, models_dirs

    rows = [{"id": e.id, "file": e.file, "available": is_available(e), "source": e.where, "n_ctx": e.n_ctx,
             "notes": e.notes} for e in load_registry().values()]
    files = [str(p) for p in found_files()]
    if args.json:
        print(json.dumps({"registry": rows, "files": files, "folders": [str(d) for d in models_dirs()]}, indent=2))
        return 0
    print("Registry models:")
    for r in rows:
        mark = "✓" if r["available"] else " "
        print(f"  {mark} {r['id']:<30} {r['source']}")
        if r["notes"]:
            print(f"      {r['notes']}")
    print("\nGGUF files found in: " + ", ".join(str(d) for d in models_dirs()))
    for f in files or ["  (none)"]:
        print(f"  {f}")
    return 0


def cmd_presets(args) -> int:
    from .presets import all_presets

    for p in all_presets().values():
        print(f"{p.name}: {p.instruction}")
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench

    print(json.dumps(run_bench(args), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sda-local", description="Training-free alignment (SDA) for local GGUF models.")
    sub = ap.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="answer one question with SDA steering")
    g.add_argument("question")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--preset", default="harmlessness", help="alignment preset (see `sda-local presets`)")
    src.add_argument("--instruction", help="custom alignment instruction instead of a preset")
    lam = g.add_mutually_exclusive_group()
    lam.add_argument("--lam", type=float, help="steering strength λ, given directly")
    lam.add_argument("--score", type=float, help="a 1-100 score of the unsteered answer, mapped to λ")
    g.add_argument("--mapping", default="sigmoid", help="score→λ mapping (default sigmoid)")
    g.add_argument("--placement", choices=("user", "system"), default="user",
                   help="where the instruction goes in the 'with' stream (default: appended to the user turn)")
    g.add_argument("--system", default=None, help="a system message for both streams")
    g.add_argument("--base", action="store_true", help="print the unsteered answer first")
    g.add_argument("--json", action="store_true", help="one JSON object per token, with diagnostics")
    _add_model_args(g)
    _add_sampling_args(g)
    g.set_defaults(func=cmd_generate)

    m = sub.add_parser("models", help="list registry models and GGUF files found")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)

    p = sub.add_parser("presets", help="list alignment presets")
    p.set_defaults(func=cmd_presets)

    b = sub.add_parser("bench", help="measure plain vs SDA decode speed, core cost, prompt time, memory (JSON)")
    b.add_argument("--model", "-m", default=None)
    b.add_argument("--tokens", type=int, default=64, help="tokens to generate per measurement")
    b.add_argument("--repeats", type=int, default=3, help="runs per measurement (median reported)")
    b.add_argument("--threads", type=int, default=None)
    b.add_argument("--n-ctx", type=int, default=2048)
    b.add_argument("--core-vocab", type=int, nargs="*", default=[49152], help="vocab sizes for the core µs/step")
    b.set_defaults(func=cmd_bench)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SdaError as exc:
        print(f"sda-local: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"sda-local: invalid value: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
