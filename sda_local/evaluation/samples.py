"""``sda-local eval samples``: real side-by-side answers per alignment preset (base / instruction-only / SDA).

For each preset, the first ``per_preset`` prompts of the dev split that fits it (``PRESET_SOURCES``) are
answered three times on one engine with the same seed (the turn's seed moved by the prompt's line number):

- ``base``: plain sampling, no instruction;
- ``instruction``: plain sampling with the preset's instruction at the setting's placement;
- ``sda``: SDA with λ from the evaluator (``judges.decide_lambda`` on the base answer, the one λ
  decision; a fixed ``--lam`` or the ``preset`` evaluator need no judge).

With a grid (``SdaVariant``s: contrast × λ × guidance clip), the ``sda`` answer is replaced by one answer per
point of the grid, each named for its settings (``sda contrast=ignore λ=0.25``); base and instruction-only are
answered once per prompt, so every point is compared on the same two references.

Each answer gets the judge-free quality measures (``quality.answer_quality``).  Written to the output folder:
``samples.jsonl`` (one row per prompt), ``samples.md`` (for people: every model text escaped, since model output
is untrusted) and ``samples.json`` (the run: command, model, settings, prompts used, quality per preset/system).
"""
from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from ..errors import PromptTooLongError, SdaError
from ..judges import Evaluator, LambdaDecision
from ..presets import Preset
from ..runtime.engine import Engine, collect
from ..turn import TurnSettings, TurnTrace, answer, instruction_only
from . import quality
from .datasets import Dataset, DatasetError, Item, load_jsonl
from .progress import Progress
from .report import JsonlWriter, run_info, write_report

SYSTEMS = ("base", "instruction", "sda")
REFERENCES = ("base", "instruction")


@dataclass(frozen=True)
class SdaVariant:
    """One point of a grid: sampling fields that differ from the run's settings, and a fixed λ (None: the
    evaluator's decision on the base answer, the same for every point)."""

    sampling: tuple[tuple[str, object], ...] = ()
    lam: float | None = None

    @property
    def name(self) -> str:
        parts = [f"{k}={'none' if v is None else v}" for k, v in self.sampling]
        return " ".join(["sda", *parts] + ([] if self.lam is None else [f"λ={self.lam:g}"]))

    def apply(self, s: TurnSettings) -> TurnSettings:
        return replace(s, sampling=replace(s.sampling, **dict(self.sampling)))


def variant_grid(lams: Sequence[float] | None = None, **fields: Sequence) -> list[SdaVariant]:
    """Every combination of the given sampling field values and fixed λs (None: no grid, the one ``sda``)."""
    axes = [(k, list(v)) for k, v in fields.items() if v is not None and len(v) > 0]
    points: list[SdaVariant] = [SdaVariant()]
    for k, values in axes:
        points = [replace(p, sampling=p.sampling + ((k, v),)) for p in points for v in values]
    if lams:
        points = [replace(p, lam=float(lam)) for p in points for lam in lams]
    return [] if points == [SdaVariant()] else points


def systems_of(rows: Sequence[dict]) -> tuple[str, ...]:
    """The systems the rows answer with, in order (``SYSTEMS`` without a grid)."""
    return tuple(dict.fromkeys(k for r in rows for k in r["answers"])) if rows else SYSTEMS
PROMPT_CHARS = 400  # a prompt longer than this is cut in samples.md (samples.jsonl keeps it whole)


@dataclass(frozen=True)
class PromptSource:
    """Where a preset's prompts come from: a file of the data folder and which block of ``per_preset``
    prompts in it (block 1 = the prompts after block 0's, when two presets share a file)."""

    file: str
    block: int = 0


PRESET_SOURCES: dict[str, PromptSource] = {
    "honesty": PromptSource("truthfulqa.dev.jsonl"),
    "harmlessness": PromptSource("beavertails.dev.jsonl"),
    "empathy": PromptSource("empathy.dev.jsonl"),
    "summarisation": PromptSource("dialogsum.dev.jsonl"),
    "helpfulness": PromptSource("truthfulqa.dev.jsonl", block=1),  # after the honesty prompts
}


@dataclass(frozen=True)
class PresetPrompts:
    """One preset and the prompts it answers."""

    preset: Preset
    dataset: Dataset
    items: list[Item]


def select_prompts(data_dir: str | Path, preset: Preset, per_preset: int) -> PresetPrompts:
    """``per_preset`` prompts for ``preset`` from its file in ``data_dir`` (``PRESET_SOURCES``); a ``DatasetError``
    naming the file when it is missing or holds no prompt for this preset."""
    if per_preset < 1:
        raise DatasetError(f"the number of prompts per preset must be ≥ 1, got {per_preset}")
    src = PRESET_SOURCES.get(preset.name)
    if src is None:
        raise DatasetError(f"no prompt file is known for preset {preset.name!r}; choose among "
                           f"{', '.join(PRESET_SOURCES)}")
    path = Path(data_dir) / src.file
    if not path.is_file():
        raise DatasetError(f"{path}: dataset file for preset {preset.name!r} not found; give the folder that holds "
                           f"{src.file} with --data-dir")
    first = src.block * per_preset
    ds = load_jsonl(path, limit=first + per_preset)
    items = ds.items[first:first + per_preset]
    if not items:
        raise DatasetError(f"{path}: only {len(ds.items)} usable prompt(s), none left for preset {preset.name!r} "
                           f"(it uses prompts {first + 1}–{first + per_preset})")
    return PresetPrompts(preset, ds, items)


