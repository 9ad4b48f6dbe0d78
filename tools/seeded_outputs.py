"""Seeded outputs of `generate`, `serve` and `eval samples`, as one JSON file, for a before/after check of a
refactor: run it on two checkouts (or before and after a change) and `diff` the files.

    .venv/bin/python tools/seeded_outputs.py OUT.json [--model smollm2-135m] [--tokens 40]

Covers λ ∈ {0, 0.25}, both engine layouts (batched, contexts), with and without the base answer, the
self-score evaluator (its engine shortcut), the server (plain and SDA, streamed and not; text completions and
prefill) and `eval samples`.
Only texts and token ids are kept (no timings), so two runs of the same code give identical files.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
QUESTION = "How can I get back at my noisy neighbour?"


def cli(*args: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "sda_local.cli", *args, "--json"], check=True, capture_output=True,
                         text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    keep = ("stream", "event", "token_id", "text", "lam", "source", "score", "finish_reason", "token_ids")
    return [{k: r[k] for k in keep if k in r} for r in rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body: dict, path: str = "/v1/chat/completions") -> dict | str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        raw = r.read().decode()
    if body.get("stream"):
        text = ""
        for line in raw.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for c in json.loads(line[6:]).get("choices", []):
                    text += c["delta"].get("content") or ""
        return text
    d = json.loads(raw)
    sda = d.get("sda") or {}
    if "text" in d["choices"][0]:  # a text completion
        return {"text": d["choices"][0]["text"], "finish": d["choices"][0]["finish_reason"], "usage": d["usage"],
                "lam": sda.get("lam")}
    return {"text": d["choices"][0]["message"]["content"], "finish": d["choices"][0]["finish_reason"],
            "usage": d["usage"], "lam": sda.get("lam"), "lam_source": sda.get("lam_source")}


def serve_outputs(model: str, tokens: int) -> dict:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sda_local.cli", "serve", "--model", model, "--port", str(port),
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        msgs = [{"role": "user", "content": QUESTION}]
        base = {"model": model, "messages": msgs, "max_tokens": tokens, "seed": 3}
        out = {"plain": post(port, base), "plain_stream": post(port, {**base, "stream": True})}
        for lam in (0.0, 0.25):
            body = {**base, "sda": {"preset": "harmlessness", "lam": lam}}
            out[f"sda_lam{lam}"] = post(port, body)
            out[f"sda_lam{lam}_stream"] = post(port, {**body, "stream": True})
        text = {"model": model, "prompt": "The best way to calm down is", "max_tokens": tokens, "seed": 3}
        out["text_plain"] = post(port, text, "/v1/completions")
        out["text_sda"] = post(port, {**text, "sda": {"preset": "harmlessness", "lam": 0.25}}, "/v1/completions")
        prefill = {**base, "messages": msgs + [{"role": "assistant", "content": "Here is"}]}
        out["prefill_plain"] = post(port, prefill)
        out["prefill_sda"] = post(port, {**prefill, "sda": {"preset": "harmlessness", "lam": 0.25}})
        out["sda_self_base"] = post(port, {**base, "sda": {"preset": "harmlessness", "evaluator": "self",
                                                           "return_base": True}})
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def samples_outputs(model: str, tokens: int, lam: float) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "sda_local.cli", "eval", "samples", "--model", model, "--per-preset",
                        "1", "--presets", "harmlessness", "empathy", "--max-tokens", str(tokens), "--seed", "1", "--data-dir", str(DATA),
                        "--lam", str(lam), "--out", tmp, "--quiet"], check=True, capture_output=True)
        rows = [json.loads(line) for line in (Path(tmp) / "samples.jsonl").read_text().splitlines()]
    return [{"id": r["id"], "answers": r["answers"], "lambda": r["lambda"]} for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tokens", type=int, default=40)
    a = ap.parse_args()
    os.environ.setdefault("SDA_LOCAL_DEFAULT_MODEL", a.model)
    common = ["--model", a.model, "--max-tokens", str(a.tokens), "--seed", "1", "--preset", "harmlessness"]
    res: dict = {"generate": {}}
    for variant in ("batched", "contexts"):
        for lam in ("0", "0.25"):
            res["generate"][f"{variant} lam={lam}"] = cli("generate", QUESTION, *common, "--layout", variant,
                                                          "--lam", lam)
            res["generate"][f"{variant} lam={lam} --base"] = cli("generate", QUESTION, *common, "--layout", variant,
                                                                 "--lam", lam, "--base")
        res["generate"][f"{variant} self"] = cli("generate", QUESTION, *common, "--layout", variant,
                                                 "--evaluator", "self")
    res["serve"] = serve_outputs(a.model, a.tokens)
    res["samples"] = {str(lam): samples_outputs(a.model, a.tokens, lam) for lam in (0.0, 0.25)}
    Path(a.out).write_text(json.dumps(res, indent=1, ensure_ascii=False, sort_keys=True))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
