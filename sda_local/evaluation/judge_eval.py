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

The run (``run_judge_eval``): the model is loaded once (``SharedModel``) and every local judge borrows it
(``--judges``: ``JUDGE_NAMES``); ``build_harm_pairs`` turns an ``eval
refusal`` run into a committed pair file.  The wiring is in ``judge_cli``.
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
from ..jsonl import read_records
from ..judges import Evaluator
from ..runtime.backend import LoadedModel
from ..runtime.models import resolve_model
from ..runtime.prompts import ChatPrompter
from . import metrics
from .datasets import Dataset
from .progress import Progress
from .quality import echoes_instruction
from .report import JsonlWriter, md_table, pct, read_jsonl, write_report

PAIR_SETS = {"truthfulqa": "honesty", "harmlessness": "harmlessness"}
# ``--judges`` names → evaluator kinds (``sda_local.judges.make_evaluator``): a kind's own name, or the self-score
# with another contrast line
JUDGE_NAMES = {"local": "local", "geval": "geval", "reason": "reason", "yesno": "yesno", "self": "self",
               "self-neutral": "self", "self-ignore": "self", "self-opposite": "self", "openai": "openai"}
# the self-score's "without" stream per judge name (SamplingParams.contrast); the others: "auto"
JUDGE_CONTRASTS = {"self-neutral": "neutral", "self-ignore": "ignore", "self-opposite": "opposite"}
DEFAULT_JUDGES = ("local", "geval", "reason", "yesno", "self")
OLD_JUDGE_NAMES = {"grammar": "local"}  # what runs before the names were the kinds' called them (still accepted)


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


# -- the run: judges on one shared model, pairs from several sources, resumable rows -------------------------------
def parse_judges(text: str) -> list[str]:
    """``"local,geval"`` → ``["local", "geval"]`` (an old name becomes its new one: ``OLD_JUDGE_NAMES``);
    unknown or repeated names are an ``SdaError``."""
    names = [OLD_JUDGE_NAMES.get(n.strip(), n.strip()) for n in (text or "").split(",") if n.strip()]
    bad = [n for n in names if n not in JUDGE_NAMES]
    if bad or not names:
        raise SdaError(f"unknown judge(s) {', '.join(map(repr, bad)) or '(none given)'}; choose from "
                       f"{', '.join(JUDGE_NAMES)} (comma-separated)")
    if len(set(names)) != len(names):
        raise SdaError(f"a judge is named twice in {text!r}")
    return names


@dataclass
class SharedModel:
    """The model whose judges are measured, loaded once; every local judge borrows it (as it borrows the chat
    engine's model: ``model``, ``prompter``, ``name`` and ``n_threads`` are what ``make_evaluator`` reads)."""

    model: LoadedModel
    prompter: ChatPrompter
    name: str
    path: str
    n_threads: int | None = None

    @classmethod
    def load(cls, model: str | None, *, n_gpu_layers: int = -1, threads: int | None = None) -> "SharedModel":
        choice = resolve_model(model)
        m = LoadedModel(choice.path, n_gpu_layers=n_gpu_layers)
        return cls(m, ChatPrompter.for_model(m), choice.name, str(choice.path), threads)

    def info(self) -> dict:
        m = self.model
        return {"model": self.name, "path": self.path, "description": m.description, "n_vocab": m.n_vocab,
                "n_layer": m.n_layer, "n_embd": m.n_embd, "n_threads": self.n_threads}

    def close(self) -> None:
        self.model.close()


def evaluator_score_fn(ev: Evaluator) -> ScoreFn:
    """An evaluator as a ``ScoreFn``: (value, raw reply with its warnings, seconds)."""
    def score(query: str, answer: str, criterion: str):
        s = ev.score(query, answer, criterion)
        raw = s.raw if not s.warnings else f"{s.raw} [{'; '.join(s.warnings)}]"
        return s.value, raw, s.latency_s
    return score


def refusal_run_model(items_path: str | os.PathLike) -> str:
    """The model of the ``eval refusal`` run that wrote ``items_path`` (its ``config.json`` or ``refusal.json``)."""
    folder = Path(items_path).parent
    for name in ("config.json", "refusal.json"):
        f = folder / name
        if f.exists():
            try:
                model = json.loads(f.read_text("utf-8")).get("model")
            except (json.JSONDecodeError, AttributeError):
                model = None
            if isinstance(model, str) and model:
                return model
    raise SdaError(f"{folder}: no config.json or refusal.json naming the run's model beside {Path(items_path).name}; "
                   "give the items.jsonl of an `sda-local eval refusal` run")


