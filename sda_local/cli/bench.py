"""``sda-local bench``: plain vs SDA decode speed, core cost, prompt time and memory, as JSON."""
from __future__ import annotations

import json

from ..bench import OPTIONAL_SECTIONS, BenchConfig, run_bench
from .options import model_parent, sampling_from_args, sampling_parent


def cmd_bench(args) -> int:
    cfg = BenchConfig(model=args.model, threads=args.threads, n_ctx=args.n_ctx, repeats=args.repeats,
                      core_vocab=tuple(args.core_vocab), skip=tuple(args.skip), turn_tokens=args.turn_tokens,
                      peer_tokens=args.peer_tokens, sampling=sampling_from_args(args))
    print(json.dumps(run_bench(cfg), indent=2))
    return 0


def add_command(sub) -> None:
    b = sub.add_parser("bench", help="measure plain vs SDA decode speed, core cost, prompt time, memory (JSON)",
                       parents=[model_parent(variant=False, gpu=False, n_ctx=2048),
                                sampling_parent(max_tokens=64, seed=0, aliases={"max_tokens": ["--tokens"]})])
    b.add_argument("--repeats", type=int, default=3, help="runs per measurement (median reported)")
    b.add_argument("--core-vocab", type=int, nargs="*", default=[49152, 262144],
                   help="vocab sizes for the core µs/step (default 49152 262144)")
    b.add_argument("--skip", nargs="*", choices=OPTIONAL_SECTIONS, default=[],
                   help="leave out the Gemma 262k-vocab run, the transformers peer baseline and/or the full-turn "
                        "time to first aligned token")
    b.add_argument("--turn-tokens", type=int, default=None,
                   help="max tokens of the base answer in the full-turn timing (default --max-tokens)")
    b.add_argument("--peer-tokens", type=int, default=None, help="tokens for the peer baseline (default --max-tokens)")
    b.set_defaults(func=cmd_bench)
