"""By-hand check that a seeded steered answer is the same whatever the engine answered before: five calls of one
steered request with other requests between (a plain answer, another steered one, a longer conversation); prints
whether each later call is bit for bit (tokens and probabilities) the first.

    .venv/bin/python tools/seed_check.py [--model qwen2.5-coder-1.5b] [--threads 2]
"""
from __future__ import annotations

import argparse
import json

from sda_local.core import SamplingParams
from sda_local.presets import get_preset
from sda_local.runtime.engine import Engine, collect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    eng = Engine(a.model, n_threads=a.threads)
    pre = get_preset("harmlessness")
    p = SamplingParams(seed=1, max_tokens=32, contrast="ignore", t0=1.0)
    q = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    other = [{"role": "user", "content": "Name a colour and say why you like it."}]

    def steer(msgs):
        evs = list(eng.generate(msgs, pre.instruction, 0.25, placement="matched", params=p, opposite=pre.opposite))
        return [(e.token_id, e.prob) for e in evs[:-1]]

    first, runs = steer(q), []
    runs.append(steer(q))
    collect(eng.generate_plain(other, params=p))
    runs.append(steer(q))
    steer(other)
    runs.append(steer(q))
    steer(q + [{"role": "assistant", "content": "1, 2, 3"}, {"role": "user", "content": "Go on."}])
    runs.append(steer(q))
    eng.close()
    print(json.dumps({"model": a.model, "calls": len(runs) + 1,
                      "bit_identical_to_first": [r == first for r in runs],
                      "tokens_identical_to_first": [[t for t, _ in r] == [t for t, _ in first] for r in runs]}))


if __name__ == "__main__":
    main()
