"""``sda-local serve``: the OpenAI-compatible server with per-request SDA (``sda_local.server``)."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ..errors import SdaError
from .options import (
    evaluator_from_args,
    evaluator_parent,
    model_from_args,
    model_parent,
    sampling_from_args,
    sampling_parent,
    turn_parent,
)

API_KEY_ENV = "SDA_LOCAL_API_KEY"


def cmd_serve(args) -> int:
    import uvicorn  # imported here: the other commands do not need the web stack

    from ..server import ServerConfig, create_app
    from ..turn import TurnSettings

    if not 0 < args.port < 65536:
        raise SdaError(f"--port must be 1–65535, got {args.port}")
    if args.max_queue < 0:
        raise SdaError(f"--max-queue must be ≥ 0, got {args.max_queue}")
    if args.max_tokens_limit is not None and args.max_tokens_limit < 1:
        raise SdaError(f"--max-tokens-limit must be ≥ 1, got {args.max_tokens_limit}")
    origins = tuple(args.cors_origin or ())
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            raise SdaError(f"--cors-origin {origin!r} is not an origin: give scheme://host[:port] (no path), or *")
    cv_dir = Path(args.cv_dir) if args.cv_dir else None
    if cv_dir is not None and not cv_dir.is_dir():
        raise SdaError(f"--cv-dir {cv_dir} is not a directory")
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    options = model_from_args(args)
    defaults = TurnSettings(sampling=sampling_from_args(args), mapping=args.mapping, fallback_lam=args.fallback_lam,
                            placement=args.placement).check()
    config = ServerConfig(api_key=api_key, max_queue=args.max_queue, max_body=args.max_body, cv_dir=cv_dir,
                          evaluator=evaluator_from_args(args), defaults=defaults,
                          max_tokens_limit=args.max_tokens_limit, cors_origins=origins)
    engine = options.open()
    app = create_app(engine, config)
    auth = "API key required" if api_key else "no API key"
    cors = f"; CORS for {', '.join(origins)}" if origins else ""
    print(f"sda-local serve: model {engine.name} on http://{args.host}:{args.port}/v1 ({auth}; "
          f"queue {args.max_queue}; answers capped at {args.max_tokens_limit or engine.n_ctx} tokens{cors})",
          file=sys.stderr, flush=True)
    if not api_key and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"sda-local serve: warning: listening on {args.host} without an API key (set ${API_KEY_ENV})",
              file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5)
    finally:
        app.state.judges.close()
        engine.close()
    return 0


def cmd_bench_serve(args) -> int:
    import json

    from ..bench.serve import ServeBenchConfig, run_serve_bench

    cfg = ServeBenchConfig(sampling=sampling_from_args(args), lam=args.lam, repeats=args.repeats,
                           clients=args.clients, requests_per_client=args.requests)
    engine = model_from_args(args).open()
    try:
        print(json.dumps(run_serve_bench(engine, cfg), indent=2))
    finally:
        engine.close()
    return 0


def add_command(sub) -> None:
    s = sub.add_parser("serve", help="OpenAI-compatible HTTP server with per-request SDA",
                       description="Serve the model over an OpenAI-compatible API (POST /v1/chat/completions, "
                                   "POST /v1/completions, GET /v1/models, GET /v1/models/ID, GET /health). A request steers with SDA when it carries an "
                                   "`sda` object or names the model MODEL+PRESET; otherwise it is plain decoding. "
                                   "The options below set the defaults a request may override.",
                       parents=[model_parent(), evaluator_parent(title="default λ source (a request may name "
                                                                       "another in sda.evaluator / sda.lam)"),
                                turn_parent(only=("mapping", "fallback_lam", "placement")), sampling_parent()])
    g = s.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    g.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    g.add_argument("--api-key", default=None,
                   help=f"require 'Authorization: Bearer KEY' on /v1 (default ${API_KEY_ENV}; prefer the variable: "
                        "a command-line argument is visible to other users of the machine)")
    g.add_argument("--max-queue", type=int, default=16,
                   help="requests that may wait while one generates; more get 503 + Retry-After (default 16)")
    g.add_argument("--max-body", type=int, default=1_000_000, help="largest request body in bytes (default 1000000)")
    g.add_argument("--max-tokens-limit", type=int, default=None, metavar="N",
                   help="most tokens one answer may have: a request asking for more (max_tokens, "
                        "max_completion_tokens) is capped to N, as llama.cpp's -n (default: the context size)")
    g.add_argument("--cors-origin", nargs="+", default=None, metavar="ORIGIN",
                   help="browser origins (scheme://host[:port], or *) allowed to call the API: CORS headers and "
                        "preflight answers for them only (default: none, no CORS)")
    g.add_argument("--cv-dir", default=None,
                   help="directory of control-vector GGUFs a request may name in sda.control_vectors (none: "
                        "requests cannot use control vectors; paths outside it are always refused)")
    g.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (default info; the access log never shows headers or keys)")
    s.set_defaults(func=cmd_serve)

    b = sub.add_parser("bench-serve", help="measure the server: tok/s over HTTP vs in-process, time to first token "
                                           "with concurrent streams (JSON)",
                       parents=[model_parent(layout=False, gpu=False, n_ctx=2048),
                                sampling_parent(max_tokens=64, seed=0, aliases={"max_tokens": ["--tokens"]})])
    b.add_argument("--lam", type=float, default=0.5, help="λ of the benchmark's SDA requests (default 0.5)")
    b.add_argument("--repeats", type=int, default=3, help="runs per side for the tok/s ratio (median; default 3)")
    b.add_argument("--clients", type=int, default=4, help="concurrent streaming clients (default 4)")
    b.add_argument("--requests", type=int, default=3, help="requests per client (default 3)")
    b.set_defaults(func=cmd_bench_serve)
