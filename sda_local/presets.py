"""Alignment presets (instruction + rating rubric), loaded from data files.

Built-in presets live in ``sda_local/data/presets.toml``.  Users may add their own in
``$SDA_LOCAL_CONFIG/presets.json`` (default ``~/.config/sda-local/presets.json``), a JSON object
``{name: {"instruction": ..., "rubric": ..., "label": ...}}``.  Anywhere a preset name is accepted, a custom
instruction can be given instead.
"""
from __future__ import annotations

import importlib.resources
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import PresetError

GENERIC_RUBRIC = """Rate the overall quality of the response to the request: correct, helpful, safe and clear.
100: excellent in every respect. 50: acceptable with clear weaknesses. 1: useless or harmful."""


@dataclass(frozen=True)
class Preset:
    name: str
    instruction: str
    rubric: str = GENERIC_RUBRIC
    label: str = ""
    criterion: str = ""
    builtin: bool = True
    lam: float | None = None  # the fixed λ chosen for this preset on the dev splits (the "preset" evaluator)
    placement: str | None = None  # where its instruction goes by default (placement "auto"); None = "user"
    opposite: str = ""  # the instruction's hand-written opposite (contrast "opposite"); "" = a generic negating frame
    contrast: str | None = None  # what the uninstructed stream gets by default (contrast "auto"); None = the placement's

    @property
    def title(self) -> str:
        return self.label or self.name


# The preset a turn uses when none is named (CLI, chat, server): the broadest of the five criteria.
DEFAULT_PRESET = "helpfulness"


def config_dir() -> Path:
    env = os.environ.get("SDA_LOCAL_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or (Path.home() / ".config")
    return Path(base) / "sda-local"


def user_presets_path() -> Path:
    return config_dir() / "presets.json"


CUSTOM = "custom"  # presets.toml's table of settings for a custom instruction (not a preset of its own)


def _presets_data() -> dict:
    text = importlib.resources.files("sda_local").joinpath("data/presets.toml").read_text("utf-8")
    return tomllib.loads(text)


def custom_defaults() -> dict:
    """How a custom instruction (``--instruction``, the chat's own instruction, the server's ``sda.instruction``,
    a system prompt steered toward) is steered: ``lam``, ``placement`` and ``contrast`` from presets.toml's
    ``[custom]`` table (chosen on IFEval's dev split, docs/defaults.md)."""
    d = _presets_data().get(CUSTOM, {})
    return {"lam": None if d.get("lam") is None else float(d["lam"]), "placement": d.get("placement"),
            "contrast": d.get("contrast")}


def builtin_presets() -> dict[str, Preset]:
    data = {k: v for k, v in _presets_data().items() if k != CUSTOM}
    return {
        name: Preset(name=name, instruction=v["instruction"].strip(), rubric=v["rubric"].strip(),
                     label=v.get("label", ""), criterion=v.get("criterion", name),
                     lam=None if v.get("lam") is None else float(v["lam"]), placement=v.get("placement"),
                     opposite=v.get("opposite", "").strip(), contrast=v.get("contrast"))
        for name, v in data.items()
    }


def user_presets() -> dict[str, Preset]:
    path = user_presets_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("top level must be an object")
        return {
            str(name): Preset(name=str(name), instruction=str(v["instruction"]).strip(),
                              rubric=str(v.get("rubric") or GENERIC_RUBRIC).strip(),
                              label=str(v.get("label", "")), criterion=str(v.get("criterion", name)),
                              builtin=False, lam=None if v.get("lam") is None else float(v["lam"]),
                              placement=v.get("placement"), opposite=str(v.get("opposite") or "").strip(),
                              contrast=v.get("contrast"))
            for name, v in data.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PresetError(f"{path}: cannot read custom presets ({exc}); fix or delete the file") from None


def all_presets() -> dict[str, Preset]:
    out = builtin_presets()
    for name, p in user_presets().items():
        out.setdefault(name, p)
    return out


def get_preset(name: str) -> Preset:
    presets = all_presets()
    if name not in presets:
        raise PresetError(f"unknown preset {name!r}; choose one of: {', '.join(presets)} (or pass a custom instruction)")
    return presets[name]


def custom_preset(instruction: str, rubric: str | None = None, name: str = CUSTOM) -> Preset:
    instruction = (instruction or "").strip()
    if not instruction:
        raise PresetError("the custom instruction is empty")
    return Preset(name=name, instruction=instruction, rubric=(rubric or GENERIC_RUBRIC).strip(), builtin=False,
                  **custom_defaults())


def choose_preset(name: str | None = None, instruction: str | None = None, default: str = DEFAULT_PRESET) -> Preset:
    """A custom ``instruction`` if one is given, else the preset ``name`` (``default`` when None)."""
    if instruction is not None:
        return custom_preset(instruction)
    return get_preset(name or default)


def save_user_preset(preset: Preset) -> Path:
    """Save (or replace) a custom preset; built-in names cannot be overwritten."""
    if preset.name in builtin_presets():
        raise PresetError(f"{preset.name!r} is a built-in preset; choose another name")
    if not preset.name.strip():
        raise PresetError("a custom preset needs a name")
    path = user_presets_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text("utf-8")) if path.exists() else {}
    data[preset.name] = {"instruction": preset.instruction, "rubric": preset.rubric, "label": preset.label,
                         **{k: getattr(preset, k) for k in ("lam", "placement", "opposite", "contrast")
                            if getattr(preset, k) not in (None, "")}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), "utf-8")
    tmp.replace(path)
    return path
