"""``sda-local eval ifeval``: instruction adherence on IFEval's verifiable constraints (Zhou et al. 2023).

Each row of the dev split holds IFEval's ``prompt`` (request and constraints written together), the bare
``request``, its ``constraints`` as one instruction, and IFEval's ``instruction_id_list`` / ``kwargs``.  Every
prompt is answered by each system with the same seed (the run's seed plus the row's key):

- ``base``: the request alone, plain sampling;
- ``inline``: IFEval's own ``prompt`` (as IFEval is normally run), plain sampling;
- ``instruction-user`` / ``instruction-system``: the constraints as the instruction, appended to the user turn /
  as the system message, plain sampling (instruction-only);
- ``sda``: the constraints as the instruction, steered with the shipped settings for a custom instruction
  (``presets.custom_preset``: its λ, placement and contrast) — what ``--instruction`` and system-prompt steering
  use;
- a grid of SDA settings (placement × contrast × λ × guidance clip × plausibility α × adaptive guidance), each
  point named for what differs from the shipped ``sda``.

The checkers are lm-eval's (``ifeval_checks``): strict and loose, per prompt and per instruction.  The report
gives each system's accuracies with standard errors, per instruction id, paired flips (prompt-level strict)
against each baseline with an exact sign test, degeneration (``quality``: repeated word runs, distinct-2, echo of
the constraints, and stuttering: one word three or more times in a row, the keyword stuffing of "associations,
associations, associations"), answer length and finish reasons.  Written to the output folder:
``items.jsonl`` (every answer, appended as each prompt finishes: ``--resume`` continues), ``report.json`` and
``report.md``.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from ..core import SamplingParams
from ..errors import SdaError
from ..jsonl import read_records
from ..judges import FixedEvaluator
from ..presets import custom_defaults, custom_preset
from ..runtime.engine import collect
from ..turn import TurnSettings, TurnTrace, answer, instruction_only
from . import metrics, quality
from .ifeval_checks import check
from .progress import Progress
from .report import JsonlWriter, md_table, pct, read_jsonl, run_info, write_report

BASELINES = ("base", "inline", "instruction-user", "instruction-system")
INSTRUCTION_ONLY = ("inline", "instruction-user", "instruction-system")
SYSTEMS = (*BASELINES, "sda")
GRID_FIELDS = ("placement", "contrast", "lam", "guidance_clip", "plausibility", "adaptive_guidance")
STUTTER_RUN = 3  # one word this many times in a row ("associations, associations, associations")
_WORD = re.compile(r"[A-Za-z0-9']+")


class IfevalDataError(SdaError):
    """The IFEval file is missing or a row lacks a field."""


def _check_row(r: dict) -> str | None:
    for k in ("key", "prompt", "request", "constraints", "instruction_id_list", "kwargs"):
        if k not in r:
            return f"missing field {k!r}"
    if len(r["instruction_id_list"]) != len(r["kwargs"]):
        return "instruction_id_list and kwargs differ in length"
    return None


def load_rows(path: str | Path, *, offset: int = 0, limit: int | None = None) -> list[dict]:
    """The usable rows of an IFEval JSONL file, rows ``offset`` to ``offset + limit``; malformed lines raise."""
    recs = read_records(path, check=_check_row, error=IfevalDataError, what="IFEval file",
                        limit=None if limit is None else offset + limit)
    recs.raise_problems(expected="Each line needs key, prompt, request, constraints, instruction_id_list, kwargs.")
    rows = recs.dicts()[offset:]
    if not rows:
        raise IfevalDataError(f"{path}: no rows from offset {offset}")
    return rows


@dataclass(frozen=True)
class System:
    """One way of answering.  ``kind``: one of ``SYSTEMS``; for SDA, the settings that differ from the shipped
    ones (``GRID_FIELDS``)."""

    name: str
    kind: str
    sda: tuple[tuple[str, object], ...] = ()

    def setting(self, key: str, default=None):
        return dict(self.sda).get(key, default)


def grid_systems(grid: dict[str, Sequence]) -> list[System]:
    """One SDA system per point of ``grid`` (``GRID_FIELDS`` → values; empty or missing axes are left out)."""
    points: list[tuple] = [()]
    for k in GRID_FIELDS:
        values = grid.get(k) or []
        if values:
            points = [p + ((k, v),) for p in points for v in values]
    if points == [()]:
        return []
    return [System(_grid_name(p), "sda", p) for p in points]


def parse_point(text: str) -> tuple[tuple[str, object], ...]:
    """One SDA system from ``"lam=0.5,placement=system,adaptive_guidance=jsd"`` (keys: ``GRID_FIELDS``; numbers
    for λ, α and the clip, ``none`` for no clip), in ``GRID_FIELDS`` order."""
    got: dict[str, object] = {}
    for part in filter(None, (x.strip() for x in text.split(","))):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in GRID_FIELDS or not value.strip():
            raise SdaError(f"SDA point {text!r}: write KEY=VALUE pairs separated by commas, KEY one of "
                           f"{', '.join(GRID_FIELDS)}; got {part!r}")
        value = value.strip()
        if key in ("lam", "plausibility") or (key == "guidance_clip" and value.lower() != "none"):
            try:
                got[key] = float(value)
            except ValueError:
                raise SdaError(f"SDA point {text!r}: {key} must be a number, got {value!r}") from None
        else:
            got[key] = None if key == "guidance_clip" else value
    if not got:
        raise SdaError("an SDA point needs at least one KEY=VALUE")
    return tuple((k, got[k]) for k in GRID_FIELDS if k in got)


def _grid_name(point: tuple) -> str:
    def show(k, v):
        if k == "lam":
            return f"λ={v:g}"
        if k == "guidance_clip":
            return f"clip={'none' if v is None else f'{v:g}'}"
        if k == "plausibility":
            return f"α={v:g}"
        if k == "adaptive_guidance":
            return f"adaptive={v}"
        return f"{k}={v}"
    return " ".join(["sda", *(show(k, v) for k, v in point)])


@dataclass
class IfevalConfig:
    systems: Sequence[str] = SYSTEMS
    grid: dict = field(default_factory=dict)          # GRID_FIELDS → values: extra SDA systems
    points: Sequence[tuple] = ()                      # more SDA systems, each its own settings (``parse_point``)
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_tokens=256, seed=0))

    def all_systems(self) -> list[System]:
        unknown = [s for s in self.systems if s not in SYSTEMS]
        if unknown:
            raise SdaError(f"unknown system(s) {', '.join(unknown)}; choose among {', '.join(SYSTEMS)}")
        out = [System(s, s) for s in self.systems] + grid_systems(self.grid)
        out += [System(_grid_name(p), "sda", tuple(p)) for p in self.points]
        for s in out:  # every setting checked before a model loads
            if s.kind == "sda":
                settings, lam = _sda_settings({"constraints": "check", "key": 0}, s, self.sampling)
                settings.check()
                FixedEvaluator(lam=lam)
        names = [s.name for s in out]
        if len(set(names)) != len(names):
            raise SdaError("two systems have the same name; drop a repeated grid value")
        return out

    def to_dict(self) -> dict:
        return {"systems": list(self.systems), "grid": {k: list(v) for k, v in self.grid.items() if v},
                "points": [dict(p) for p in self.points], "sampling": self.sampling.to_dict()}


# -- answering ---------------------------------------------------------------------------------------------------
def _sda_settings(row: dict, system: System, p: SamplingParams) -> tuple[TurnSettings, float]:
    """The turn settings and λ of an SDA system: the shipped custom-instruction settings, with the system's."""
    preset = custom_preset(row["constraints"], name="ifeval")
    overrides = {k: v for k, v in system.sda if k in ("contrast", "guidance_clip", "plausibility", "adaptive_guidance")}
    settings = TurnSettings(preset=preset, sampling=replace(p, **overrides).check(),
                            placement=system.setting("placement", "auto"))
    return settings, sda_lam(system)


