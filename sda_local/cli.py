"""Command line: ``sda-local <command>``.  Each command is one function; none holds any math."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .errors import SdaError
from .palrs import cli as palrs_cli


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", default=None, help="registry id, file name in models/, or path (default: smollm2-135m)")
    g.add_argument("--n-ctx", type=int, default=None, help="context tokens per stream (default: the registry's)")
    g.add_argument("--n-gpu-layers", type=int, default=-1, help="layers to offload (-1 = all; Metal/CUDA builds)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads (default: cores, at most 8)")
    g.add_argument("--variant", choices=("batched", "contexts"), default=None,
                   help="twin-stream layout: one context with two sequences, or two contexts")


def _add_evaluator_args(p: argparse.ArgumentParser, with_kind: bool = True) -> None:
    g = p.add_argument_group("evaluator (rates the unsteered answer; the score sets λ)")
    if with_kind:
        g.add_argument("--evaluator", choices=("local", "openai", "fixed"), default=None,
                       help="local GGUF judge (default), OpenAI-compatible endpoint, or fixed (--score/--lam)")
    g.add_argument("--judge-model", default=None, help="local judge: registry id, file or path (default: the chat model)")
    g.add_argument("--openai-model", default=None, help="default gpt-4.1 (or $SDA_LOCAL_OPENAI_MODEL)")
    g.add_argument("--openai-base-url", default=None, help="default $OPENAI_BASE_URL or api.openai.com")
    g.add_argument("--openai-api-key", default=None, help="default $OPENAI_API_KEY (prefer the variable)")
    g.add_argument("--timeout", type=float, default=30.0, help="seconds per evaluator request")
    g.add_argument("--retries", type=int, default=2, help="evaluator retries with back-off")


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
                  variant=args.variant or (None if getattr(args, "control_vector", None) else DEFAULT_VARIANT),
                  **palrs_cli.engine_kwargs(args))


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


def _evaluator_from_args(args, engine):
    from .evaluators import make_evaluator

    if args.lam is not None:
        return make_evaluator("fixed", lam=args.lam)
    if args.score is not None:
        return make_evaluator("fixed", score=args.score)
    kind = args.evaluator or "local"
    if kind == "fixed":
        return make_evaluator("fixed", score=50.0)
    return make_evaluator(kind, engine=engine, judge_model=args.judge_model, openai_model=args.openai_model,
                          openai_base_url=args.openai_base_url, openai_api_key=args.openai_api_key,
                          timeout=args.timeout, max_retries=args.retries)


def _turn_settings(args, preset):
    from .pipeline import TurnSettings

    return TurnSettings(preset=preset, mapping=args.mapping, fallback_lam=args.fallback_lam,
                        placement=args.placement, sampling=_params(args), system_prompt=args.system or "").check()


def _print_turn(events, as_json: bool, show_base: bool) -> None:
    err, out = sys.stderr, sys.stdout
    for ev in events:
        k = ev.kind
        if as_json:
            if k in ("base_token", "aligned_token"):
                t = ev.token
                row = {"stream": "base" if k == "base_token" else "sda", "index": t.index, "token_id": t.token_id,
                       "text": t.text, "prob": round(t.prob, 6), "js": None if t.js is None else round(t.js, 6),
                       "temperature": round(t.temperature, 6)}
            elif k == "phase_done":
                row = {"stream": "base" if ev.phase == "base" else "sda", **ev.finished.to_dict()}
            elif k == "score":
                row = {"event": "score", **ev.score.to_dict()}
            elif k == "warning":
                row = {"event": "warning", "message": ev.message, "fallback_lam": ev.fallback_lam}
            elif k == "lambda":
                row = {"event": "lambda", "lam": ev.lam, "source": ev.source, "score": ev.score, "mapping": ev.mapping}
            else:
                row = {"event": "done", "timings": ev.turn.timings}
            print(json.dumps(row, ensure_ascii=False), file=out, flush=True)
            continue
        if k == "base_token" and show_base:
            if ev.token.index == 0:
                print("── base answer (no instruction, no steering) ──", file=err, flush=True)
            print(ev.token.text, end="", file=out, flush=True)
        elif k == "phase_done" and (ev.phase == "aligned" or show_base):
            print(ev.finished.tail, file=out, flush=True)
        elif k == "score":
            s = ev.score
            print(f"── score {s.value}/100 from {s.evaluator} ({s.latency_s:.2f} s) ──", file=err, flush=True)
        elif k == "warning":
            print(f"warning: {ev.message}", file=err, flush=True)
        elif k == "lambda":
            src = {"score": f"score {ev.score} via {ev.mapping}", "fixed": "fixed", "fallback": "fallback"}[ev.source]
            if ev.source == "fixed" and ev.score is not None:
                src = f"fixed score {ev.score} via {ev.mapping}"
            print(f"── SDA answer (λ = {ev.lam:.3f}, {src}) ──", file=err, flush=True)
        elif k == "aligned_token":
            print(ev.token.text, end="", file=out, flush=True)
        elif k == "done":
            t = ev.turn.timings
            print(f"[aligned: {t['aligned_tokens']} tokens, {t['aligned_tokens_per_s']:.1f} tok/s; "
                  f"base {t['base_s']:.2f} s, judge {t['judge_s']:.2f} s, aligned {t['aligned_s']:.2f} s]",
                  file=err, flush=True)


def cmd_generate(args) -> int:
    from .pipeline import ChatSession
    from .presets import custom_preset, get_preset

    preset = custom_preset(args.instruction) if args.instruction else get_preset(args.preset)
    settings = _turn_settings(args, preset)
    engine = _engine(args)
    evaluator = _evaluator_from_args(args, engine)
    fixed = evaluator.fixed_lam is not None or getattr(evaluator, "fixed_score", None) is not None
    if fixed and not args.base:  # nothing to judge: skip the base answer
        from . import core

        lam = evaluator.fixed_lam if evaluator.fixed_lam is not None else \
            core.lambda_from_score(evaluator.fixed_score, args.mapping)
        if not args.json:
            print(f"── SDA answer (preset {preset.name}, λ = {lam:.3f}, {evaluator.name}) ──", file=sys.stderr)
        messages = ChatSession(engine, evaluator, settings).messages() + [{"role": "user", "content": args.question}]
        done = _stream(engine.generate(messages, preset.instruction, lam, placement=args.placement,
                                       params=settings.params()), "sda", args.json)
        if not args.json and done is not None:
            print(f"[{done.n_tokens} tokens, {done.tokens_per_second:.1f} tok/s, stop: {done.finish_reason}]",
                  file=sys.stderr)
        return 0
    session = ChatSession(engine, evaluator, settings)
    _print_turn(session.send(args.question), args.json, show_base=True)
    return 0


def cmd_score(args) -> int:
    from .evaluators import make_evaluator

    ev = make_evaluator(args.evaluator, judge_model=args.judge_model, openai_model=args.openai_model,
                        openai_base_url=args.openai_base_url, openai_api_key=args.openai_api_key,
                        timeout=args.timeout, max_retries=args.retries, score=50.0 if args.evaluator == "fixed" else None)
    if args.bench:
        from .evaluators.latency import measure_latency

        print(json.dumps(measure_latency(ev, args.bench), indent=2))
        return 0
    if args.query is None or args.response is None:
        raise SdaError("give a query and a response (or --bench N)")
    response = sys.stdin.read() if args.response == "-" else args.response
    scores = [ev.score(args.query, response, args.criterion) for _ in range(max(1, args.repeat))]
    lat = sorted(s.latency_s for s in scores)
    print(json.dumps({**scores[-1].to_dict(), "repeat": len(scores), "latency_s_median": round(lat[len(lat) // 2], 4),
                      "latency_s_first": round(scores[0].latency_s, 4)}, ensure_ascii=False, indent=2))
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
    _add_evaluator_args(g)
    g.add_argument("--fallback-lam", type=float, default=0.5, help="λ used when the evaluator fails (default 0.5)")
    g.add_argument("--placement", choices=("user", "system"), default="user",
                   help="where the instruction goes in the 'with' stream (default: appended to the user turn)")
    g.add_argument("--system", default=None, help="a system message for both streams")
    g.add_argument("--base", action="store_true",
                   help="with --lam/--score: also generate and print the unsteered answer (always shown otherwise)")
    g.add_argument("--json", action="store_true", help="one JSON object per token, with diagnostics")
    _add_model_args(g)
    _add_sampling_args(g)
    palrs_cli.add_generate_args(g)
    g.set_defaults(func=cmd_generate)

    sc = sub.add_parser("score", help="rate a response 1-100 with an evaluator (JSON with latency)")
    sc.add_argument("query", nargs="?")
    sc.add_argument("response", nargs="?", help="the response text, or - to read it from stdin")
    sc.add_argument("--bench", type=int, default=0, metavar="N",
                    help="instead: score N varied built-in examples and print latency statistics")
    sc.add_argument("--criterion", default="helpfulness", help="preset name or a custom rubric text")
    sc.add_argument("--evaluator", choices=("local", "openai", "fixed"), default="local")
    sc.add_argument("--repeat", type=int, default=1, help="score this many times (latency statistics)")
    _add_evaluator_args(sc, with_kind=False)
    sc.set_defaults(func=cmd_score)

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
    b.add_argument("--core-vocab", type=int, nargs="*", default=[49152, 262144],
                   help="vocab sizes for the core µs/step (default 49152 262144)")
    b.add_argument("--skip", nargs="*", choices=("gemma", "peer", "turn"), default=[],
                   help="leave out the Gemma 262k-vocab run, the transformers peer baseline and/or the full-turn "
                        "time to first aligned token")
    b.add_argument("--turn-tokens", type=int, default=None,
                   help="max tokens of the base answer in the full-turn timing (default --tokens)")
    b.add_argument("--peer-tokens", type=int, default=None, help="tokens for the peer baseline (default --tokens)")
    b.set_defaults(func=cmd_bench)
    palrs_cli.add_commands(sub)
    from .evaluation import cli as evaluation_cli  # sda-local eval …
    evaluation_cli.add_commands(sub)
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
