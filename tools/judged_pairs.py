"""Turn blind pairwise judgements of the project's own answers into `eval judge` pairs.

    python tools/judged_pairs.py JUDGE_DIR OUT.jsonl [--margin 10]

JUDGE_DIR holds what a blind judging round used: ``batch_*.json`` (the pairs shown: id, prompt, rubric, A, B),
``scores_*.json`` (the judge's 1–100 scores: id, score_a, score_b) and ``key.json`` (per id: the preset and which
system wrote A and B, never shown to the judge).  A pair whose scores differ by at least ``--margin`` becomes one
``JudgePair`` (the higher-scored answer is "better"; the preset's rubric is the criterion); closer pairs are
left out as unclear labels.  The source field names both systems, so a report can be split by them.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sda_local.evaluation.judge_eval import JudgePair, write_pairs  # noqa: E402


def judged_pairs(folder: str, margin: float) -> list[JudgePair]:
    key = json.load(open(os.path.join(folder, "key.json")))
    shown = {p["id"]: p for f in sorted(glob.glob(os.path.join(folder, "batch_*.json"))) for p in json.load(open(f))}
    scores = {s["id"]: s for f in sorted(glob.glob(os.path.join(folder, "scores_*.json"))) for s in json.load(open(f))}
    out = []
    for pid in sorted(scores):
        s, p, k = scores[pid], shown[pid], key[pid]
        d = float(s["score_a"]) - float(s["score_b"])
        if abs(d) < margin:
            continue
        good, bad = ("A", "B") if d > 0 else ("B", "A")
        who = {"A": k["a"], "B": k["b"]}  # a, b: the systems shown as A and B
        out.append(JudgePair(id=f"own:{pid}", set=f"own-{k['preset']}", criterion=k["preset"], query=p["prompt"],
                             better=p[good], worse=p[bad], source=f"{who[good]} > {who[bad]} ({k['row']})"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--margin", type=float, default=10.0, help="smallest score difference kept (default 10)")
    a = ap.parse_args()
    pairs = judged_pairs(a.folder, a.margin)
    write_pairs(a.out, pairs)
    print(json.dumps({"pairs": len(pairs), "out": a.out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
