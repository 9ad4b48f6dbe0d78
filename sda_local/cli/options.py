"""Options shared by the ``sda-local`` commands, each declared once, as argparse parent parsers.

- ``sampling_parent``  one option per ``SamplingParams`` field: flag, help, type, choices and range all come from
                       the field's ``Option`` (``sampling_options()``), so a new field is a new option everywhere;
- ``turn_parent``      ``TurnSettings``' own options (λ mapping, fallback λ, placement, system prompt), the same way;
- ``model_parent``     which GGUF and how llama.cpp runs it (``model_options``, light: the chat's ``--help``);
- ``evaluator_parent`` where λ comes from (a judge, or a given λ / score): one option per ``JudgeSpec`` field,
                       from its ``Option`` (``judge_options()``), the same way;
- ``preset_parent``    ``--preset NAME`` or ``--instruction TEXT``.

A parent is built fresh for each command, so a command can set its own defaults (``sampling_parent(max_tokens=64)``)
or turn a field into a grid of values (``grid={"plausibility": "--plausibility"}``: ``nargs="+"``).  The
``*_from_args`` functions are the boundary: they read a parsed ``Namespace`` into typed objects and turn a
``ValueError`` from a check into an ``SdaError`` with the same message.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable, Mapping, Sequence

from ..core import Option, SamplingParams, sampling_options
from ..core.params import base_type
from ..errors import SdaError
from ..judges import DEFAULT_EVALUATOR, LAMBDA_OPTION
from ..judges.spec import FIXED_FIELDS, JudgeSpec, judge_options
from ..presets import DEFAULT_PRESET, Preset, choose_preset
from ..turn import TurnSettings, turn_options
from .model_options import ModelOptions, model_from_args, model_parent  # noqa: F401  (shared by the commands)


def option_type(name: str, py_type: type, opt: Option) -> Callable[[str], Any]:
    """An argparse ``type=``: converts the text and checks it against ``opt``; the error names the range and
    repeats the option's help (what the value means)."""
    def convert(text: str):
        if opt.optional and text.strip().lower() in ("none", "off", ""):
            return None
        try:
            value = py_type(text)
        except ValueError:
            kind = "an integer" if py_type is int else "a number"
            raise argparse.ArgumentTypeError(f"{name} must be {kind} {opt.describe_range()}; got {text!r}") from None
        try:
            opt.check(name, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc} ({opt.help})") from None
        return value

    convert.__name__ = name  # argparse names the type in some messages
    return convert


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(map(_show, value))
    if value is None or value == "":
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_option(group, name: str, annotation: Any, default: Any, opt: Option, *, flags: Sequence[str] = (),
               grid: bool = False) -> None:
    """One argparse option from an ``Option``: ``--name-with-dashes`` (plus ``flags``), dest ``name``."""
    kwargs: dict[str, Any] = {"dest": name, "default": default}
    text = opt.help.replace("%", "%%")
    py_type = base_type(annotation)
    if opt.choices is not None:
        # a grid names its points: "auto" (a per-turn choice, e.g. the preset's placement) is not one
        kwargs["choices"] = tuple(c for c in opt.choices if not (grid and c == "auto"))
    elif py_type is str:  # free text (a system prompt): nothing to check
        kwargs["metavar"] = "TEXT"
    else:
        kwargs["type"] = option_type(name, py_type, opt)
        if opt.lo is not None or opt.hi is not None:
            text += f"; {opt.describe_range()}"
    if grid:
        kwargs["nargs"] = "+"
        text += "; several values: each is a point of the grid"
    kwargs["help"] = f"{text} (default {_show(default)})"
    group.add_argument(*(flags or ["--" + name.replace("_", "-")]), **kwargs)


def sampling_parent(*, only: Sequence[str] | None = None, grid: Mapping[str, str] | None = None,
                    aliases: Mapping[str, Sequence[str]] | None = None, **defaults) -> argparse.ArgumentParser:
    """``SamplingParams`` as options: all fields (or ``only`` these), with a command's own ``defaults``;
    ``grid`` maps a field to the flag of its list form; ``aliases`` adds flags (e.g. ``--tokens``)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("sampling")
    grid, aliases = grid or {}, aliases or {}
    for name, annotation, default, opt in sampling_options():
        if only is not None and name not in only:
            continue
        default = defaults.pop(name, default)
        if name in grid:
            add_option(g, name, annotation, list(default) if isinstance(default, (list, tuple)) else [default],
                       opt, flags=[grid[name]], grid=True)
        else:
            add_option(g, name, annotation, default, opt,
                       flags=["--" + name.replace("_", "-"), *aliases.get(name, ())])
    if defaults:
        raise TypeError(f"not sampling options: {', '.join(defaults)}")
    return p


def sampling_from_args(args: argparse.Namespace, **overrides) -> SamplingParams:
    """The ``SamplingParams`` a command's options describe.  Fields the command does not offer, and grid fields
    (lists: the command passes them to its grid), keep their default."""
    values = {name: getattr(args, name) for name, *_ in sampling_options()
              if hasattr(args, name) and not isinstance(getattr(args, name), list)}
    try:
        return SamplingParams(**{**values, **overrides}).check()
    except ValueError as exc:
        raise SdaError(f"invalid setting: {exc}") from None


def turn_parent(*, only: Sequence[str] | None = None, grid: Mapping[str, Sequence[str]] | None = None,
                **defaults) -> argparse.ArgumentParser:
    """``TurnSettings``' own options (or ``only`` these); the system prompt is ``--system`` (or ``--system-prompt``).
    ``grid`` maps a field to the flags of its list form (``{"placement": ["--placements", "--placement"]}``:
    ``nargs="+"``, the value a list)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("turn")
    flags = {"system_prompt": ["--system", "--system-prompt"]}
    grid = grid or {}
    for name, annotation, default, opt in turn_options():
        if only is not None and name not in only:
            continue
        default = defaults.get(name, default)
        if name in grid:
            add_option(g, name, annotation, list(default) if isinstance(default, (list, tuple)) else [default],
                       opt, flags=list(grid[name]), grid=True)
        else:
            add_option(g, name, annotation, default, opt, flags=flags.get(name, ()))
    return p


