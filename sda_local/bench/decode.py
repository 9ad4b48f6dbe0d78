"""Pure ``llama_decode`` time of one decoding step with one sequence vs two (part of ``sda-local bench``).

SDA's batched layout advances both streams in one ``llama_decode`` of two tokens; plain decoding decodes one.
If a step were bound by reading the weights (memory bandwidth), the two-token step would cost about what the
one-token step costs (SDA/plain → 1.0); if bound by arithmetic, twice (→ 0.5).  This measures the ratio on the
engine's own context (two sequences, the prompt already in both), alternating the two kinds of step so that
drifts in machine load hit both alike; no numpy work is timed.  ``cpu_ms`` is the process CPU time of the same
steps (all threads): on a machine shared with other work it shows the work done, where wall time also shows the
waiting (with more threads than free cores, OpenMP's spinning barriers count as CPU time too).
"""
from __future__ import annotations

import statistics
import time

PROBE_PROMPT_TOKENS = 64


def decode_probe(model_path: str, threads: int, steps: int = 16, flash_attn: int | None = None) -> dict:
    """Median ms of a one-sequence and a two-sequence decoding step, and their ratio."""
    from ..runtime.backend import Context, LoadedModel

    m = LoadedModel(model_path)
    ctx = Context(m, 1024, n_seq_max=2, n_threads=threads, flash_attn=flash_attn)
    try:
        vocab = max(16, min(m.n_vocab, 32000))
        prompt = [(17 * i + 101) % vocab for i in range(PROBE_PROMPT_TOKENS)]  # any tokens: only time counts
        for seq in (0, 1):
            for i, t in enumerate(prompt):
                ctx.add(t, i, seq, i == len(prompt) - 1)
        ctx.decode()
        pos = [len(prompt), len(prompt)]

        def step(seqs: tuple[int, ...]) -> tuple[float, float]:
            for s in seqs:
                ctx.add(pos[s] % vocab, pos[s], s, True)
                pos[s] += 1
            t0, c0 = time.perf_counter(), time.process_time()
            ctx.decode()
            return time.perf_counter() - t0, time.process_time() - c0

        one, two = [], []
        for _ in range(steps + 1):
            one.append(step((0,)))
            step((1,))  # keep the two sequences the same length (not timed)
            two.append(step((0, 1)))
        b1, b2 = (statistics.median(w for w, _ in x[1:]) for x in (one, two))
        c1, c2 = (statistics.median(c for _, c in x[1:]) for x in (one, two))
    finally:
        ctx.close()
        m.close()
    return {"threads": threads, "flash_attn": "auto" if flash_attn is None else flash_attn,
            "one_sequence_ms": round(b1 * 1e3, 2), "two_sequences_ms": round(b2 * 1e3, 2),
            "two_over_one": round(b2 / b1, 3), "sda_over_plain_bound": round(b1 / b2, 3),
            "cpu_ms": {"one_sequence": round(c1 * 1e3, 2), "two_sequences": round(c2 * 1e3, 2),
                       "two_over_one": round(c2 / c1, 3)}}
