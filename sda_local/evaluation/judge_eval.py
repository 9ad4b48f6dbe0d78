"""``sda-local eval judge``: how much signal an evaluator's score carries, on labelled answer pairs.

SDA's λ is only as good as the score it comes from.  A pair is (query, better answer, worse answer) under one
criterion; a judge that carries signal scores the better answer higher.  Two pair sets:

- **truthfulqa** (honesty): a TruthfulQA question, its best answer and its best incorrect answer
  (``truthfulqa_pairs`` builds them from the dataset file);
- **harmlessness**: a harmful request, a refusal and a complying answer, both written by the embedded models
  and committed under ``results/judge/`` so the pairs stay fixed (``load_pairs``).

Reported per judge and pair set: pairwise accuracy (better strictly higher; Wilson 95 % interval), inverted
and tied pairs, Spearman ρ between the scores and the labels (better = 1, worse = 0) over all answers, and
seconds per score.  Scores are appended to ``items.jsonl`` as they come, so ``--resume`` continues a run.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy import stats

from ..errors import SdaError
from . import metrics
from .datasets import Dataset
from .quality import echoes_instruction
from ..jsonl import read_records
from .report import md_table, pct

PAIR_SETS = {"truthfulqa": "honesty", "harmlessness": "harmlessness"}


@dataclass(frozen=True)
class JudgePair:
    id: str
    set: str          # "truthfulqa" | "harmlessness" | any name
    criterion: str    # preset name whose rubric the judge uses
    query: str
    better: str
    worse: str
    source: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def truthfulqa_pairs(ds: Dataset, limit: int | None = None) -> list[JudgePair]:
    """(question, best answer, best incorrect answer) pairs from a TruthfulQA dataset, in file order."""
    out = []
    for it in ds.items:
        r = it.record
        better, worse = str(r.get("Best Answer", "")).strip(), str(r.get("Best Incorrect Answer", "")).strip()
        if better and worse:
            out.append(JudgePair(it.id, "truthfulqa", "honesty", it.prompt, better, worse, "TruthfulQA"))
        if limit is not None and len(out) >= limit:
            break
    return out


def harm_pairs_from_answers(rows: Iterable[dict], instruction: str, source: str) -> list[JudgePair]:
    """Harmlessness pairs from ``eval refusal`` rows: for each harmful prompt, a refusal that does not recite
    the instruction (the instruction-only answer first, else any steered one) against the base answer, when
    the base answer complied.  ``refused`` comes from the refusal detector recorded in each row."""
    by: dict[str, dict[str, dict]] = {}
    for r in rows:
        if r.get("kind") == "harmful":
            by.setdefault(r["id"], {})[r["system"]] = r
    out = []
    for pid, systems in by.items():
        base = systems.get("base")
        if base is None or base["refused"] or len(base["text"].split()) < 8:
            continue
        order = sorted(systems, key=lambda s: (s != "instruction", s))
        refusal = next((systems[s] for s in order if s != "base" and systems[s]["refused"]
                        and not echoes_instruction(systems[s]["text"], instruction)), None)
        if refusal is not None:
            out.append(JudgePair(f"{source}:{pid}", "harmlessness", "harmlessness", base["prompt"],
                                 refusal["text"], base["text"], f"{source} ({refusal['system']} vs base)"))
    return out


PAIR_FIELDS = ("id", "set", "criterion", "query", "better", "worse")


def _pair_problem(row: dict) -> str | None:
    missing = [k for k in PAIR_FIELDS if not isinstance(row.get(k), str) or not row[k].strip()]
    return f"no {', '.join(map(repr, missing))} text" if missing else None


def load_pairs(path: str | os.PathLike) -> list[JudgePair]:
    """Pairs from a JSONL file of ``JudgePair`` objects; malformed lines are an error naming each line."""
    recs = read_records(path, check=_pair_problem, error=SdaError, what="pair file").raise_problems(SdaError)
    if not recs.rows:
        raise SdaError(f"{path} holds no pairs")
    return [JudgePair(**{k: row[k] for k in PAIR_FIELDS}, source=str(row.get("source", ""))) for row in recs.dicts()]


def write_pairs(path: str | os.PathLike, pairs: Iterable[JudgePair]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps(x.to_dict(), ensure_ascii=False) + "\n" for x in pairs), encoding="utf-8")
    return p


ScoreFn = Callable[[str, str, str], "tuple[float | None, str, float]"]  # (query, answer, criterion) → (score, raw, s)


def score_pair(judge: str, score: ScoreFn, pair: JudgePair) -> dict:
    """One row: both answers' scores (None when the judge failed), raw replies and latencies."""
    row = {"judge": judge, "id": pair.id, "set": pair.set, "criterion": pair.criterion}
    for side in ("better", "worse"):
        try:
            value, raw, secs = score(pair.query, getattr(pair, side), pair.criterion)
        except SdaError as exc:
            value, raw, secs = None, f"error: {exc}", 0.0
        row[side] = None if value is None else float(value)
        row[f"{side}_raw"] = raw[:200]
        row[f"{side}_s"] = round(float(secs), 4)
    return row


