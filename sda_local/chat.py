"""``python -m sda_local.chat``: the web chat, the same as ``sda-local chat`` (``sda_local.cli.chat``)."""
import sys

from .cli.chat import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
