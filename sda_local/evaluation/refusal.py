"""``sda-local eval refusal``: judge-free harmlessness — refusal on harmful prompts, over-refusal on benign ones.

Each prompt is answered by every system on the same engine with the same seed:

- ``base``: plain sampling (T0, top-p), no instruction;
- ``instruction``: plain sampling with the alignment instruction in the prompt (instruction-only);
- ``sda λ=…``: SDA with that fixed λ, for each λ given (``--lams``).  In the full method λ comes from an
  evaluator's score of the base answer; fixed values keep this evaluation judge-free and show the dose
  response.

With a plausibility grid (``--plausibility 0 0.1``) every system also runs under each α > 0 (``base α=0.1``,
``sda λ=0.5 α=0.1``, …).  With a placement grid (``--placements user matched``) the instruction-only and SDA
systems run under each placement (``instruction matched``, ``sda λ=0.5 matched α=0.1``); ``base`` never sees the
instruction, so it is answered once per α, not per placement.  With one placement and one α the names are the
plain ones (``sda λ=0.5``), as in runs made before the grids existed.

Answers are classified by ``RefusalDetector`` (a phrase list, see ``refusal_detector.py``).  On harmful sets a
higher refusal rate is better; on benign sets refusals are over-refusals (lower is better).  Every answer also
gets the judge-free quality measures (``quality.answer_quality``: instruction echo, distinct-2, longest
repeat, degenerate) and its fluency (``fluency``: mean log-prob per token under the base stream; one
teacher-forced batch per prompt, skipped with ``fluency=False``).  Rows are appended to ``items.jsonl`` as each
prompt finishes, so ``--resume`` continues an interrupted run; rows of an older run that lack the quality
measures get them then (the log is rewritten atomically with the completed rows).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

from ..core import SamplingParams
from ..errors import SdaError
from ..jsonl import rewrite_jsonl
from ..judges import FixedEvaluator
from ..presets import Preset, builtin_presets, custom_preset
from ..runtime.engine import collect
from ..turn import TurnSettings, TurnTrace, answer, instruction_only
from . import metrics, quality
from .datasets import Dataset
from .fluency import FluencyScorer
from .grid import normalise_placements, with_placement
from .progress import Progress
from .refusal_detector import RefusalDetector, load_phrases
from .report import (
    JsonlWriter,
    decode_speed,
    md_table,
    pct,
    read_jsonl,
    run_info,
    write_report,
)

KINDS = ("harmful", "benign")


@dataclass(frozen=True)
class System:
    """One way of answering: plain sampling without (``base``) or with (``instruction``) the instruction, or
    ``sda`` at a fixed λ; each under one plausibility α (0 = off) and, but for ``base``, one placement."""

    name: str
    kind: str                     # "base" | "instruction" | "sda"
    lam: float | None = None      # sda only
    plausibility: float = 0.0
    placement: str | None = None  # where the instruction goes (None for base, which has none)
    contrast: str | None = None   # sda only: what the uninstructed stream gets (None: the sampling's)


@dataclass
class RefusalConfig:
    instruction: str
    preset: str | None = "harmlessness"
    lams: Sequence[float] = (0.5, 1.0)
    plausibilities: Sequence[float] | None = None   # the α grid; None: sampling's α alone
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_tokens=64, seed=0))
    placement: str = "user"
    phrases_file: str | None = None
    placements: Sequence[str] | None = None         # the placement grid; None: ``placement`` alone
    contrasts: Sequence[str] | None = None          # the contrast grid (sda systems); None: the sampling's

    def __post_init__(self):  # one placement is the single setting (names and config as before the grid)
        self.placement, self.placements = normalise_placements(self.placement, self.placements)

    def alphas(self) -> list[float]:
        return [float(a) for a in (self.plausibilities or (self.sampling.plausibility,))]

    def placement_grid(self) -> list[str]:
        return list(self.placements or (self.placement,))

    def systems(self) -> list[System]:
        """base, then instruction and SDA at each λ under each placement, for each α of the grid; the name
        carries the placement when there are several and `` α=…`` when α > 0."""
        out = []
        grid = self.placement_grid()
        for a in self.alphas():
            atag = f" α={a:g}" if a else ""
            out.append(System("base" + atag, "base", None, a))
            for p in grid:
                out.append(System(with_placement("instruction" + atag, p, grid), "instruction", None, a, p))
                out += [System(with_placement(f"sda λ={lam:g}{atag}" + (f" contrast={c}" if c else ""), p, grid),
                               "sda", float(lam), a, p, c)
                        for c in (self.contrasts or (None,)) for lam in self.lams]
        return out

    def to_dict(self) -> dict:
        d = {**asdict(self), "lams": [float(x) for x in self.lams], "plausibilities": self.alphas()}
        if self.placements is None:  # the single-placement config reads as before the grid (resume)
            del d["placements"]
        if self.contrasts is None:
            del d["contrasts"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RefusalConfig":
        return cls(**{**d, "sampling": SamplingParams.from_dict(d["sampling"])})


def _preset(cfg: RefusalConfig) -> Preset:
    """The named preset when the instruction is its own (its opposite line serves contrast "opposite"), else
    the instruction as a custom preset."""
    named = builtin_presets().get(cfg.preset or "")
    if named is not None and named.instruction == cfg.instruction.strip():
        return named
    return custom_preset(cfg.instruction, name=cfg.preset or "custom")


def _answer(engine, prompt: str, system: System, cfg: RefusalConfig, seed: int):
    msgs = [{"role": "user", "content": prompt}]
    p = replace(cfg.sampling, seed=seed, plausibility=system.plausibility).check()
    if system.contrast:
        p = replace(p, contrast=system.contrast)
    if system.kind == "base":
        return collect(engine.generate_plain(msgs, params=p))
    settings = TurnSettings(preset=_preset(cfg), sampling=p, placement=system.placement)
    if system.kind == "instruction":
        return collect(instruction_only(engine, msgs, settings))
    return TurnTrace.run(answer(engine, FixedEvaluator(lam=system.lam), msgs, settings)).aligned


def _with_quality(rows: Sequence[dict], instruction: str) -> list[dict]:
    """``rows``, each with its ``quality`` (computed from the text for rows of older runs that lack it)."""
    return [r if "quality" in r else {**r, "quality": quality.answer_quality(r["text"], instruction).to_dict()}
            for r in rows]


def summarise(rows: list[dict], systems: Sequence[str], datasets: Sequence[tuple[str, str]],
              instruction: str = "") -> dict:
    """Refusal rates per dataset and pooled per kind, with Wilson intervals and paired changes vs base.

    With ``instruction``, also the share of answers that recite it (``quality.echoes_instruction``).  Every
    system's entry has ``quality`` (``quality.summarize``: echo, degeneration, fluency), and ``quality`` at the
    top level pools each system's answers over all datasets.
    """
    rows = _with_quality(rows, instruction)

    def block(sel: list[dict]) -> dict:
        out = {}
        by_sys = {s: {r["id"]: r for r in sel if r["system"] == s} for s in systems}
        base = by_sys.get("base", {})
        for s in systems:
            rs = list(by_sys[s].values())
            if not rs:
                continue
            d = metrics.rate([r["refused"] for r in rs])
            d["mean_tokens"] = round(sum(r["n_tokens"] for r in rs) / len(rs), 1)
            d["empty_answers"] = sum(1 for r in rs if not r["text"].strip())
            if instruction:
                d["echo"] = metrics.rate([r["quality"]["echo"] for r in rs])
            d["quality"] = quality.summarize(rs)
            if s != "base" and base:
                ids = [i for i in by_sys[s] if i in base]
                d["vs_base"] = metrics.paired_flips([float(base[i]["refused"]) for i in ids],
                                                    [float(by_sys[s][i]["refused"]) for i in ids])
            out[s] = d
        return out

    per_dataset = {name: {"kind": kind, "systems": block([r for r in rows if r["dataset"] == name])}
                   for name, kind in datasets}
    pooled = {kind: block([r for r in rows if r["kind"] == kind]) for kind in KINDS
              if any(r["kind"] == kind for r in rows)}
    overall = {}
    for s in systems:
        rs = [r for r in rows if r["system"] == s]
        if rs:
            overall[s] = quality.summarize(rs)
    return {"per_dataset": per_dataset, "pooled": pooled, "quality": overall}


def _examples(rows: list[dict], systems: Sequence[str], n: int = 4) -> list[str]:
    """A few harmful prompts where the systems disagree, with the start of each answer."""
    by_id: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_id.setdefault(r["id"], {})[r["system"]] = r
    out = []
    for rid, d in by_id.items():
        if len(d) < len(systems) or next(iter(d.values()))["kind"] != "harmful":
            continue
        if len({d[s]["refused"] for s in systems}) < 2:
            continue
        first = next(iter(d.values()))
        out.append(f"**{rid}** — {first['prompt'][:160]}")
        for s in systems:
            mark = "REFUSED" if d[s]["refused"] else "answered"
            out.append(f"- {s} ({mark}): {d[s]['text'][:220].strip()!r}")
        out.append("")
        if len(out) >= n * (len(systems) + 2):
            break
    return out


def render_markdown(report: dict) -> str:
    cfg, s = report["config"], report["summary"]
    systems = [x.name for x in RefusalConfig.from_dict(cfg).systems()]
    sp = cfg["sampling"]
    alphas = cfg["plausibilities"]
    lines = [f"# Refusal and over-refusal (judge-free) — {report['model']}", "",
             f"- instruction ({cfg['preset'] or 'custom'}): “{cfg['instruction']}”",
             f"- sampling: T0 = {sp['t0']}, top-p = {sp['top_p']}, SDA temperature mode {sp['temperature_mode']}, "
             f"k = {sp['k']}, up to {sp['max_tokens']} tokens, seed {sp['seed']} + line number (the same for "
             "every system)",
             f"- SDA at fixed λ ∈ {{{', '.join(f'{x:g}' for x in cfg['lams'])}}} (no evaluator: judge-free)",
             f"- plausibility constraint α ∈ {{{', '.join(f'{x:g}' for x in alphas)}}} (every system; 0 = off)",
             f"- instruction placement: {', '.join(cfg.get('placements') or [cfg['placement']])} "
             "(instruction-only and SDA; base has no instruction)",
             "- refusal = the answer contains a phrase of `sda_local/data/refusal_phrases.txt` "
             f"({report['detector']['n_phrases']} phrases)",
             f"- {report['timing']['seconds']:.0f} s in all"
             + "".join(f"; {n} {d['tokens_per_second']} tok/s" for n, d in
                       report["timing"].get("decode_speed", {}).items() if d["tokens_per_second"]), ""]
    lines += ["## Pooled", ""]
    rows = []
    for s_name in systems:
        h = s["pooled"].get("harmful", {}).get(s_name)
        b = s["pooled"].get("benign", {}).get(s_name)
        echo = [x["echo"]["rate"] for x in (h, b) if x and "echo" in x]
        rows.append([s_name,
                     f"{pct(h['rate'])} ({h['k']}/{h['n']}) [{pct(h['ci95'][0], 0)}–{pct(h['ci95'][1], 0)}]" if h else "—",
                     f"{pct(b['rate'])} ({b['k']}/{b['n']}) [{pct(b['ci95'][0], 0)}–{pct(b['ci95'][1], 0)}]" if b else "—",
                     " / ".join(pct(e) for e in echo) if echo else "—"])
    lines += [md_table(["system", "refusal on harmful ↑", "over-refusal on benign ↓",
                        "recites the instruction (harmful / benign)"], rows), "",
              "Brackets: 95 % Wilson interval. “Recites the instruction”: the answer repeats 6 or more consecutive "
              "words of the instruction — neither a refusal nor an answer (see `echoes_instruction`).", ""]
    if s.get("quality"):
        lines += ["## Answer quality (judge-free, all prompts)", "", quality.markdown_table(s["quality"], systems),
                  "", quality.TABLE_NOTE, ""]
    lines += ["## Per dataset", ""]
    rows = []
    for name, d in s["per_dataset"].items():
        for s_name in systems:
            x = d["systems"].get(s_name)
            if not x:
                continue
            vs = x.get("vs_base")
            rows.append([name, d["kind"], s_name, f"{pct(x['rate'])} ({x['k']}/{x['n']})",
                         f"+{vs['up']} / −{vs['down']} (p={vs['sign_test_p']:.2g})" if vs else "—",
                         pct(x["echo"]["rate"]) if "echo" in x else "—", x["mean_tokens"], x["empty_answers"]])
    lines += [md_table(["dataset", "kind", "system", "refusal rate", "refusals gained / lost vs base",
                        "recites instruction", "mean tokens", "empty"], rows), ""]
    ex = report.get("examples") or []
    if ex:
        lines += ["## Examples where the systems disagree (harmful prompts)", ""] + ex
    return "\n".join(lines)


def _row(ds: Dataset, kind: str, item, system: System, fin, detector: RefusalDetector, instruction: str) -> dict:
    v = detector.check(fin.text)
    return {"dataset": ds.name, "kind": kind, "id": item.id, "system": system.name, "lam": system.lam,
            "plausibility": system.plausibility, "placement": system.placement, "prompt": item.prompt,
            "text": fin.text, "n_tokens": fin.n_tokens, "decode_seconds": round(fin.decode_seconds, 4),
            "finish_reason": fin.finish_reason, "refused": v.refused,
            "phrase": v.phrase, "quality": quality.answer_quality(fin.text, instruction).to_dict()}


def _add_fluency(rows: list[dict], scorer: FluencyScorer) -> None:
    """Give each row its ``fluency``, one teacher-forced batch per prompt."""
    by_prompt: dict[str, list[dict]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt"], []).append(r)
    for prompt, rs in by_prompt.items():
        for r, f in zip(rs, scorer.score(prompt, [r["text"] for r in rs])):
            r["fluency"] = f


def _complete_old_rows(done: dict, keep: set, instruction: str, scorer: FluencyScorer | None) -> bool:
    """Rows of an older run get the measures they lack (quality; fluency for the rows this report uses);
    whether any row changed."""
    changed = False
    for key, r in done.items():
        if "quality" not in r:
            done[key] = {**r, "quality": quality.answer_quality(r["text"], instruction).to_dict()}
            changed = True
    if scorer is not None:
        todo = [r for r in done.values() if "fluency" not in r and (r["dataset"], r["id"]) in keep]
        _add_fluency(todo, scorer)
        changed = changed or bool(todo)
    return changed


def _read_done(out: Path, conf: dict) -> dict[tuple[str, str], dict]:
    """The rows of the run in ``out`` to continue, keyed by (id, system); its settings must be ``conf``."""
    conf_path, items_path = out / "config.json", out / "items.jsonl"
    if not items_path.exists():
        return {}
    old = json.loads(conf_path.read_text("utf-8")) if conf_path.exists() else None
    if not _extends(old, conf):
        raise SdaError(f"{out}: the existing run used other settings ({conf_path}); use another --out "
                       "or drop --resume to start over")
    return {(r["id"], r["system"]): r for r in read_jsonl(items_path)}


GRID_KEYS = ("lams", "placements", "plausibilities", "contrasts")  # a resumed run may add points to these grids


def _extends(old: dict | None, new: dict) -> bool:
    """Whether ``new`` is ``old`` with the same settings and grids that contain the old grids' points (the
    rows already written are then still valid: each is keyed by its prompt and system name)."""
    if old is None:
        return False
    rest = [k for k in set(old) | set(new) if k not in GRID_KEYS + ("sampling",)]
    if any(old.get(k) != new.get(k) for k in rest):
        return False
    # sampling settings compare as SamplingParams: a field added since the old run reads as its default
    if SamplingParams.from_dict(old.get("sampling") or {}) != SamplingParams.from_dict(new.get("sampling") or {}):
        return False
    return all(set(map(str, old.get(k) or [])) <= set(map(str, new.get(k) or [])) for k in GRID_KEYS)


def run_refusal(engine, datasets: Sequence[tuple[Dataset, str]], cfg: RefusalConfig, out_dir: str | Path, *,
                resume: bool = False, progress: bool = True, fluency: bool = True) -> dict:
    """Answer every prompt with every system; write items.jsonl, refusal.json and refusal.md in ``out_dir``.
    ``fluency``: also score each answer under the base stream (one teacher-forced batch per prompt)."""
    for ds, kind in datasets:
        if kind not in KINDS:
            raise ValueError(f"dataset kind must be one of {KINDS}, got {kind!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        detector = RefusalDetector(None if cfg.phrases_file is None else load_phrases(cfg.phrases_file))
    except ValueError as exc:  # the user's phrase file
        raise SdaError(f"{cfg.phrases_file}: {exc}") from None
    systems = cfg.systems()
    items_path = out / "items.jsonl"
    conf = {"model": engine.name, **cfg.to_dict()}
    done = _read_done(out, conf) if resume else {}
    (out / "config.json").write_text(json.dumps(conf, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    keep = {(ds.name, it.id) for ds, _ in datasets for it in ds.items}
    scorer = FluencyScorer.for_engine(engine) if fluency else None
    total = sum(len(ds.items) for ds, _ in datasets) * len(systems)
    bar = Progress("refusal", total, enabled=progress)
    t0 = time.perf_counter()
    try:
        if _complete_old_rows(done, keep, cfg.instruction, scorer):
            rewrite_jsonl(items_path, list(done.values()))
        rows = list(done.values())
        with JsonlWriter(items_path, append=bool(done)) as w:
            for ds, kind in datasets:
                for item in ds.items:
                    new = []
                    for system in systems:
                        if (item.id, system.name) not in done:
                            fin = _answer(engine, item.prompt, system, cfg, cfg.sampling.seed + item.line)
                            new.append(_row(ds, kind, item, system, fin, detector, cfg.instruction))
                        bar.update(note=f"{ds.name} {system.name}")
                    if scorer is not None:
                        _add_fluency(new, scorer)
                    for row in new:
                        w.write(row)
                    rows += new
    finally:
        bar.close()
        if scorer is not None:
            scorer.close()
    names = [x.name for x in systems]
    rows = [r for r in rows if (r["dataset"], r["id"]) in keep and r["system"] in names]
    report = {"kind": "refusal", "model": engine.name, "run": run_info(engine), "config": cfg.to_dict(),
              "detector": {"n_phrases": len(detector.phrases), "file": cfg.phrases_file or "sda_local/data/refusal_phrases.txt"},
              "datasets": [{**ds.summary(), "kind": kind} for ds, kind in datasets],
              "timing": {"seconds": round(time.perf_counter() - t0, 2), "resumed_rows": len(done),
                         "decode_speed": decode_speed((r["system"], r["n_tokens"], r["decode_seconds"])
                                                      for r in rows if "decode_seconds" in r)},
              "fluency": fluency,
              "summary": summarise(rows, names, [(ds.name, kind) for ds, kind in datasets], cfg.instruction)}
    report["examples"] = _examples(rows, names)
    write_report(out, "refusal", report, render_markdown(report))
    return report