def turn_settings_from_args(args: argparse.Namespace, preset: Preset, sampling: SamplingParams) -> TurnSettings:
    own = {name: getattr(args, name) for name, *_ in turn_options()}
    return TurnSettings(preset=preset, sampling=sampling, **own).check()


def preset_parent(default: str | None = DEFAULT_PRESET, default_text: str | None = None) -> argparse.ArgumentParser:
    """``--preset NAME`` | ``--instruction TEXT`` (a custom instruction with the generic rubric)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("alignment").add_mutually_exclusive_group()
    g.add_argument("--preset", default=None,
                   help=f"alignment preset (default {default_text or default}; see `sda-local presets`)")
    g.add_argument("--instruction", default=None, help="a custom alignment instruction instead of a preset")
    p.set_defaults(preset_default=default)
    return p


def preset_from_args(args: argparse.Namespace) -> Preset | None:
    """The chosen preset or custom instruction; None when neither is given and the command has no default."""
    if args.instruction is None and args.preset is None and args.preset_default is None:
        return None
    return choose_preset(args.preset, args.instruction, args.preset_default)


# -- the evaluator -------------------------------------------------------------------------------------------
# ``JudgeSpec`` field → its flag where it is not ``--field-name`` (the dest is the flag's name: ``args.evaluator``)
JUDGE_FLAGS = {"kind": "--evaluator"}


def judge_dest(name: str) -> str:
    """The ``Namespace`` attribute of a ``JudgeSpec`` field (``kind`` → ``evaluator``)."""
    return JUDGE_FLAGS.get(name, "--" + name.replace("_", "-"))[2:].replace("-", "_")


def evaluator_parent(*, kind: str = DEFAULT_EVALUATOR, timeout: float | None = None, fixed: bool = True,
                     choose: bool = True,
                     title: str = "evaluator (rates the unsteered answer; the score sets λ)") -> argparse.ArgumentParser:
    """``JudgeSpec``'s fields as options, each from its ``Option`` (``judge_options()``): ``--evaluator`` (the
    kind), ``--lam`` | ``--score``, ``--judge-model``, ``--openai-model``, ``--openai-base-url``,
    ``--openai-api-key``, ``--timeout``, ``--retries``.  ``kind`` and ``timeout`` are this command's defaults;
    ``fixed=False``: no ``--lam`` / ``--score``; ``choose=False``: no ``--evaluator`` (a command that picks its
    judges itself, such as ``eval judge``)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group(title)
    defaults = {"kind": kind, **({} if timeout is None else {"timeout": timeout})}
    given = g.add_mutually_exclusive_group() if fixed else None  # --lam | --score
    for name, annotation, default, opt in judge_options():
        dest, default = judge_dest(name), defaults.get(name, default)
        if (name == "kind" and not choose) or (name in FIXED_FIELDS and not fixed):
            p.set_defaults(**{dest: default})
            continue
        add_option(given if name in FIXED_FIELDS else g, dest, annotation, default, opt,
                   flags=[JUDGE_FLAGS.get(name, "--" + name.replace("_", "-"))])
    return p


def evaluator_from_args(args: argparse.Namespace) -> JudgeSpec:
    """The ``JudgeSpec`` a command's evaluator options describe (``SdaError`` for a value it refuses)."""
    return JudgeSpec(**{name: getattr(args, judge_dest(name)) for name, *_ in judge_options()})


def lambda_list_type() -> Callable[[str], float]:
    """argparse ``type=`` for a λ grid value (``--lams``): the same range as ``--lam``."""
    return option_type("λ", float, LAMBDA_OPTION)


def text_arg(text: str, what: str, example: str) -> str:
    """``text`` stripped; an ``SdaError`` saying what to give when it is empty or only whitespace."""
    text = (text or "").strip()
    if not text:
        raise SdaError(f"the {what} is empty; give the text, e.g. {example}")
    return text
