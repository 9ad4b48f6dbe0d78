"""The layers, checked from the code's own imports (those inside functions too): data flows one way.

Each package (or top-level module) has a floor; a module may import its own package and anything on a lower
floor, never a higher floor or a neighbour on the same floor.  A cycle between modules fails too (the idea of
../shared/tools/import_cycles.py, applied to packages as well).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# floor of each unit (a package of sda_local, or one of its top-level modules); lower floors know nothing above
FLOORS = {
    "sda_local": 0, "sda_local.errors": 0,
    "sda_local.core": 1, "sda_local.presets": 1, "sda_local.jsonl": 1,
    "sda_local.runtime": 2,
    "sda_local.judges": 3,
    "sda_local.turn": 4,
    "sda_local.session": 5,
    "sda_local.evaluation": 6,
    "sda_local.palrs": 7,
    "sda_local.server": 8, "sda_local.ui": 8,
    "sda_local.bench": 9,
    "sda_local.cli": 10,
    "sda_local.chat": 11,  # ``python -m sda_local.chat``: an alias of ``sda-local chat``
}


def modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for base, pkg in (("sda_local", "sda_local"), ("ui", "sda_local.ui")):
        for p in (ROOT / base).rglob("*.py"):
            parts = [x for x in p.relative_to(ROOT / base).with_suffix("").parts if x != "__init__"]
            mods[".".join([pkg, *parts])] = (p, p.name == "__init__.py")
    return mods


def unit(mod: str) -> str:
    """The unit of FLOORS a module belongs to (the longest matching name)."""
    parts = mod.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in FLOORS:
            return name
    raise AssertionError(f"{mod} belongs to no floor: add it to FLOORS")


def imports(mods) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    m = ".".join(base + ([node.module] if node.module else []))
                else:
                    m = node.module or ""
                targets = [f"{m}.{a.name}" if f"{m}.{a.name}" in mods else m for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("sda_local"):
                    edges.setdefault(name, set()).add(t)
    return edges


def test_no_import_runs_up_or_sideways():
    mods = modules()
    bad = []
    for src, targets in imports(mods).items():
        us = unit(src)
        for t in targets:
            ut = unit(t)
            if ut == us or (ut == "sda_local" and t == "sda_local"):
                continue
            if FLOORS[ut] >= FLOORS[us]:
                bad.append(f"{src} (floor {FLOORS[us]}) imports {t} (floor {FLOORS[ut]})")
    assert not bad, "imports that run up or sideways:\n" + "\n".join(sorted(bad))


def test_no_module_cycle():
    mods = modules()
    edges = imports(mods)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if state.get(w) == 1:
                if not (w in stack and all(x == w or x.startswith(w + ".") for x in stack[stack.index(w):])):
                    return stack[stack.index(w):] + [w]
            elif w not in state:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return None

    for m in sorted(mods):
        if m not in state:
            cycle = visit(m)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_unit_is_on_a_floor():
    for m in modules():
        unit(m)


def test_the_layout_doc_is_drawn_from_the_code():
    """docs/layout.md is one line per module, the first line of its docstring: regenerate it with
    ``python tools/layout.py > docs/layout.md`` after adding, removing or redescribing a module."""
    import importlib.util
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("layout_tool", root / "tools" / "layout.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert (root / "docs" / "layout.md").read_text("utf-8") == tool.render()
    assert "(no docstring)" not in tool.render()