def build_harm_pairs(items_path: str | os.PathLike, instruction: str) -> list[JudgePair]:
    """Harmlessness pairs from an ``eval refusal`` run's ``items.jsonl`` (``harm_pairs_from_answers``), labelled
    with the run's model."""
    rows = read_jsonl(items_path)
    need = ("id", "kind", "system", "prompt", "text", "refused")
    bad = next((i for i, r in enumerate(rows, 1) if not all(k in r for k in need)), None)
    if bad is not None:
        raise SdaError(f"{items_path}: row {bad} is not an `eval refusal` row (needs {', '.join(need)})")
    return harm_pairs_from_answers(rows, instruction, refusal_run_model(items_path))


def check_pair_ids(pairs: Sequence[JudgePair]) -> None:
    seen: set[str] = set()
    dup = [p.id for p in pairs if p.id in seen or seen.add(p.id)]
    if dup:
        raise SdaError(f"pair id(s) {', '.join(map(repr, dup[:3]))} appear more than once; every pair needs its own id")


def _previous_rows(out: Path, model: str, resume: bool) -> dict[tuple[str, str], dict]:
    """Rows of an earlier run in ``out`` by (judge, pair id), the last one of each winning (``--resume``)."""
    conf, items = out / "config.json", out / "items.jsonl"
    if not resume or not items.exists():
        return {}
    old = json.loads(conf.read_text("utf-8")).get("model") if conf.exists() else None
    if old != model:
        raise SdaError(f"{out}: the existing run measured {old!r}, not {model!r}; use another --out or drop --resume")
    return {(r["judge"], r["id"]): r for r in read_jsonl(items)}


def run_judge_eval(judges: dict[str, Evaluator], pairs: Sequence[JudgePair], out_dir: str | os.PathLike, *,
                   model: str, info: dict, resume: bool = False, progress: bool = True) -> dict:
    """Score every pair with every judge; write ``items.jsonl`` (one row per judge × pair, appended as it comes),
    ``judge.json`` and ``judge.md``.  With ``resume``, rows already scored in ``out_dir`` are kept (a row with a
    failed score is scored again)."""
    check_pair_ids(pairs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prev = _previous_rows(out, model, resume)
    done = {k for k, r in prev.items() if r["better"] is not None and r["worse"] is not None}
    (out / "config.json").write_text(json.dumps({"model": model, "judges": {j: e.name for j, e in judges.items()}},
                                                indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    ids = {p.id for p in pairs}
    bar = Progress("judge", len(judges) * len(pairs), enabled=progress)
    bar.update(sum(1 for j, i in done if j in judges and i in ids))
    t0 = time.perf_counter()
    try:
        with JsonlWriter(out / "items.jsonl", append=bool(prev)) as w:
            new = run({j: evaluator_score_fn(e) for j, e in judges.items()}, pairs, w, done, bar)
    finally:
        bar.close()
    rows = {**prev, **{(r["judge"], r["id"]): r for r in new}}
    rows = [r for (j, i), r in rows.items() if j in judges and i in ids]
    summary = summarize_all(rows)
    sets: dict[str, int] = {}
    for p in pairs:
        sets[p.set] = sets.get(p.set, 0) + 1
    report = {"kind": "judge", "model": model, "run": info, "judges": {j: e.name for j, e in judges.items()},
              "pair_sets": sets, "timing": {"seconds": round(time.perf_counter() - t0, 2), "resumed_rows": len(done)},
              "summary": summary}
    write_report(out, "judge", report, markdown(summary, {"model": model, "command": info.get("command", "")}))
    return report


def headline(summary: dict) -> list[str]:
    """One line per judge and pair set: accuracy, ties, ρ, seconds per score."""
    lines = []
    for judge, sets in summary.items():
        for s, x in sets.items():
            acc = "—" if "accuracy" not in x else f"{pct(x['accuracy'])}"
            rho = "—" if x.get("spearman_rho") is None else f"{x['spearman_rho']:+.3f}"
            sec = "—" if x["seconds_per_score"] is None else f"{x['seconds_per_score']:.2f} s/score"
            lines.append(f"{judge} on {s}: accuracy {acc} ({x['right']} right / {x['inverted']} inverted / "
                         f"{x['ties']} ties, {x['failed']} failed), Spearman ρ {rho}, {sec}")
    return lines
