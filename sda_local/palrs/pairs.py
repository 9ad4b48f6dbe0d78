"""Preference pairs: a JSONL file of ``{"prompt", "chosen", "rejected"}`` records, and builders from datasets.

One record a line; blank lines are skipped; any other keys are kept in ``Pair.extra`` and otherwise ignored.
``load_pairs`` checks the whole file (with ``sda_local.jsonl.read_records``, the project's one JSONL reader) and
reports the bad lines (up to ten) with their line numbers.

Builder: TruthfulQA (``truthfulqa_pairs``).  For each question, ``chosen`` is the dataset's *Best Answer* and
``rejected`` its *Best Incorrect Answer*.  That contrast is what TruthfulQA's MC1 task scores (the true answer
against plausible false ones, for the same question), so the difference of the two answers' activations points
from "a confident false answer" towards "the true one" while the question, the template and the topic cancel.
One pair per question keeps every question's weight equal.  Questions are split deterministically (by a hash of
the question text) into ``train`` (about a quarter, ~120 of the 474 dev questions: PaLRS's "~100 pairs") and
``heldout`` (the rest), so a vector can be measured on questions it was not extracted from.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import SdaError
from ..jsonl import read_records

FIELDS = ("prompt", "chosen", "rejected")
SPLITS = ("train", "heldout", "all")
TQA_FIELDS = ("Question", "Best Answer", "Best Incorrect Answer")
TRAIN_SHARE = 4  # 1 question in TRAIN_SHARE goes to the train split
EXPECTED = f"Each line must be a JSON object with string fields {', '.join(FIELDS)}."


class PairsError(SdaError):
    """A pairs file (or a dataset used to build one) is missing or malformed."""


@dataclass
class Pair:
    prompt: str
    chosen: str
    rejected: str
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected, **self.extra},
                          ensure_ascii=False)


def _check_record(obj: dict) -> str | None:
    """None if ``obj`` is a valid pair record, else what is wrong with it."""
    missing = [k for k in FIELDS if k not in obj]
    if missing:
        return "missing field" + ("s " if len(missing) > 1 else " ") + ", ".join(repr(k) for k in missing)
    for k in FIELDS:
        if not isinstance(obj[k], str):
            return f"field {k!r} must be a string, got {type(obj[k]).__name__}"
        if not obj[k].strip():
            return f"field {k!r} is empty"
    if obj["chosen"].strip() == obj["rejected"].strip():
        return "'chosen' and 'rejected' are the same text (the pair carries no preference)"
    return None


def load_pairs(path: str | os.PathLike, limit: int | None = None) -> list[Pair]:
    """Read and check a pairs file; ``limit`` keeps the first N pairs."""
    if limit is not None and limit < 1:
        raise PairsError(f"--limit must be ≥ 1, got {limit}")
    recs = read_records(path, check=_check_record, error=PairsError, what="pairs file")
    recs.raise_problems(PairsError, EXPECTED)
    if not recs.rows:
        raise PairsError(f"{path}: no pairs found (expected JSON lines with {', '.join(FIELDS)})")
    pairs = [Pair(o["prompt"], o["chosen"], o["rejected"], {k: v for k, v in o.items() if k not in FIELDS})
             for o in recs.dicts()]
    return pairs[:limit] if limit is not None else pairs


def write_pairs(path: str | os.PathLike, pairs: Iterable[Pair]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for p in pairs:
            f.write(p.to_json() + "\n")
            n += 1
    return n


# -- datasets ---------------------------------------------------------------------------------------------------

def dataset_dirs() -> list[Path]:
    """Where ``--dataset NAME`` is looked for: $SDA_LOCAL_DATASETS (``:``-separated), ./datasets, and the
    ``shared/datasets`` folder next to the project checkout."""
    dirs = []
    env = os.environ.get("SDA_LOCAL_DATASETS")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    root = Path(__file__).resolve().parents[2]
    dirs += [Path.cwd() / "datasets", root / "datasets", root.parent / "shared" / "datasets"]
    return list(dict.fromkeys(dirs))


def find_dataset(name: str) -> Path:
    """A dataset file by path, or by name (``truthfulqa`` → ``truthfulqa.dev.jsonl`` in ``dataset_dirs()``)."""
    p = Path(name)
    if p.suffix in (".jsonl", ".json") or os.sep in name:
        if p.is_file():
            return p
        raise PairsError(f"dataset file {p} not found")
    for d in dataset_dirs():
        for fname in (f"{name}.dev.jsonl", f"{name}.jsonl"):
            if (d / fname).is_file():
                return d / fname
    where = ", ".join(str(d) for d in dataset_dirs())
    raise PairsError(f"dataset {name!r} not found (looked for {name}.dev.jsonl in {where}); "
                     f"pass a path or set SDA_LOCAL_DATASETS")


def split_of(question: str) -> str:
    """Deterministic train/heldout assignment of a question (stable across runs, platforms and file order)."""
    h = int.from_bytes(hashlib.sha256(question.strip().encode("utf-8")).digest()[:8], "big")
    return "train" if h % TRAIN_SHARE == 0 else "heldout"


def _check_truthfulqa(row: dict) -> str | None:
    if all(isinstance(row.get(k), str) and row[k].strip() for k in TQA_FIELDS):
        return None
    return f"a TruthfulQA row needs {', '.join(TQA_FIELDS)} (non-empty strings)"


def truthfulqa_pairs(path: str | os.PathLike, split: str = "train") -> list[Pair]:
    """One pair per TruthfulQA question: (Question, Best Answer, Best Incorrect Answer), in file order."""
    if split not in SPLITS:
        raise PairsError(f"split must be one of {SPLITS}, got {split!r}")
    recs = read_records(path, check=_check_truthfulqa, error=PairsError, what="dataset file")
    recs.raise_problems(PairsError)
    out = []
    for lineno, row in recs.rows:
        q, good, bad = (row[k] for k in TQA_FIELDS)
        if good.strip() == bad.strip():
            continue
        if split != "all" and split_of(q) != split:
            continue
        out.append(Pair(q.strip(), good.strip(), bad.strip(),
                        {"source": "truthfulqa", "line": lineno, "category": row.get("Category", "")}))
    if not out:
        raise PairsError(f"{path}: no TruthfulQA pairs in split {split!r}")
    return out


BUILDERS = {"truthfulqa": truthfulqa_pairs}


def build_pairs(dataset: str, split: str = "train") -> list[Pair]:
    name = Path(dataset).name.split(".")[0].lower()
    if name not in BUILDERS:
        raise PairsError(f"no pair builder for dataset {dataset!r}: the builders are {', '.join(BUILDERS)} "
                         f"(the other dev sets hold prompts without reference answers, so they give no pairs)")
    return BUILDERS[name](find_dataset(dataset), split)
