"""``sda-local palrs sweep``: a control vector's α sweep on TruthfulQA MC1/MC2, alone and combined with SDA.

Scoring is ``sda_local.evaluation.truthfulqa`` (teacher-forced multiple choice, no judge); this module only
steers the teacher-forcing context with the vector and collects the runs.  For each α of the grid, the vector
× α is set on the context that holds both streams ("both"), so in that run

- ``base T=1``        is **residual steering alone** (the model's own distribution, standard MC scoring);
- ``instruction T=1`` is the alignment instruction in the prompt plus residual steering;
- ``sda λ=…``         is **SDA on top of residual steering** (both streams steered; SDA contrasts the
                      instruction only).

α = 0 is the unsteered baseline (``base T=1`` = the plain model, ``sda λ=…`` = SDA alone).  With
``--aligned-alphas``, extra runs steer the "with" stream only (two contexts: the "without" stream stays plain),
so SDA's contrast also carries the vector: the engine's ``cv_streams="aligned"`` combination.

With a plausibility grid (``plausibilities``) every run also scores SDA under each α.

By default the questions are TruthfulQA's held-out split (``palrs.pairs.split_of``): a vector extracted from
``palrs pairs --split train`` is never scored on the questions it was built from.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core import SamplingParams
from ..errors import SdaError
from ..evaluation import metrics
from ..evaluation.datasets import Dataset, load_jsonl
from ..evaluation.report import md_table, read_jsonl
from ..evaluation.truthfulqa import TruthfulQAConfig, run_truthfulqa
from ..runtime.engine import Engine
from ..runtime.teacher_forcing import ForcedAnswer, TeacherForcer
from .cvec import load_control_vectors, read_control_vector
from .pairs import find_dataset, split_of

DEFAULT_ALPHAS = "0,0.05,0.1,0.2,0.4,0.8"


def parse_floats(text: str, what: str) -> list[float]:
    """``"0,0.1, 0.2"`` → [0.0, 0.1, 0.2]; an ``SdaError`` naming ``what`` otherwise."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SdaError(f"{what}: expected comma-separated numbers, got {text!r}") from None


@dataclass
class SweepConfig:
    """One α sweep: ``vector`` × each α (both streams steered), and × each ``aligned_alphas`` value (the
    "with" stream only), scored on TruthfulQA with SDA at ``lams`` under ``sampling`` (k, T0, temperature mode)
    and each plausibility α of ``plausibilities``."""

    vector: str
    out: str | Path
    alphas: Sequence[float]
    aligned_alphas: Sequence[float] = ()
    cv_layers: tuple[int, int] | None = None
    dataset: str = "truthfulqa"
    split: str = "heldout"
    limit: int | None = None
    lams: Sequence[float] = (0.5,)
    preset: str | None = "honesty"
    instruction: str = ""
    plausibilities: Sequence[float] | None = None   # the α grid; None: sampling's α alone
    sampling: SamplingParams = field(default_factory=SamplingParams)
    command: str = ""


class SplitForcer:
    """Teacher forcing where the "with" stream comes from a steered forcer and "without" from a plain one."""

    def __init__(self, steered, plain):
        self.steered, self.plain = steered, plain

    def force(self, messages, instruction, answers, *, placement="user", contrast="auto", opposite=""):
        a = self.steered.force(messages, instruction, answers, placement=placement, contrast=contrast,
                               opposite=opposite)
        b = self.plain.force(messages, instruction, answers, placement=placement, contrast=contrast,
                             opposite=opposite)
        return [ForcedAnswer(x.text, x.targets, x.logits_with, y.logits_without) for x, y in zip(a, b)]

    def close(self):
        self.steered.close()
        self.plain.close()


def _items(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_jsonl(path)}


def _paired(base: dict[str, dict], run: dict[str, dict], setting_base: str, setting_run: str) -> dict:
    ids = [i for i in base if i in run]
    b1 = [base[i]["mc1"][setting_base] for i in ids]
    r1 = [run[i]["mc1"][setting_run] for i in ids]
    d2 = np.array([run[i]["mc2"][setting_run] - base[i]["mc2"][setting_base] for i in ids])
    return {"mc1_flips": metrics.paired_flips(b1, r1), "mc2_delta": round(float(d2.mean()), 4),
            "mc2_delta_se": round(metrics.mean_se(list(d2))[1], 4)}


def _questions(cfg: SweepConfig) -> Dataset:
    ds = load_jsonl(find_dataset(cfg.dataset), format="truthfulqa")
    items = [it for it in ds.items if cfg.split == "all" or split_of(it.prompt) == cfg.split]
    if cfg.limit:
        items = items[: cfg.limit]
    if not items:
        raise SdaError(f"no questions in split {cfg.split!r}")
    return Dataset(path=ds.path, name=ds.name, format=ds.format, items=items, problems=ds.problems,
                   n_lines_read=ds.n_lines_read)


