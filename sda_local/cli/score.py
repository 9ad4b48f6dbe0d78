"""``sda-local score``: rate one response 1–100 with an evaluator (JSON, with latency)."""
from __future__ import annotations

import json
import sys

from ..bench.judge_latency import measure_latency
from ..errors import SdaError
from ..judges import Evaluator
from ..judges.spec import Judges
from ..presets import DEFAULT_PRESET
from .options import evaluator_from_args, evaluator_parent


def score_repeatedly(evaluator: Evaluator, query: str, response: str, criterion: str, repeat: int = 1) -> dict:
    """The last score of ``repeat`` runs, with the first and the median latency."""
    scores = [evaluator.score(query, response, criterion) for _ in range(max(1, repeat))]
    lat = sorted(s.latency_s for s in scores)
    return {**scores[-1].to_dict(), "repeat": len(scores), "latency_s_median": round(lat[len(lat) // 2], 4),
            "latency_s_first": round(scores[0].latency_s, 4)}


def cmd_score(args) -> int:
    judges = Judges(None)  # a local judge loads its own model (--judge-model, else the default model)
    try:
        evaluator = judges.build(evaluator_from_args(args))
        if args.bench:
            print(json.dumps(measure_latency(evaluator, args.bench), indent=2))
            return 0
        if args.query is None or args.response is None:
            raise SdaError("give a query and a response (or --bench N)")
        response = sys.stdin.read() if args.response == "-" else args.response
        result = score_repeatedly(evaluator, args.query, response, args.criterion, args.repeat)
    finally:
        judges.close()
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def add_command(sub) -> None:
    sc = sub.add_parser("score", help="rate a response 1-100 with an evaluator (JSON with latency)",
                        parents=[evaluator_parent()])
    sc.add_argument("query", nargs="?")
    sc.add_argument("response", nargs="?", help="the response text, or - to read it from stdin")
    sc.add_argument("--bench", type=int, default=0, metavar="N",
                    help="instead: score N varied built-in examples and print latency statistics")
    sc.add_argument("--criterion", default=DEFAULT_PRESET,
                    help=f"preset name or a custom rubric text (default {DEFAULT_PRESET})")
    sc.add_argument("--repeat", type=int, default=1, help="score this many times (latency statistics)")
    sc.set_defaults(func=cmd_score)
