"""The peer baseline of ``sda-local bench``: one SDA step the way the authors' research code runs it.

Hugging Face ``transformers`` on the CPU, the same GGUF loaded and dequantised to float32
(``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)``), and per generated token two
``model.generate(max_new_tokens=1)`` calls — one per stream, each re-reading its stream's whole sequence with
a fresh cache — whose logits go through the same ``sda_local.core`` step (steer, JS temperature, top-p)
that sda-local uses.  Only the forward passes differ, so the tok/s ratio measures the engine.

Needs ``pip install sda-local[bench]`` (torch, transformers, accelerate); runs in a child process of the
bench so that its memory and threads do not touch the other measurements.
"""
from __future__ import annotations

import importlib.util
import os
import time

import numpy as np

REQUIRES = ("torch", "transformers", "accelerate")


def missing() -> list[str]:
    return [m for m in REQUIRES if importlib.util.find_spec(m) is None]


def prompt_pair(opts: dict) -> tuple[list[int], list[int], set[int]]:
    """The exact token ids sda-local feeds its two streams (same chat template, same tokenizer), and the
    end-of-generation ids.  opts: model (path), prompt, instruction."""
    from ..runtime.backend import LoadedModel
    from ..runtime.prompts import ChatPrompter

    m = LoadedModel(opts["model"])
    try:
        prompter = ChatPrompter.for_model(m)
        ta, tb = prompter.pair([{"role": "user", "content": opts["prompt"]}], opts["instruction"])
        eog = {t for t in range(m.n_vocab) if m.is_eog(t)}
    finally:
        m.close()
    return ta, tb, eog


def load_hf_model(opts: dict):
    """(model, load seconds): the GGUF through transformers (dequantised to float32), on the CPU with
    ``opts["threads"]`` threads."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(int(opts["threads"]))
    path = os.path.abspath(opts["model"])
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                 dtype=torch.float32)
    model.eval()
    return model, time.perf_counter() - t0


def versions() -> dict:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "dtype": "float32"}


def run_peer(opts: dict) -> dict:
    """opts: model (path), threads, tokens, seed, lam, prompt, instruction."""
    from .. import core

    ta, tb, eog = prompt_pair(opts)
    import torch

    model, load_s = load_hf_model(opts)

    def next_logits(ids: list[int]) -> np.ndarray:
        x = torch.tensor([ids], dtype=torch.long)
        with torch.inference_mode():
            out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=1, do_sample=False,
                                 output_logits=True, return_dict_in_generate=True, pad_token_id=0)
        return out.logits[0][0].float().numpy()

    next_logits(tb)  # warm-up
    rng = np.random.default_rng(int(opts["seed"]))
    a, b, n, core_s = list(ta), list(tb), 0, 0.0
    chain = core.sda_chain(float(opts["lam"]))
    t1 = time.perf_counter()
    for _ in range(int(opts["tokens"])):
        la, lb = next_logits(a), next_logits(b)   # two generate() calls, each over the full sequence
        c0 = time.perf_counter()
        probs, _ = chain.distribution(la, lb)
        tok = core.sample_top_p(probs, 0.95, rng)
        core_s += time.perf_counter() - c0
        if tok in eog:
            break
        a.append(tok)
        b.append(tok)
        n += 1
    dt = time.perf_counter() - t1
    return {"tokens_per_second": round(n / dt, 3) if dt > 0 else 0.0, "tokens": n, "seconds": round(dt, 2),
            "load_seconds": round(load_s, 1), "core_us_per_step": round(core_s / max(1, n) * 1e6, 1),
            "prompt_tokens": [len(ta), len(tb)], **versions()}
