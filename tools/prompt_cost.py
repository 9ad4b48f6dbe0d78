"""What a chat's prompts cost the engine, turn by turn: prompt tokens evaluated (after KV reuse) and prompt
seconds of each SDA answer in a scripted conversation, as JSON.  Run it on two checkouts to compare (the
canonical prompt chunks of ``runtime/kvprefix.py`` against the reuse of every cached token before them).

    .venv/bin/python tools/prompt_cost.py [--model qwen2.5-coder-1.5b] [--threads 2] [--tokens 64] [--repeats 3]

Each repeat starts a fresh engine and runs the same four turns (preset harmlessness: matched placement, contrast
ignore; λ 0.25; seed 1): three new user messages, then the third turn asked again.  Seconds are the minimum over
the repeats; token counts are the same in every repeat.
"""
from __future__ import annotations

import argparse
import json

from sda_local.core import SamplingParams
from sda_local.presets import get_preset
from sda_local.runtime.engine import Engine, collect

QUESTIONS = ["How do I keep basil alive on a windowsill?", "And what if the leaves turn yellow?",
             "Could I grow it from a cutting instead?"]


def run(model: str | None, threads: int, tokens: int) -> list[dict]:
    pre = get_preset("harmlessness")
    p = SamplingParams(seed=1, max_tokens=tokens, contrast="ignore")
    eng = Engine(model, n_threads=threads)
    msgs: list[dict] = []
    out = []
    try:
        for q in [*QUESTIONS, None]:
            if q is None:  # the last turn asked again: its prompt is all in the cache
                msgs = msgs[:-2]
                q = QUESTIONS[-1]
            msgs = msgs + [{"role": "user", "content": q}]
            done = collect(eng.generate(msgs, pre.instruction, 0.25, placement="matched", params=p,
                                        opposite=pre.opposite))
            out.append({"prompt_tokens": done.n_prompt_tokens, "evaluated": done.n_evaluated_prompt_tokens,
                        "prompt_seconds": done.prompt_seconds})
            msgs = msgs + [{"role": "assistant", "content": done.text}]
    finally:
        eng.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    runs = [run(a.model, a.threads, a.tokens) for _ in range(a.repeats)]
    turns = [{**runs[0][i], "prompt_seconds": round(min(r[i]["prompt_seconds"] for r in runs), 4)}
             for i in range(len(runs[0]))]
    print(json.dumps({"model": a.model, "threads": a.threads, "tokens": a.tokens, "repeats": a.repeats,
                      "turns": turns, "total_evaluated": sum(t["evaluated"] for t in turns),
                      "total_prompt_seconds": round(sum(t["prompt_seconds"] for t in turns), 4)}, indent=1))


if __name__ == "__main__":
    main()
