"""The ``sda-local`` parser and ``main``: each command lives in its own module and adds its own parser."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import SdaError
from ..presets import DEFAULT_PRESET
from . import bench, catalog, chat, generate, score, serve
from . import eval as evaluation_cli
from . import palrs as palrs_cli


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sda-local", description="Training-free alignment (SDA) for local GGUF models. "
                                 f"The default alignment preset is {DEFAULT_PRESET}.")
    sub = ap.add_subparsers(dest="command", required=True)
    generate.add_command(sub)
    score.add_command(sub)
    catalog.add_commands(sub)
    bench.add_command(sub)
    serve.add_command(sub)
    chat.add_command(sub)
    palrs_cli.add_commands(sub)
    evaluation_cli.add_commands(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command.  A user error (``SdaError``) is one line on stderr and exit code 2; anything else is a
    bug and keeps its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SdaError as exc:
        print(f"sda-local: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
