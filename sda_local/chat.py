"""``python -m sda_local.chat``: the web chat (Gradio) on a local model.

Binds 127.0.0.1 unless ``--host`` says otherwise; a public share link only with ``--share``.  Gradio is
imported after the arguments are parsed, so ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from .conversations import DB_ENV, default_db_path, open_store
from .errors import SdaError
from .models import default_model_help
from .variants import DEFAULT_VARIANT, VARIANTS


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m sda_local.chat",
                                 description="Web chat with SDA alignment on a local GGUF model (Gradio).")
    ap.add_argument("--model", "-m", default=None,
                    help=f"registry id, file name in models/, or path to a .gguf (default: {default_model_help()})")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    ap.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    ap.add_argument("--share", action="store_true",
                    help="also open a public Gradio share link (off unless asked; needs internet)")
    ap.add_argument("--n-gpu-layers", type=int, default=-1, help="layers to offload (-1 = all; Metal/CUDA builds)")
    ap.add_argument("--n-ctx", type=int, default=None, help="context tokens per stream (default: the registry's)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: cores, at most 8)")
    ap.add_argument("--variant", choices=VARIANTS, default=None,
                    help=f"twin-stream layout (default {DEFAULT_VARIANT})")
    ap.add_argument("--db", default=None, metavar="PATH",
                    help=f"SQLite file the conversations are saved in (default: ${DB_ENV}, else "
                         f"{default_db_path()}); if it cannot be used, the chat keeps them in memory and says so")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"sda-local chat: error: --port must be 1–65535, got {args.port}", file=sys.stderr)
        return 2
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up checks of the local URL
    from .ui.host import ModelHost

    try:
        host = ModelHost(args.model, n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers, n_threads=args.threads,
                         variant=args.variant)
    except SdaError as exc:
        print(f"sda-local chat: error: {exc}", file=sys.stderr)
        return 2
    from .ui.app import build_app
    from .ui.offline import launch_kwargs

    store = open_store(args.db)
    if not store.persistent:
        print(f"sda-local chat: warning: {store.problem}", file=sys.stderr, flush=True)
    demo = build_app(host, store=store)
    print(f"sda-local chat: model {host.model_name}; open http://{args.host}:{args.port}/", file=sys.stderr,
          flush=True)
    try:
        demo.queue(max_size=256).launch(server_name=args.host, server_port=args.port, share=args.share,
                                        inbrowser=False, show_error=True, quiet=False,
                                        **launch_kwargs())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"sda-local chat: error: cannot listen on {args.host}:{args.port} ({exc})", file=sys.stderr)
        return 2
    finally:
        host.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
