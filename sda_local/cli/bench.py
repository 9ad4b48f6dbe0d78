"""``sda-local bench``: plain vs SDA decode speed, core cost, prompt time and memory, as JSON."""
from __future__ import annotations

import json

from ..bench import eval_throughput
from ..bench.run import OPTIONAL_SECTIONS, TIER_MODELS, BenchConfig, run_bench
from ..bench.turn import EVALUATORS, JUDGE_MODEL, TURN_PRESET
from ..presets import all_presets
from .options import model_parent, sampling_from_args, sampling_parent


def cmd_bench(args) -> int:
    cfg = BenchConfig(model=args.model, threads=args.threads, n_ctx=args.n_ctx, repeats=args.repeats,
                      core_vocab=tuple(args.core_vocab), skip=tuple(args.skip), turn_tokens=args.turn_tokens,
                      peer_tokens=args.peer_tokens, tier_model=args.tier_model,
                      ttfa_evaluators=tuple(args.ttfa_evaluators), judge_model=args.judge_model or None,
                      turn_preset=args.turn_preset,
                      sampling=sampling_from_args(args))
    print(json.dumps(run_bench(cfg), indent=2))
    return 0


def add_command(sub) -> None:
    b = sub.add_parser("bench", help="measure plain vs SDA decode speed, core cost, prompt time, memory (JSON)",
                       parents=[model_parent(layout=False, gpu=False, n_ctx=2048),
                                sampling_parent(max_tokens=64, seed=0, aliases={"max_tokens": ["--tokens"]})])
    b.add_argument("--repeats", type=int, default=3, help="runs per measurement (median reported)")
    b.add_argument("--core-vocab", type=int, nargs="*", default=[49152, 262144],
                   help="vocab sizes for the core µs/step (default 49152 262144)")
    b.add_argument("--skip", nargs="*", choices=OPTIONAL_SECTIONS, default=[],
                   help="leave out the Gemma 262k-vocab run, the transformers peers, the full-turn time to first "
                        "aligned token and/or the second model (tier)")
    b.add_argument("--turn-tokens", type=int, default=None,
                   help="max tokens of the base answer in the full-turn timing (default --max-tokens)")
    b.add_argument("--peer-tokens", type=int, default=None, help="tokens for the peer baseline (default --max-tokens)")
    b.add_argument("--tier-model", default=None,
                   help=f"the second model measured under 'tiers' (default: whichever of {', '.join(TIER_MODELS)} "
                        "is installed and is not --model)")
    b.add_argument("--ttfa-evaluators", nargs="*", choices=EVALUATORS, default=list(EVALUATORS),
                   help="evaluators whose time to first aligned token is measured")
    b.add_argument("--judge-model", default=JUDGE_MODEL,
                   help="also time the local judge running on this model, when installed and not the chat model "
                        "('' to leave out)")
    b.add_argument("--turn-preset", default=None, choices=sorted(all_presets()),
                   help=f"preset of the full-turn timing (default {TURN_PRESET}; its placement decides how much of "
                        "the prompts the aligned answer can reuse)")
    b.set_defaults(func=cmd_bench)
    e = sub.add_parser("bench-eval", help="seconds per question of eval truthfulqa, llama.cpp vs numpy (JSON)",
                       description=eval_throughput.__doc__.split("\n\n")[0])
    eval_throughput.add_arguments(e)
    e.set_defaults(func=lambda args: print(json.dumps(eval_throughput.run(args), indent=1)) or 0)
