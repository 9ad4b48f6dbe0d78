"""``python -m sda_local.cli``: the sda-local command."""
import sys

from .app import main

sys.exit(main())
