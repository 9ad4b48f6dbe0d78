"""Argument wiring for ``sda-local eval judge`` (the logic is in ``judge_eval.py``).

    sda-local eval judge [--judges grammar,geval,reason,yesno,self] [--model M | --judge-model M]
                         [--truthfulqa FILE [--limit N]] [--pairs FILE ...] [--out DIR] [--resume]
    sda-local eval judge --build-harm-pairs ITEMS.jsonl ... [--instruction-preset harmlessness] --out-pairs FILE
"""
from __future__ import annotations

import argparse
import shlex
import sys

from ..errors import SdaError
from ..evaluation.datasets import load_jsonl, report_problems
from ..evaluation.judge_eval import (
    DEFAULT_JUDGES,
    JUDGE_CONTRASTS,
    JUDGE_NAMES,
    JudgePair,
    SharedModel,
    build_harm_pairs,
    headline,
    load_pairs,
    parse_judges,
    run_judge_eval,
    truthfulqa_pairs,
    write_pairs,
)
from ..evaluation.report import run_info
from ..judges import Evaluator, make_evaluator
from ..presets import get_preset
from .options import evaluator_from_args, evaluator_parent, model_parent

JUDGE_N_CTX = 2048  # each local judge's context (the self-score: room per stream for the prompt and the answer)


def positive_int(text: str) -> int:
    """argparse ``type=``: an integer ≥ 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, got {text!r}")
    return n


def collect_pairs(truthfulqa: str | None, limit: int | None, pair_files: list[str]) -> list[JudgePair]:
    """TruthfulQA pairs (the first ``limit``) and the pairs of each file, in that order."""
    pairs: list[JudgePair] = []
    if truthfulqa:
        ds = load_jsonl(truthfulqa)
        report_problems(ds, sys.stderr)
        if ds.format != "truthfulqa":
            raise SdaError(f"{truthfulqa}: expected TruthfulQA records (Question, Best Answer, Best Incorrect "
                           f"Answer…), got format {ds.format!r}")
        pairs += truthfulqa_pairs(ds, limit)
    for f in pair_files:
        pairs += load_pairs(f)
    if not pairs:
        raise SdaError("no pairs to score: give --truthfulqa FILE and/or --pairs FILE …")
    return pairs


def cmd_build_harm_pairs(args) -> int:
    if not args.out_pairs:
        raise SdaError("--build-harm-pairs needs --out-pairs FILE (where the pairs are written)")
    instruction = get_preset(args.instruction_preset).instruction
    pairs = [p for f in args.build_harm_pairs for p in build_harm_pairs(f, instruction)]
    if not pairs:
        raise SdaError("no pair could be built: no harmful prompt has a complying base answer and a refusal that "
                       "does not recite the instruction")
    path = write_pairs(args.out_pairs, pairs)
    print(f"sda-local: wrote {len(pairs)} harmlessness pair(s) to {path}; score them with "
          f"`sda-local eval judge --pairs {path}`", file=sys.stderr)
    return 0


def build_judges(names: list[str], host: SharedModel | None, args) -> dict[str, Evaluator]:
    """Every named judge, the local ones on the one ``host`` model; closes what was built if one fails."""
    opts = evaluator_from_args(args)
    judges: dict[str, Evaluator] = {}
    try:
        for name in names:
            judges[name] = make_evaluator(JUDGE_NAMES[name], engine=host, openai_model=opts.openai_model,
                                          openai_base_url=opts.openai_base_url, openai_api_key=opts.openai_api_key,
                                          timeout=opts.timeout, max_retries=opts.retries, n_ctx=args.n_ctx,
                                          n_threads=None if host is None else host.n_threads,
                                          self_contrast=JUDGE_CONTRASTS.get(name, "auto"))
    except BaseException:
        for ev in judges.values():
            ev.close()
        raise
    return judges


def cmd_judge(args) -> int:
    if args.build_harm_pairs:
        return cmd_build_harm_pairs(args)
    names = parse_judges(args.judges)
    pairs = collect_pairs(args.truthfulqa, args.limit, args.pairs)
    local = [n for n in names if n != "openai"]
    host = SharedModel.load(args.judge_model or args.model, n_gpu_layers=args.n_gpu_layers,
                            threads=args.threads) if local else None
    try:
        judges = build_judges(names, host, args)
        try:
            model = host.name if host is not None else judges["openai"].name
            info = {**run_info(), "model": host.info() if host is not None else model,
                    "command": shlex.join(["sda-local", *sys.argv[1:]])}
            report = run_judge_eval(judges, pairs, args.out, model=model, info=info, resume=args.resume,
                                    progress=not args.quiet)
        finally:
            for ev in judges.values():
                ev.close()
    finally:
        if host is not None:
            host.close()
    print(f"sda-local: wrote {args.out}/judge.json, judge.md, items.jsonl", file=sys.stderr)
    print("\n".join(headline(report["summary"])))
    return 0


def add_judge_command(eval_sub) -> None:
    j = eval_sub.add_parser(
        "judge", help="how much signal each judge's score carries: accuracy on labelled answer pairs",
        description="Score labelled pairs (a better and a worse answer to one request) with each judge and report "
                    "pairwise accuracy, ties, Spearman ρ and seconds per score.  The model is loaded once and every "
                    "local judge runs on it.  Or, with --build-harm-pairs, write harmlessness pairs from an "
                    "`eval refusal` run.",
        parents=[model_parent(layout=False, n_ctx=JUDGE_N_CTX),
                 evaluator_parent(fixed=False, choose=False, title="judge options (--judge-model: the model whose "
                                                                     "judges are measured, same as --model)")])
    j.add_argument("--judges", default=",".join(DEFAULT_JUDGES),
                   help=f"comma-separated judges among {', '.join(JUDGE_NAMES)} (the evaluator kinds; "
                        f"self-neutral / self-ignore / self-opposite: the self-score with that contrast line in the "
                        f"stream without the instruction; default {','.join(DEFAULT_JUDGES)})")
    j.add_argument("--truthfulqa", default=None, metavar="FILE",
                   help="TruthfulQA JSONL: pairs of its best answer vs best incorrect answer (honesty rubric)")
    j.add_argument("--limit", type=positive_int, default=None, help="the first N TruthfulQA pairs")
    j.add_argument("--pairs", nargs="+", default=[], metavar="FILE", help="pair files (JSONL of JudgePair objects)")
    j.add_argument("--out", default="results/judge", help="report folder (default results/judge)")
    j.add_argument("--resume", action="store_true", help="continue an interrupted run in the same --out")
    j.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    b = j.add_argument_group("building harmlessness pairs (no judging)")
    b.add_argument("--build-harm-pairs", nargs="+", default=[], metavar="ITEMS",
                   help="items.jsonl of `eval refusal` runs: a complying base answer vs a refusal that does not "
                        "recite the instruction, per harmful prompt; labelled with each run's model")
    b.add_argument("--instruction-preset", default="harmlessness",
                   help="the preset whose instruction an echoing refusal recites (default harmlessness)")
    b.add_argument("--out-pairs", default=None, metavar="FILE", help="where the built pairs are written")
    j.set_defaults(func=cmd_judge)