def answer_prompt(engine: Engine, evaluator: Evaluator, settings: TurnSettings, prompt: str,
                  seed_offset: int = 0, variants: Sequence[SdaVariant] = ()) -> dict:
    """The answers to ``prompt`` with one seed (``settings.params(seed_offset)``): the turn (base answer, the λ
    decision on it, SDA answer; ``turn.answer``), the instruction-only answer, and with ``variants`` one SDA
    answer per grid point in place of ``sda``; each answer's quality measures and token count."""
    s = replace(settings, sampling=settings.params(seed_offset))
    msgs = s.messages(prompt)
    t = TurnTrace.run(answer(engine, evaluator, msgs, s, base="always"))
    instruction = collect(instruction_only(engine, msgs, s))
    done = {"base": t.base, "instruction": instruction, "sda": t.aligned}
    d = t.decision
    lams = {}
    if variants:
        del done["sda"]
        for v in variants:
            vd = d if v.lam is None else LambdaDecision(v.lam, "fixed", None, (), 0.0)
            done[v.name] = TurnTrace.run(answer(engine, evaluator, msgs, v.apply(s), decision=vd)).aligned
            lams[v.name] = vd.lam
    names = list(done)
    return {"seed": s.sampling.seed, "placement": s.effective_placement,
            "answers": {k: done[k].text for k in names},
            "n_tokens": {k: done[k].n_tokens for k in names},
            "finish_reason": {k: done[k].finish_reason for k in names},
            "quality": {k: quality.answer_quality(done[k].text, s.preset.instruction).to_dict() for k in names},
            "lambda": {"lam": round(float(d.lam), 6), "source": d.source, "score": d.score_value,
                       "warnings": list(d.warnings), **({"grid": lams} if lams else {})}}


def summarise(rows: Sequence[dict]) -> dict[str, dict[str, dict]]:
    """Per preset, per system: ``quality.summarize`` of its answers."""
    out: dict[str, dict[str, dict]] = {}
    for name in dict.fromkeys(r["preset"] for r in rows):
        rs = [r for r in rows if r["preset"] == name]
        out[name] = {s: quality.summarize([{"quality": r["quality"][s]} for r in rs]) for s in systems_of(rs)}
    if len(out) > 1:
        out["all"] = {s: quality.summarize([{"quality": r["quality"][s]} for r in rows]) for s in systems_of(rows)}
    return out


