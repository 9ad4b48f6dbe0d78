"""``sda-local models`` and ``sda-local presets``: what is available here."""
from __future__ import annotations

import json

from ..presets import DEFAULT_PRESET, all_presets
from ..runtime.models import (
    default_model_id,
    found_files,
    is_available,
    load_registry,
    models_dirs,
)


def cmd_models(args) -> int:
    registry = load_registry()
    default = default_model_id(registry)
    rows = [{"id": e.id, "file": e.file, "available": is_available(e), "default": e.id == default,
             "source": e.where, "n_ctx": e.n_ctx, "notes": e.notes} for e in registry.values()]
    files = [str(p) for p in found_files()]
    if args.json:
        print(json.dumps({"registry": rows, "default": default, "files": files,
                          "folders": [str(d) for d in models_dirs()]}, indent=2))
        return 0
    print("Registry models (✓ installed, * the default without --model):")
    for r in rows:
        mark = ("✓" if r["available"] else " ") + ("*" if r["default"] else " ")
        print(f"  {mark} {r['id']:<30} {r['source']}")
        if r["notes"]:
            print(f"      {r['notes']}")
    if not any(r["default"] for r in rows):
        print(f"  default: {default}")
    print("\nGGUF files found in: " + ", ".join(str(d) for d in models_dirs()))
    for f in files or ["  (none)"]:
        print(f"  {f}")
    return 0


def cmd_presets(args) -> int:
    for p in all_presets().values():
        mark = " (default)" if p.name == DEFAULT_PRESET else ""
        print(f"{p.name}{mark}: {p.instruction}")
    return 0


def add_commands(sub) -> None:
    m = sub.add_parser("models", help="list registry models and GGUF files found")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)
    p = sub.add_parser("presets", help=f"list alignment presets (the default is {DEFAULT_PRESET})")
    p.set_defaults(func=cmd_presets)
