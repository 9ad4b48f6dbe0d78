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

By default the questions are TruthfulQA's held-out split (``palrs.pairs.split_of``): a vector extracted from
``palrs pairs --split train`` is never scored on the questions it was built from.
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import SdaError

DEFAULT_ALPHAS = "0,0.05,0.1,0.2,0.4,0.8"


def add_sweep_args(p) -> None:
    p.add_argument("--vector", required=True, help="control-vector GGUF (from `sda-local palrs extract`)")
    p.add_argument("--alphas", default=DEFAULT_ALPHAS, help=f"α grid, comma-separated (default {DEFAULT_ALPHAS})")
    p.add_argument("--aligned-alphas", default="", help="α values also run with only the 'with' stream steered")
    p.add_argument("--cv-layers", default=None, metavar="A-B", help="apply only to layers A..B")
    p.add_argument("--dataset", default="truthfulqa", help="TruthfulQA file or name (default truthfulqa)")
    p.add_argument("--split", choices=("heldout", "train", "all"), default="heldout",
                   help="questions scored (default heldout: not those `palrs pairs` extracts from)")
    p.add_argument("--limit", type=int, default=None, help="score the first N questions of the split")
    p.add_argument("--lam", type=float, action="append", default=None, help="SDA λ (repeatable; default 0.5)")
    p.add_argument("--mode", default="ln2", help="SDA temperature mode (default ln2)")
    p.add_argument("--preset", default="honesty", help="instruction preset for the 'with' stream (default honesty)")
    p.add_argument("--model", "-m", default=None, help="registry id, file or path (default smollm2-135m)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--n-gpu-layers", type=int, default=-1)
    p.add_argument("--out", required=True, help="output folder (one subfolder per run, sweep.json, sweep.md)")


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SdaError(f"{what}: expected comma-separated numbers, got {text!r}") from None


class SplitForcer:
    """Teacher forcing where the "with" stream comes from a steered forcer and "without" from a plain one."""

    def __init__(self, steered, plain):
        self.steered, self.plain = steered, plain

    def force(self, messages, instruction, answers, *, placement="user"):
        from ..evaluation.teacher_forcing import ForcedAnswer

        a = self.steered.force(messages, instruction, answers, placement=placement)
        b = self.plain.force(messages, instruction, answers, placement=placement)
        return [ForcedAnswer(x.text, x.targets, x.logits_with, y.logits_without) for x, y in zip(a, b)]

    def close(self):
        self.steered.close()
        self.plain.close()


def _items(path: Path) -> dict[str, dict]:
    from ..evaluation.report import read_jsonl

    return {r["id"]: r for r in read_jsonl(path)}


def _paired(base: dict[str, dict], run: dict[str, dict], setting_base: str, setting_run: str) -> dict:
    from ..evaluation import metrics

    ids = [i for i in base if i in run]
    b1 = [base[i]["mc1"][setting_base] for i in ids]
    r1 = [run[i]["mc1"][setting_run] for i in ids]
    d2 = np.array([run[i]["mc2"][setting_run] - base[i]["mc2"][setting_base] for i in ids])
    return {"mc1_flips": metrics.paired_flips(b1, r1), "mc2_delta": round(float(d2.mean()), 4),
            "mc2_delta_se": round(metrics.mean_se(list(d2))[1], 4)}


def run_sweep(args) -> int:
    try:
        from ..evaluation.datasets import Dataset, load_jsonl
        from ..evaluation.teacher_forcing import TeacherForcer
        from ..evaluation.truthfulqa import TruthfulQAConfig, run_truthfulqa
    except ImportError as exc:
        raise SdaError(f"the TruthfulQA evaluator (sda_local.evaluation.truthfulqa) is not available: {exc}") \
            from None
    from ..engine import Engine
    from ..presets import get_preset
    from .cvec import load_control_vectors, parse_layer_range, read_control_vector
    from .pairs import find_dataset, split_of

    alphas = _floats(args.alphas, "--alphas")
    aligned = _floats(args.aligned_alphas, "--aligned-alphas")
    lams = args.lam or [0.5]
    layers = parse_layer_range(args.cv_layers)
    cv = read_control_vector(args.vector)
    ds = load_jsonl(find_dataset(args.dataset), format="truthfulqa")
    items = [it for it in ds.items if args.split == "all" or split_of(it.prompt) == args.split]
    if args.limit:
        items = items[: args.limit]
    if not items:
        raise SdaError(f"no questions in split {args.split!r}")
    ds = Dataset(path=ds.path, name=ds.name, format=ds.format, items=items, problems=ds.problems,
                 n_lines_read=ds.n_lines_read)
    eng = Engine(args.model, n_ctx=512, n_gpu_layers=args.n_gpu_layers, n_threads=args.threads)
    m = eng.model
    unit = load_control_vectors([(cv.path, 1.0)], m.n_layer, m.n_embd)
    lo, hi = layers or (1, m.n_layer)
    cfg = TruthfulQAConfig(instruction=get_preset(args.preset).instruction, preset=args.preset, lams=tuple(lams),
                           modes=(args.mode,))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "sda-local " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["palrs"] else \
        " ".join(shlex.quote(a) for a in sys.argv)
    print(f"sweep: {cv.path.name} (layers {cv.layers}) on {len(items)} {args.split} questions, α {alphas}"
          + (f", aligned-only α {aligned}" if aligned else ""), file=sys.stderr, flush=True)
    runs = []
    t_start = time.perf_counter()
    plan = [("both", a) for a in alphas] + [("aligned", a) for a in aligned]
    for streams, alpha in plan:
        name = f"{streams}-alpha{alpha:g}"
        print(f"── {name} ──", file=sys.stderr, flush=True)
        tf = TeacherForcer.for_engine(eng)
        if alpha != 0:
            tf.ctx.set_control_vector(unit * np.float32(alpha), lo, hi)
        forcer = tf
        if streams == "aligned":
            forcer = SplitForcer(tf, TeacherForcer.for_engine(eng))
        try:
            rep = run_truthfulqa(eng, ds, cfg, out / name, progress=True, forcer=forcer)
        finally:
            forcer.close()
        rows = {r["name"]: r for r in rep["summary"]["settings"]}
        runs.append({"name": name, "streams": streams, "alpha": alpha, "dir": name,
                     "seconds": rep["timing"]["seconds"],
                     "settings": {k: {"mc1": v["mc1"], "mc1_se": v["mc1_se"], "mc2": v["mc2"], "mc2_se": v["mc2_se"]}
                                  for k, v in rows.items()}})
    # paired changes against the unsteered run (α = 0, same questions)
    base_run = next((r for r in runs if r["alpha"] == 0 and r["streams"] == "both"), None)
    if base_run is not None:
        base_items = _items(out / base_run["dir"] / "items.jsonl")
        for r in runs:
            if r is base_run:
                continue
            its = _items(out / r["dir"] / "items.jsonl")
            r["vs_unsteered"] = {s: _paired(base_items, its, s, s) for s in r["settings"]}
    summary = {"kind": "palrs-sweep", "command": command, "vector": str(cv.path), "vector_layers": cv.layers,
               "vector_metadata": {k: v for k, v in cv.metadata.items() if k.startswith("palrs.")},
               "model": eng.name, "split": args.split, "n_questions": len(items), "lams": lams, "mode": args.mode,
               "preset": args.preset, "cv_layers": [lo, hi], "seconds": round(time.perf_counter() - t_start, 1),
               "runs": runs}
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "sweep.md").write_text(render_markdown(summary), encoding="utf-8")
    print(render_markdown(summary))
    eng.close()
    return 0


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
    from ..evaluation.report import md_table

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
