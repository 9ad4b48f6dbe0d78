"""``sda-local chat`` (also ``python -m sda_local.chat``): the web chat (Gradio) on a local model.

Binds 127.0.0.1 unless ``--host`` says otherwise; a public share link only with ``--share``.  Gradio is
imported after the arguments are parsed, so ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from ..errors import SdaError
from ..ui.conversations import DB_ENV, default_db_path, open_store
from .model_options import model_parent

DESCRIPTION = "Web chat with SDA alignment on a local GGUF model (Gradio)."


def chat_parent() -> argparse.ArgumentParser:
    """The chat's own options (where it listens, where conversations are saved), beside the model options."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("chat")
    g.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    g.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    g.add_argument("--share", action="store_true",
                   help="also open a public Gradio share link (off unless asked; needs internet)")
    g.add_argument("--db", default=None, metavar="PATH",
                   help=f"SQLite file the conversations are saved in (default: ${DB_ENV}, else "
                        f"{default_db_path()}); if it cannot be used, the chat keeps them in memory and says so")
    return p


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="python -m sda_local.chat", description=DESCRIPTION,
                                   parents=[model_parent(), chat_parent()])


def add_command(sub) -> None:
    c = sub.add_parser("chat", help="open the web chat (the same as python -m sda_local.chat)",
                       description=DESCRIPTION, parents=[model_parent(), chat_parent()])
    c.set_defaults(func=cmd_chat)


def main(argv: Sequence[str] | None = None) -> int:
    return cmd_chat(build_parser().parse_args(argv))


def cmd_chat(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        print(f"sda-local chat: error: --port must be 1–65535, got {args.port}", file=sys.stderr)
        return 2
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up checks of the local URL
    from ..ui.host import ModelHost

    try:
        host = ModelHost(args.model, n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers, n_threads=args.threads,
                         layout=args.layout)
    except SdaError as exc:
        print(f"sda-local chat: error: {exc}", file=sys.stderr)
        return 2
    from ..ui.app import build_app
    from ..ui.offline import launch_kwargs

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
