"""The fair peer of ``sda-local bench``: what a transformers user would run for SDA's steering.

SDA's steered scores lp + kλ·(lp − lp_nc) are classifier-free guidance with γ = 1 + kλ:
``UnbatchedClassifierFreeGuidanceLogitsProcessor`` computes lp_nc + γ·(lp − lp_nc) from the conditional stream
(the prompt with the instruction) and an unconditional one (``negative_prompt_ids``: the prompt without it),
which it keeps in its own KV cache.  So the peer is one ``model.generate(ta, guidance_scale=γ,
negative_prompt_ids=tb, …)``: the same GGUF (``gguf_file=``, dequantised to float32), the same prompt token
ids as sda-local's two streams, CPU, the same thread count, top-p sampling at T0 (SDA's JS temperature aside),
and exactly ``tokens`` new tokens (``min_new_tokens = max_new_tokens``).

Decode speed excludes the prompts, like sda-local's: (N − 1) / (t(N) − t(1)), where t(n) is the wall time of a
``generate`` of n new tokens (both prompts' prefill and the first token are in t(1)).
"""
from __future__ import annotations

import statistics
import time

from .peer import load_hf_model, prompt_pair, versions


def run_cfg_peer(opts: dict) -> dict:
    """opts: model (path), threads, tokens, seed, lam, k, t0, top_p, prompt, instruction, repeats."""
    import torch

    ta, tb, _ = prompt_pair(opts)
    model, load_s = load_hf_model(opts)
    gamma = 1.0 + float(opts.get("k", 2.0)) * float(opts["lam"])
    x, neg = torch.tensor([ta], dtype=torch.long), torch.tensor([tb], dtype=torch.long)
    n = int(opts["tokens"])

    def generate(new: int) -> tuple[float, int]:
        torch.manual_seed(int(opts["seed"]))
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(x, attention_mask=torch.ones_like(x), negative_prompt_ids=neg,
                                 negative_prompt_attention_mask=torch.ones_like(neg), guidance_scale=gamma,
                                 do_sample=True, temperature=float(opts.get("t0", 0.6)),
                                 top_p=float(opts.get("top_p", 0.95)), top_k=0, max_new_tokens=new,
                                 min_new_tokens=new, pad_token_id=0, use_cache=True)
        return time.perf_counter() - t0, int(out.shape[1] - x.shape[1])

    generate(2)  # warm-up
    firsts, fulls, made = [], [], []
    for _ in range(int(opts.get("repeats", 1))):
        firsts.append(generate(1)[0])
        dt, got = generate(n)
        fulls.append(dt)
        made.append(got)
    t1, tn = statistics.median(firsts), statistics.median(fulls)
    tps = (n - 1) / (tn - t1) if n > 1 and tn > t1 else 0.0
    return {"tokens_per_second": round(tps, 3), "tokens": made, "seconds_full": round(tn, 2),
            "seconds_first_token": round(t1, 2), "guidance_scale": gamma, "load_seconds": round(load_s, 1),
            "prompt_tokens": [len(ta), len(tb)], **versions()}