def sda_lam(system: System) -> float:
    """An SDA system's λ: its own, or the shipped custom-instruction λ."""
    return float(system.setting("lam", custom_defaults()["lam"]))


def answer_row(engine, row: dict, system: System, p: SamplingParams):
    """``system``'s answer to ``row`` (a ``Finished``)."""
    user = [{"role": "user", "content": row["request"]}]
    if system.kind == "base":
        return collect(engine.generate_plain(user, params=p))
    if system.kind == "inline":
        return collect(engine.generate_plain([{"role": "user", "content": row["prompt"]}], params=p))
    if system.kind in ("instruction-user", "instruction-system"):
        settings = TurnSettings(preset=custom_preset(row["constraints"], name="ifeval"), sampling=p,
                                placement=system.kind.removeprefix("instruction-"))
        return collect(instruction_only(engine, user, settings))
    settings, lam = _sda_settings(row, system, p)
    return TurnTrace.run(answer(engine, FixedEvaluator(lam=lam), user, settings)).aligned


def stutter(text: str, run: int = STUTTER_RUN) -> int:
    """The longest run of one word repeated back to back (case-insensitive), if at least ``run``; else 0."""
    best, cur, prev = 1, 1, None
    for w in (m.group(0).lower() for m in _WORD.finditer(text)):
        cur = cur + 1 if w == prev else 1
        best, prev = max(best, cur), w
    return best if best >= run else 0


