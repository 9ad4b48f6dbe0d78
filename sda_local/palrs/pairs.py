"""Preference pairs: a JSONL file of ``{"prompt", "chosen", "rejected"}`` records, and builders from datasets.

One record a line; blank lines are skipped; any other keys are kept in ``Pair.extra`` and otherwise ignored.
``load_pairs`` checks the whole file and reports every bad line (up to ten) with its line number.

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
from typing import Iterable, Iterator

from ..errors import SdaError

FIELDS = ("prompt", "chosen", "rejected")
SPLITS = ("train", "heldout", "all")
TRAIN_SHARE = 4  # 1 question in TRAIN_SHARE goes to the train split
MAX_REPORTED = 10


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


def _check_record(obj) -> str | None:
    """None if ``obj`` is a valid pair record, else what is wrong with it."""
    if not isinstance(obj, dict):
        return f"expected a JSON object with {', '.join(FIELDS)}, got {type(obj).__name__}"
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


def parse_pairs(lines: Iterable[str], source: str = "pairs") -> list[Pair]:
    pairs: list[Pair] = []
    problems: list[str] = []
    n_bad = 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            why = f"not valid JSON ({exc.msg} at column {exc.colno})"
        else:
            why = _check_record(obj)
        if why is not None:
            n_bad += 1
            if len(problems) < MAX_REPORTED:
                problems.append(f"line {lineno}: {why}")
            continue
        extra = {k: v for k, v in obj.items() if k not in FIELDS}
        pairs.append(Pair(obj["prompt"], obj["chosen"], obj["rejected"], extra))
    if n_bad:
        more = f"; … and {n_bad - len(problems)} more" if n_bad > len(problems) else ""
        raise PairsError(f"{source}: {n_bad} malformed line{'s' if n_bad > 1 else ''} — " + "; ".join(problems) + more
                         + f". Each line must be a JSON object with string fields {', '.join(FIELDS)}.")
    if not pairs:
        raise PairsError(f"{source}: no pairs found (expected JSON lines with {', '.join(FIELDS)})")
    return pairs


def load_pairs(path: str | os.PathLike, limit: int | None = None) -> list[Pair]:
    """Read and check a pairs file; ``limit`` keeps the first N pairs."""
    path = Path(path)
    if not path.is_file():
        raise PairsError(f"pairs file {path} not found")
    try:
        with open(path, encoding="utf-8") as f:
            pairs = parse_pairs(f, str(path))
    except UnicodeDecodeError as exc:
        raise PairsError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if limit is not None:
        if limit < 1:
            raise PairsError(f"--limit must be ≥ 1, got {limit}")
        pairs = pairs[:limit]
    return pairs


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


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PairsError(f"{path}: line {lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise PairsError(f"{path}: line {lineno}: expected a JSON object")
            yield lineno, obj


def truthfulqa_pairs(path: str | os.PathLike, split: str = "train") -> list[Pair]:
    """One pair per TruthfulQA question: (Question, Best Answer, Best Incorrect Answer), in file order."""
    if split not in SPLITS:
        raise PairsError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(path)
    out = []
    for lineno, row in _read_jsonl(path):
        q, good, bad = row.get("Question"), row.get("Best Answer"), row.get("Best Incorrect Answer")
        if not all(isinstance(x, str) and x.strip() for x in (q, good, bad)):
            raise PairsError(f"{path}: line {lineno}: a TruthfulQA row needs Question, Best Answer and "
                             f"Best Incorrect Answer")
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