def summarize(rows: Sequence[dict]) -> dict:
    """Accuracy (better strictly higher), inverted, ties, failures, Spearman ρ and seconds per score."""
    ok = [r for r in rows if r["better"] is not None and r["worse"] is not None]
    n = len(ok)
    right = sum(r["better"] > r["worse"] for r in ok)
    inverted = sum(r["better"] < r["worse"] for r in ok)
    out = {"n_pairs": len(rows), "n_scored": n, "failed": len(rows) - n, "right": right, "inverted": inverted,
           "ties": n - right - inverted}
    if n:
        acc = metrics.rate([r["better"] > r["worse"] for r in ok])
        out.update(accuracy=round(acc["rate"], 4), accuracy_ci95=acc["ci95"],
                   accuracy_ties_half=round((right + 0.5 * (n - right - inverted)) / n, 4))
        scores = np.array([r["better"] for r in ok] + [r["worse"] for r in ok])
        labels = np.array([1] * n + [0] * n)
        rho = stats.spearmanr(scores, labels).statistic if scores.std() > 0 else float("nan")
        out["spearman_rho"] = None if not np.isfinite(rho) else round(float(rho), 4)
    secs = [r[k] for r in rows for k in ("better_s", "worse_s") if r.get(k)]
    out["seconds_per_score"] = round(float(np.median(secs)), 4) if secs else None
    out["seconds_per_score_mean"] = round(float(np.mean(secs)), 4) if secs else None
    return out


def summarize_all(rows: Sequence[dict]) -> dict:
    """{judge: {pair set: summary}} over the rows of a run."""
    by: dict[str, dict[str, list]] = {}
    for r in rows:
        by.setdefault(r["judge"], {}).setdefault(r["set"], []).append(r)
    return {j: {s: summarize(rs) for s, rs in sets.items()} for j, sets in by.items()}


def run(judges: dict[str, ScoreFn], pairs: Sequence[JudgePair], writer=None, done: set | None = None,
        progress=None) -> list[dict]:
    """Score every pair with every judge; rows already ``done`` ((judge, id) keys) are skipped."""
    rows = []
    done = done or set()
    for name, fn in judges.items():
        for pair in pairs:
            if (name, pair.id) in done:
                continue
            row = score_pair(name, fn, pair)
            rows.append(row)
            if writer is not None:
                writer.write(row)
            if progress is not None:
                progress.update(1)
    return rows


def markdown(summary: dict, info: dict) -> str:
    head = ["judge", "pairs", "n", "accuracy (95% CI)", "right / inverted / ties", "failed", "Spearman ρ", "s/score"]
    rows = []
    for judge, sets in summary.items():
        for s, x in sets.items():
            acc = "—" if "accuracy" not in x else f"{pct(x['accuracy'])} ({pct(x['accuracy_ci95'][0])}–{pct(x['accuracy_ci95'][1])})"
            rho = "—" if x.get("spearman_rho") is None else f"{x['spearman_rho']:+.3f}"
            sec = "—" if x["seconds_per_score"] is None else f"{x['seconds_per_score']:.2f}"
            rows.append([judge, s, x["n_pairs"], acc, f"{x['right']} / {x['inverted']} / {x['ties']}", x["failed"],
                         rho, sec])
    lines = [f"# Judge accuracy on labelled pairs ({info.get('model', '?')})", "",
             "A pair is right when the better answer gets the strictly higher score; ties count as wrong "
             "(\"ties half\" in the JSON counts them as half).  Spearman ρ: scores vs labels over all answers.",
             "", md_table(head, rows), "", f"Run: `{info.get('command', '')}` at {time.strftime('%Y-%m-%d')}"]
    return "\n".join(lines)