def item_row(row: dict, system: System, fin, lam: float | None) -> dict:
    v = check(row, fin.text)
    return {"key": row["key"], "system": system.name, "text": fin.text, "n_tokens": fin.n_tokens,
            "finish_reason": fin.finish_reason, "decode_seconds": round(fin.decode_seconds, 4),
            **({"lam": lam} if lam is not None else {}), "verdict": v.to_dict(),
            "quality": {**quality.answer_quality(fin.text, row["constraints"]).to_dict(),
                        "stutter": stutter(fin.text)}}


# -- summary -----------------------------------------------------------------------------------------------------
def _acc(flags: Sequence[bool]) -> dict:
    m, se = metrics.mean_se([float(x) for x in flags])
    return {"mean": round(m, 4), "se": round(se, 4), "n": len(flags)}


def summarise(rows: Sequence[dict], data: dict, systems: Sequence[str]) -> dict:
    """Per system: accuracies (strict / loose, prompt / instruction) with standard errors, per instruction id,
    flips against each baseline, degeneration, length and finish reasons."""
    by = {s: {r["key"]: r for r in rows if r["system"] == s} for s in systems}
    out = {}
    for s in systems:
        rs = [by[s][k] for k in sorted(by[s])]
        if not rs:
            continue
        d = {"prompt_strict": _acc([r["verdict"]["prompt_strict"] for r in rs]),
             "prompt_loose": _acc([r["verdict"]["prompt_loose"] for r in rs]),
             "instruction_strict": _acc([f for r in rs for f in r["verdict"]["strict"]]),
             "instruction_loose": _acc([f for r in rs for f in r["verdict"]["loose"]]),
             "per_instruction": _per_instruction(rs, data),
             "flips": {b: _flips(by[b], by[s]) for b in BASELINES if b in by and b != s and by[b]},
             "quality": quality.summarize(rs),
             "stutter": metrics.rate([bool(r["quality"].get("stutter")) for r in rs]),
             "mean_tokens": round(sum(r["n_tokens"] for r in rs) / len(rs), 1),
             "mean_words": round(sum(r["quality"]["n_words"] for r in rs) / len(rs), 1),
             "finish_reasons": _count(r["finish_reason"] for r in rs)}
        out[s] = d
    return out


def _per_instruction(rs: Sequence[dict], data: dict) -> dict:
    acc: dict[str, list[int]] = {}
    for r in rs:
        for iid, ok in zip(data[r["key"]]["instruction_id_list"], r["verdict"]["strict"]):
            a = acc.setdefault(iid, [0, 0])
            a[0] += int(ok)
            a[1] += 1
    return {iid: {"k": k, "n": n, "rate": round(k / n, 4)} for iid, (k, n) in sorted(acc.items())}


def _flips(ref: dict, sys_rows: dict) -> dict:
    keys = sorted(set(ref) & set(sys_rows))
    return {**metrics.paired_flips([float(ref[k]["verdict"]["prompt_strict"]) for k in keys],
                                   [float(sys_rows[k]["verdict"]["prompt_strict"]) for k in keys]), "n": len(keys)}


def _count(values) -> dict:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def best_instruction_only(summary: dict) -> str | None:
    """The instruction-only system with the highest prompt-level strict accuracy."""
    have = [s for s in INSTRUCTION_ONLY if s in summary]
    return max(have, key=lambda s: summary[s]["prompt_strict"]["mean"]) if have else None


# -- the run -----------------------------------------------------------------------------------------------------
def _read_done(out: Path, conf: dict) -> dict[tuple, dict]:
    conf_path = out / "config.json"
    if not (out / "items.jsonl").exists():
        return {}
    old = json.loads(conf_path.read_text("utf-8")) if conf_path.exists() else None
    if old is None or old.get("model") != conf["model"] or old.get("sampling") != conf["sampling"]:
        raise SdaError(f"{out}: the existing run used another model or other sampling settings ({conf_path}); use "
                       "another --out or drop --resume to start over")
    return {(r["key"], r["system"]): r for r in read_jsonl(out / "items.jsonl")}