def _one_run(eng: Engine, ds: Dataset, tqa: TruthfulQAConfig, unit: np.ndarray, layers: tuple[int, int],
             streams: str, alpha: float, out: Path) -> dict:
    """TruthfulQA with the vector × ``alpha`` on both streams, or on the "with" stream only."""
    name = f"{streams}-alpha{alpha:g}"
    print(f"── {name} ──", file=sys.stderr, flush=True)
    tf = TeacherForcer.for_engine(eng)
    if alpha != 0:
        tf.ctx.set_control_vector(unit * np.float32(alpha), *layers)
    forcer = SplitForcer(tf, TeacherForcer.for_engine(eng)) if streams == "aligned" else tf
    try:
        rep = run_truthfulqa(eng, ds, tqa, out / name, progress=True, forcer=forcer)
    finally:
        forcer.close()
    rows = {r["name"]: r for r in rep["summary"]["settings"]}
    return {"name": name, "streams": streams, "alpha": alpha, "dir": name, "seconds": rep["timing"]["seconds"],
            "settings": {k: {"mc1": v["mc1"], "mc1_se": v["mc1_se"], "mc2": v["mc2"], "mc2_se": v["mc2_se"]}
                         for k, v in rows.items()}}


def run_sweep(eng: Engine, cfg: SweepConfig) -> dict:
    """Every run of the sweep on ``eng``; writes each run's TruthfulQA report, sweep.json and sweep.md."""
    cv = read_control_vector(cfg.vector)
    ds = _questions(cfg)
    m = eng.model
    unit = load_control_vectors([(cv.path, 1.0)], m.n_layer, m.n_embd)
    layers = cfg.cv_layers or (1, m.n_layer)
    tqa = TruthfulQAConfig(instruction=cfg.instruction, preset=cfg.preset, lams=tuple(cfg.lams),
                           modes=(cfg.sampling.temperature_mode,), plausibilities=cfg.plausibilities,
                           sampling=cfg.sampling)
    tqa.settings()  # check the grid before the first run
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"sweep: {cv.path.name} (layers {cv.layers}) on {len(ds.items)} {cfg.split} questions, α {cfg.alphas}"
          + (f", aligned-only α {cfg.aligned_alphas}" if cfg.aligned_alphas else ""), file=sys.stderr, flush=True)
    t_start = time.perf_counter()
    plan = [("both", a) for a in cfg.alphas] + [("aligned", a) for a in cfg.aligned_alphas]
    runs = [_one_run(eng, ds, tqa, unit, layers, streams, alpha, out) for streams, alpha in plan]
    # paired changes against the unsteered run (α = 0, same questions)
    base_run = next((r for r in runs if r["alpha"] == 0 and r["streams"] == "both"), None)
    if base_run is not None:
        base_items = _items(out / base_run["dir"] / "items.jsonl")
        for r in runs:
            if r is not base_run:
                its = _items(out / r["dir"] / "items.jsonl")
                r["vs_unsteered"] = {s: _paired(base_items, its, s, s) for s in r["settings"]}
    summary = {"kind": "palrs-sweep", "command": cfg.command, "vector": str(cv.path), "vector_layers": cv.layers,
               "vector_metadata": {k: v for k, v in cv.metadata.items() if k.startswith("palrs.")},
               "model": eng.name, "split": cfg.split, "n_questions": len(ds.items), "lams": list(cfg.lams),
               "mode": cfg.sampling.temperature_mode, "plausibilities": tqa.alphas(),
               "sampling": cfg.sampling.to_dict(), "preset": cfg.preset or "custom", "cv_layers": list(layers),
               "seconds": round(time.perf_counter() - t_start, 1), "runs": runs}
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "sweep.md").write_text(render_markdown(summary), encoding="utf-8")
    return summary


def _cell(r: dict, setting: str) -> str:
    s = r["settings"].get(setting)
    if s is None:
        return "—"
    txt = f"{s['mc1']:.3f} / {s['mc2']:.3f}"
    vs = r.get("vs_unsteered", {}).get(setting)
    if vs:
        txt += f" (+{vs['mc1_flips']['up']}/−{vs['mc1_flips']['down']}, ΔMC2 {vs['mc2_delta']:+.3f}±{vs['mc2_delta_se']:.3f})"
    return txt


def render_markdown(s: dict) -> str:
    sda_names = [n for n in s["runs"][0]["settings"] if n.startswith("sda") and "λ=0.00" not in n] if s["runs"] else []
    cols = ["base T=1", "instruction T=1", "base T0", "instruction T0"] + sda_names
    md = [f"# PaLRS α sweep on TruthfulQA MC1/MC2 — {s['model']}", "",
          f"- command: `{s['command']}`",
          f"- vector: `{s['vector']}` (direction at layer(s) {s['vector_layers']}; "
          f"{s['vector_metadata'].get('palrs.n_pairs', '?')} pairs, position "
          f"{s['vector_metadata'].get('palrs.position', '?')}), applied to layers {s['cv_layers'][0]}-{s['cv_layers'][1]}",
          f"- {s['n_questions']} questions of the {s['split']} split; SDA preset {s['preset']}, "
          f"λ {', '.join(map(str, s['lams']))}, mode {s['mode']}; {s['seconds']:.0f} s in all", "",
          "Cells: MC1 / MC2; in brackets, against the unsteered run on the same questions: MC1 flips (+gained/−lost) "
          "and the mean MC2 change ± one standard error.", "",
          "- `both` runs: the vector steers both streams, so `base T=1` is residual steering alone and `sda` is SDA "
          "on top of it.",
          "- `aligned` runs: only the 'with' (instruction) stream is steered; `sda` contrasts it with the plain "
          "'without' stream.", ""]
    md.append(md_table(["run", "α"] + cols,
                       [[r["streams"], f"{r['alpha']:g}"] + [_cell(r, c) for c in cols] for r in s["runs"]]))
    md.append("")
    return "\n".join(md)
