"""Pure ``llama_decode`` time of one decoding step with one sequence vs two, three, four (``sda-local bench``).

SDA's batched layout advances both streams in one ``llama_decode`` of two tokens; plain decoding decodes one.
If a step were bound by reading the weights (memory bandwidth), the two-token step would cost about what the
one-token step costs (SDA/plain → 1.0); if bound by arithmetic, twice (→ 0.5).  A paired turn (base answer and
SDA together) decodes three rows; llama.cpp's repacked CPU weights switch from a per-row kernel to a 4-row one
at four, so the four-row step is measured too.  This measures the ratio on the
engine's own context (two sequences, the prompt already in both), alternating the two kinds of step so that
drifts in machine load hit both alike; no numpy work is timed.  ``cpu_ms`` is the process CPU time of the same
steps (all threads): on a machine shared with other work it shows the work done, where wall time also shows the
waiting (with more threads than free cores, OpenMP's spinning barriers count as CPU time too).
"""
from __future__ import annotations

import statistics
import time

PROBE_PROMPT_TOKENS = 64


ROWS = (1, 2, 3, 4)  # one sequence (plain), two (SDA), three (a paired turn), four (where repacked gemm starts)


def decode_probe(model_path: str, threads: int, steps: int = 16, flash_attn: int | None = None) -> dict:
    """Median ms of a decoding step of 1, 2, 3 and 4 sequences (one token each), and their ratios to one.
    ``extra_bufts``: whether llama.cpp's repacked weight layouts were on (``SDA_LOCAL_EXTRA_BUFTS``)."""
    from ..runtime.backend import Context, LoadedModel, use_extra_buffer_types

    m = LoadedModel(model_path)
    n = max(ROWS)
    ctx = Context(m, 1024, n_seq_max=n, n_threads=threads, flash_attn=flash_attn)
    try:
        vocab = max(16, min(m.n_vocab, 32000))
        prompt = [(17 * i + 101) % vocab for i in range(PROBE_PROMPT_TOKENS)]  # any tokens: only time counts
        for seq in range(n):
            for i, t in enumerate(prompt):
                ctx.add(t, i, seq, i == len(prompt) - 1)
            ctx.decode()
        pos = [len(prompt)] * n

        def step(seqs: range) -> tuple[float, float]:
            for s in seqs:
                ctx.add(pos[s] % vocab, pos[s], s, True)
                pos[s] += 1
            t0, c0 = time.perf_counter(), time.process_time()
            ctx.decode()
            return time.perf_counter() - t0, time.process_time() - c0

        timed: dict[int, list] = {r: [] for r in ROWS}
        for _ in range(steps + 1):  # alternate the kinds of step; the first round warms up
            for r in ROWS:
                timed[r].append(step(range(r)))
                if r < n:
                    step(range(r, n))  # keep every sequence the same length (not timed)
        wall = {r: statistics.median(w for w, _ in timed[r][1:]) for r in ROWS}
        cpu = {r: statistics.median(c for _, c in timed[r][1:]) for r in ROWS}
        extra = use_extra_buffer_types()
    finally:
        ctx.close()
        m.close()
    b1, b2 = wall[1], wall[2]
    return {"threads": threads, "flash_attn": "auto" if flash_attn is None else flash_attn, "extra_bufts": extra,
            "one_sequence_ms": round(b1 * 1e3, 2), "two_sequences_ms": round(b2 * 1e3, 2),
            "two_over_one": round(b2 / b1, 3), "sda_over_plain_bound": round(b1 / b2, 3),
            "rows_ms": {str(r): round(wall[r] * 1e3, 2) for r in ROWS},
            "rows_over_one": {str(r): round(wall[r] / b1, 3) for r in ROWS},
            "cpu_ms": {"one_sequence": round(cpu[1] * 1e3, 2), "two_sequences": round(cpu[2] * 1e3, 2),
                       "two_over_one": round(cpu[2] / cpu[1], 3), "rows": {str(r): round(cpu[r] * 1e3, 2)
                                                                           for r in ROWS}}}