def run_ifeval(engine, rows: Sequence[dict], cfg: IfevalConfig, out_dir: str | Path, *, resume: bool = False,
               progress: bool = True, command: str = "") -> dict:
    """Answer every row with every system; write items.jsonl, report.json and report.md in ``out_dir``."""
    systems = cfg.all_systems()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    conf = {"model": engine.name, **cfg.to_dict()}
    done = _read_done(out, conf) if resume else {}
    (out / "config.json").write_text(json.dumps(conf, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    bar = Progress("ifeval", len(rows) * len(systems), enabled=progress)
    t0 = time.perf_counter()
    new_rows: list[dict] = []
    try:
        with JsonlWriter(out / "items.jsonl", append=bool(done)) as w:
            for row in rows:
                p = replace(cfg.sampling, seed=None if cfg.sampling.seed is None else cfg.sampling.seed + row["key"])
                for system in systems:
                    if (row["key"], system.name) not in done:
                        lam = sda_lam(system) if system.kind == "sda" else None
                        r = item_row(row, system, answer_row(engine, row, system, p), lam)
                        w.write(r)
                        new_rows.append(r)
                    bar.update(note=system.name)
    finally:
        bar.close()
    keys = {r["key"] for r in rows}
    names = [s.name for s in systems]
    every = [r for r in [*done.values(), *new_rows] if r["key"] in keys and r["system"] in names]
    summary = summarise(every, {r["key"]: r for r in rows}, names)
    report = {"kind": "ifeval", "run": {**run_info(engine), "command": command,
                                       "seconds": round(time.perf_counter() - t0, 1), "resumed_rows": len(done)},
              "config": cfg.to_dict(), "systems": summary, "best_instruction_only": best_instruction_only(summary),
              "shipped_sda": custom_defaults(),
              "keys": sorted(keys)}
    write_report(out, "report", report, render_markdown(report))
    return report


# -- Markdown ----------------------------------------------------------------------------------------------------
def _pm(a: dict) -> str:
    return f"{pct(a['mean'])} ± {pct(a['se'])}"


def render_markdown(report: dict) -> str:
    s, cfg, run = report["systems"], report["config"], report["run"]
    sp = cfg["sampling"]
    best = report.get("best_instruction_only")
    model = (run.get("model") or {}).get("model", "?")
    lines = [f"# IFEval adherence — {model}", "",
             f"- command: `{run.get('command') or '?'}`",
             f"- {len(report['keys'])} prompts; up to {sp['max_tokens']} tokens; T0 {sp['t0']}, top-p {sp['top_p']}; "
             f"seed {sp['seed']} + the prompt's key (the same for every system); {run['seconds']:.0f} s",
             "- checkers: lm-eval's IFEval task (strict, and loose: first/last line removed, `*` stripped)",
             f"- flips: prompt-level strict against {best or 'the instruction-only system'} (best instruction-only "
             "here), exact two-sided sign test", ""]
    head = ["system", "prompt strict", "prompt loose", "instr. strict", "instr. loose", f"flips vs {best} (p)",
            "degenerate", "stutter", "echo", "tokens", "hit max"]
    rows = []
    for name, d in s.items():
        f = d["flips"].get(best) if best else None
        q = d["quality"]
        rows.append([name, _pm(d["prompt_strict"]), _pm(d["prompt_loose"]), _pm(d["instruction_strict"]),
                     _pm(d["instruction_loose"]), f"+{f['up']} / −{f['down']} ({f['sign_test_p']:.2g})" if f else "—",
                     f"{q['degenerate']['k']}/{q['n']}", f"{d['stutter']['k']}/{q['n']}", f"{q['echo']['k']}/{q['n']}",
                     d["mean_tokens"], d["finish_reasons"].get("length", 0)])
    lines += [md_table(head, rows), "",
              "± is one standard error. Degenerate: a repeated run of 10+ words or distinct-2 < 0.5; stutter: one word "
              f"{STUTTER_RUN}+ times in a row; echo: 6+ consecutive words of the constraints.", ""]
    lines += ["## Flips against each baseline (prompt-level strict)", ""]
    bases = [b for b in BASELINES if b in s]
    lines += [md_table(["system", *bases], [[n, *(_flip_cell(d["flips"].get(b)) for b in bases)]
                                            for n, d in s.items()]), ""]
    ids = sorted({i for d in s.values() for i in d["per_instruction"]})
    lines += ["## Per instruction (strict)", "",
              md_table(["instruction", "n", *s], [[i, next(d["per_instruction"][i]["n"] for d in s.values()
                                                          if i in d["per_instruction"]),
                                                    *(pct(d["per_instruction"][i]["rate"], 0) if i in d["per_instruction"]
                                                      else "—" for d in s.values())] for i in ids]), ""]
    return "\n".join(lines)


def _flip_cell(f: dict | None) -> str:
    return "—" if not f else f"+{f['up']} / −{f['down']} (p {f['sign_test_p']:.2g})"
