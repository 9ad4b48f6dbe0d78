"""Blind pairwise judging of `sda-local eval samples` answers, the paper's protocol: for each prompt and each
comparison (system X vs system Y) the two answers go to a judge in a random order as A and B; the judge scores
both 1-100 against the preset's rubric; |Δ| ≤ 3 is a tie; a comparison's score is (W − L)/N.

    python tools/blind_pairs.py make samples.jsonl OUTDIR --vs "sda contrast=ignore:instruction" ... [--batches 4]
        writes OUTDIR/batch_K.json (what a judge sees: ids, prompt, rubric, A, B — no system names) and
        OUTDIR/key.json (which system is A and B; never shown to a judge)
    python tools/blind_pairs.py make-ifeval items.jsonl ifeval.dev.jsonl OUTDIR --vs "sda:inline" [--batches 4]
        the same for `sda-local eval ifeval` answers: each pair shows the request and its constraints, and the
        judge scores two criteria (IFEVAL_CRITERIA): the answer to the request itself, constraints ignored
        ("request"), and the answer as a whole, constraints included ("overall")
    python tools/blind_pairs.py make-ifeval ... --skip-judged EARLIER_OUTDIR
        only the prompts EARLIER_OUTDIR did not judge (a judging continued in a new folder)
    python tools/blind_pairs.py score OUTDIR [OUTDIR2 ...]
        reads OUTDIR/scores_K.json ([{"id", "score_a", "score_b"}], or per criterion "request_a", "request_b",
        "overall_a", "overall_b") and prints the table as JSON, per criterion
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sda_local.presets import get_preset  # noqa: E402

TIE = 3


def write_batches(out: Path, pairs: list[dict], key: dict, batches: int, rng: random.Random) -> None:
    """The pairs shuffled into ``batches`` files (what the judges see) and the key beside them."""
    rng.shuffle(pairs)
    out.mkdir(parents=True, exist_ok=True)
    for k in range(batches):
        (out / f"batch_{k}.json").write_text(json.dumps(pairs[k::batches], indent=1, ensure_ascii=False))
    (out / "key.json").write_text(json.dumps(key, indent=1))
    print(f"{len(pairs)} pairs in {batches} batches under {out}")


def make(samples: Path, out: Path, comparisons: list[tuple[str, str]], batches: int, seed: int) -> None:
    rows = [json.loads(x) for x in samples.read_text("utf-8").splitlines() if x.strip()]
    rng = random.Random(seed)
    pairs, key = [], {}
    for r in rows:
        rubric = get_preset(r["preset"]).rubric
        for x, y in comparisons:
            if x not in r["answers"] or y not in r["answers"]:
                continue
            pid = f"p{len(pairs):04d}"
            a, b = (x, y) if rng.random() < 0.5 else (y, x)
            key[pid] = {"row": r["id"], "preset": r["preset"], "a": a, "b": b, "x": x, "y": y}
            pairs.append({"id": pid, "prompt": r["prompt"], "rubric": rubric, "A": r["answers"][a],
                          "B": r["answers"][b]})
    write_batches(out, pairs, key, batches, rng)


IFEVAL_CRITERIA = {
    "request": "How good is the answer to the request itself, ignoring the constraints: correct, useful, complete "
               "for its length, clear and natural (keyword stuffing, repetition or padding count against it). 1-100.",
    "overall": "How good is the answer as a whole, for a user who asked for the request with these constraints: "
               "following the constraints matters, and so does the quality of the answer itself. 1-100.",
}


def make_ifeval(items: Path, data: Path, out: Path, comparisons: list[tuple[str, str]], batches: int,
                seed: int, skip: Path | None = None) -> None:
    judged = {k["row"] for k in json.loads((skip / "key.json").read_text()).values()} if skip else set()
    rows = {}
    for x in items.read_text("utf-8").splitlines():
        if x.strip():
            r = json.loads(x)
            rows.setdefault(r["key"], {})[r["system"]] = r["text"]
    prompts = {r["key"]: r for r in (json.loads(x) for x in data.read_text("utf-8").splitlines() if x.strip())}
    rng = random.Random(seed)
    pairs, key = [], {}
    for k in sorted(set(rows) - judged):
        for x, y in comparisons:
            if x not in rows[k] or y not in rows[k]:
                continue
            pid = f"p{len(pairs):04d}"
            a, b = (x, y) if rng.random() < 0.5 else (y, x)
            key[pid] = {"row": k, "preset": "ifeval", "a": a, "b": b, "x": x, "y": y}
            pairs.append({"id": pid, "request": prompts[k]["request"], "constraints": prompts[k]["constraints"],
                          "criteria": IFEVAL_CRITERIA, "A": rows[k][a], "B": rows[k][b]})
    write_batches(out, pairs, key, batches, rng)


def _outcome(s: dict, k: dict, crit: str) -> int:
    d = float(s[f"{crit}_a"]) - float(s[f"{crit}_b"])
    x_minus_y = d if k["a"] == k["x"] else -d
    return 0 if abs(x_minus_y) <= TIE else (1 if x_minus_y > 0 else -1)


def score(*outs: Path) -> dict:
    """The table over every judged pair of ``outs`` (each folder with its own key: one judging continued in
    another folder counts as one)."""
    results: dict[str, dict] = {}
    for out in outs:
        key = json.loads((out / "key.json").read_text())
        for f in sorted(out.glob("scores_*.json")):
            for s in json.loads(f.read_text()):
                k = key[s["id"]]
                for crit in [c for c in ("score", *IFEVAL_CRITERIA) if f"{c}_a" in s]:
                    name = f"{k['x']} vs {k['y']}" + ("" if crit == "score" else f" [{crit}]")
                    for group in (k["preset"], "all"):
                        results.setdefault(name, {}).setdefault(group, []).append(_outcome(s, k, crit))
    table = {}
    for comp, groups in results.items():
        table[comp] = {}
        for g, o in sorted(groups.items()):
            n = len(o)
            m = sum(o) / n
            se = math.sqrt(sum((v - m) ** 2 for v in o) / (n - 1) / n) if n > 1 else None
            table[comp][g] = {"n": n, "wins": o.count(1), "ties": o.count(0), "losses": o.count(-1),
                              "score": round(m, 3), "se": None if se is None else round(se, 3)}
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("samples", type=Path)
    m.add_argument("out", type=Path)
    m.add_argument("--vs", nargs="+", required=True, help='comparisons "X:Y" (system names of samples.jsonl)')
    m.add_argument("--batches", type=int, default=4)
    m.add_argument("--seed", type=int, default=0)
    mi = sub.add_parser("make-ifeval")
    mi.add_argument("items", type=Path)
    mi.add_argument("data", type=Path)
    mi.add_argument("out", type=Path)
    mi.add_argument("--vs", nargs="+", required=True, help='comparisons "X:Y" (system names of items.jsonl)')
    mi.add_argument("--batches", type=int, default=4)
    mi.add_argument("--seed", type=int, default=0)
    mi.add_argument("--skip-judged", type=Path, default=None, metavar="DIR",
                    help="leave out the prompts already judged in DIR (its key.json): to continue a judging")
    s = sub.add_parser("score")
    s.add_argument("out", type=Path, nargs="+", help="one judging's folder, or several that together make one")
    a = ap.parse_args()
    if a.cmd == "make":
        make(a.samples, a.out, [tuple(v.split(":", 1)) for v in a.vs], a.batches, a.seed)
    elif a.cmd == "make-ifeval":
        make_ifeval(a.items, a.data, a.out, [tuple(v.split(":", 1)) for v in a.vs], a.batches, a.seed,
                    a.skip_judged)
    else:
        print(json.dumps(score(*a.out), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