def run_samples(engine: Engine, evaluator: Evaluator, plan: Sequence[PresetPrompts], settings: TurnSettings,
                out_dir: str | Path, *, command: str = "", progress: bool = True,
                variants: Sequence[SdaVariant] = ()) -> dict:
    """Answer every prompt of ``plan`` (``settings`` with each preset in turn); write samples.jsonl, .json and .md
    in ``out_dir``; return the report (``run``, ``presets``, ``quality``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    t0 = time.perf_counter()
    bar = Progress("samples", sum(len(p.items) for p in plan), enabled=progress)
    try:
        with JsonlWriter(out / "samples.jsonl") as w:
            for pp in plan:
                s = replace(settings, preset=pp.preset)
                for it in pp.items:
                    try:
                        answers = answer_prompt(engine, evaluator, s, it.prompt, it.line, variants)
                    except PromptTooLongError as exc:
                        raise SdaError(f"{it.id} (preset {pp.preset.name}): {exc}") from None
                    row = {"id": it.id, "preset": pp.preset.name, "dataset": pp.dataset.name, "prompt": it.prompt,
                           **answers}
                    w.write(row)
                    rows.append(row)
                    bar.update(note=f"{pp.preset.name} λ={row['lambda']['lam']:.2f}")
    finally:
        bar.close()
    report = {"run": {**run_info(engine), "command": command, "evaluator": evaluator.name,
                      "settings": {k: v for k, v in settings.to_dict().items() if k != "preset"},
                      **({"grid": [v.name for v in variants]} if variants else {}),
                      "seconds": round(time.perf_counter() - t0, 1)},
              "presets": {pp.preset.name: {"instruction": pp.preset.instruction, "dataset": pp.dataset.summary(),
                                           "ids": [it.id for it in pp.items]} for pp in plan},
              "quality": summarise(rows)}
    write_report(out, "samples", report, render_markdown(report, rows))
    return report


# -- Markdown (model text is untrusted: nothing of it may become markup) ---------------------------------------
_INLINE = re.compile(r"([\\`*_\[\]{}|~])")           # emphasis, code, links, tables, strikethrough
_LINE_START = re.compile(r"^(\d*)([#+\-=.)])")  # headings, lists ("-", "1."), setext underlines
_INDENT = re.compile(r"^[ \t]+")                      # would make an indented code block: kept as spaces
# control characters (terminal escapes…) and bidirectional overrides ("Trojan source") are shown as U+FFFD
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def escape_md(text: str) -> str:
    """``text`` as literal Markdown on one line: HTML special characters as entities (no tag, no entity survives),
    Markdown punctuation backslash-escaped, line starts that would open a block escaped, newlines as ``<br>``,
    control and bidi-override characters as U+FFFD."""
    lines = []
    for line in _UNSAFE.sub("\ufffd", (text or "").replace("\r\n", "\n").replace("\r", "\n")).split("\n"):
        line = _INLINE.sub(r"\\\1", html.escape(line, quote=False))
        line = _INDENT.sub(lambda m: m.group(0).replace("\t", "    ").replace(" ", "&nbsp;"), line)
        lines.append(_LINE_START.sub(r"\1\\\2", line))
    return "<br>".join(lines)


def quote_block(text: str, limit: int | None = None) -> str:
    """``text`` (cut to ``limit`` characters) as an escaped Markdown block quote."""
    text = (text or "").strip()
    if limit is not None and len(text) > limit:
        text = text[:limit].rstrip() + " …"
    return "> " + (escape_md(text) if text else "*(empty)*")


def _lambda_label(lam: dict) -> str:
    score = "" if lam["score"] is None else f" score {lam['score']}"
    how = {"score": f"judge{score}", "fixed": f"fixed{score}", "fallback": "the evaluator failed: fallback λ"}
    return f"SDA, λ = {lam['lam']:.2f} ({how.get(lam['source'], lam['source'])})"


def _measures(q: dict, n_tokens: int) -> str:
    flags = [f for f in ("echo", "narration", "degenerate") if q.get(f)]
    words = f"{q['n_words']} word{'' if q['n_words'] == 1 else 's'}"
    return (f"{n_tokens} tokens, {words}, longest run shared with the instruction {q['echo_run']}, "
            f"distinct-2 {q['distinct_2']:.2f}" + (f" — **{', '.join(flags)}**" if flags else ""))


def render_prompt(n: int, row: dict, placement: str) -> list[str]:
    """One prompt's section: the prompt (cut), then the three labelled answers with their measures."""
    placement = row.get("placement", placement)  # "auto" resolved for this row's preset
    labels = {"base": "Base (no instruction)", "instruction": f"Instruction only (placement {placement})",
              "sda": _lambda_label(row["lambda"])}
    out = [f"### {n}. {escape_md(row['id'])}", "", quote_block(row["prompt"], PROMPT_CHARS), ""]
    for s in row["answers"]:
        label = labels.get(s) or "SDA, " + escape_md(s.removeprefix("sda "))
        out += [f"**{label}** — {_measures(row['quality'][s], row['n_tokens'][s])}", "",
                quote_block(row["answers"][s]), ""]
    return out


def render_markdown(report: dict, rows: Sequence[dict]) -> str:
    """samples.md: the run, then per preset its instruction and every prompt's three answers."""
    run, st = report["run"], report["run"]["settings"]
    sp = st["sampling"]
    model = (run.get("model") or {}).get("model", "?")
    system = [f"- system prompt (both streams): {escape_md(st['system_prompt'])}"] if st.get("system_prompt") else []
    lines = [f"# Side-by-side answers per preset — {escape_md(str(model))}", "",
             f"- command: {escape_md(run.get('command') or '?')}",
             f"- λ from: {escape_md(run['evaluator'])} (mapping {st['mapping']}, fallback {st['fallback_lam']:g}); "
             f"placement {st['placement']}; T0 = {sp['t0']}, top-p = {sp['top_p']}, k = {sp['k']}, temperature "
             f"mode {sp['temperature_mode']}, plausibility α = {sp['plausibility']:g}, up to {sp['max_tokens']} "
             f"tokens; " + ("no fixed seed" if sp["seed"] is None else f"seed {sp['seed']} + the prompt's line number")
             + ", the same for the three answers of a prompt",
             *system,
             "- answers are model output, shown escaped and unedited", ""]
    for name, info in report["presets"].items():
        lines += [f"## {escape_md(name)}", "", f"Instruction ({escape_md(info['dataset']['name'])} prompts):", "",
                  quote_block(info["instruction"]), ""]
        for n, row in enumerate((r for r in rows if r["preset"] == name), 1):
            lines += render_prompt(n, row, st["placement"])
    lines += ["## Answer quality (judge-free)", "", quality.TABLE_NOTE, ""]
    for name, per in report["quality"].items():
        lines += [f"### {escape_md(name)}", "", quality.markdown_table(per), ""]
    return "\n".join(lines)
