"""The transformers peers of ``sda-local bench`` on the tiny GGUF (needs the [bench] extra: torch, transformers)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import fused as reference
from sda_local import core  # noqa: E402
from sda_local.bench.cfg_peer import run_cfg_peer  # noqa: E402
from sda_local.bench.peer import load_hf_model, prompt_pair  # noqa: E402

OPTS = {"threads": 1, "seed": 0, "lam": 0.5, "k": 2.0, "prompt": "Write a story about a lighthouse.",
        "instruction": "Be kind.", "repeats": 1}


def test_classifier_free_guidance_with_gamma_one_plus_k_lambda_is_sda_steering(tiny_gguf):
    import torch
    from transformers.generation.logits_process import (
        UnbatchedClassifierFreeGuidanceLogitsProcessor,
    )

    opts = {**OPTS, "model": str(tiny_gguf)}
    ta, tb, _ = prompt_pair(opts)
    model, _ = load_hf_model(opts)
    lam, k = 0.5, 2.0
    x, neg = torch.tensor([ta]), torch.tensor([tb])
    with torch.inference_mode():
        za = model(x).logits[0, -1].float()
        zb = model(neg).logits[0, -1].float()
        proc = UnbatchedClassifierFreeGuidanceLogitsProcessor(1 + k * lam, model, unconditional_ids=neg)
        guided = proc(x, za[None].clone())[0].numpy()
    steered = reference.steer_logprobs(za.numpy(), zb.numpy(), lam, k)
    np.testing.assert_allclose(guided, steered, atol=1e-4)


def test_cfg_peer_makes_exactly_the_tokens_asked_for_from_sda_locals_prompt_ids(tiny_gguf):
    opts = {**OPTS, "model": str(tiny_gguf), "tokens": 6}
    out = run_cfg_peer(opts)
    ta, tb, _ = prompt_pair(opts)
    assert out["tokens"] == [6] and out["guidance_scale"] == pytest.approx(2.0)
    assert out["prompt_tokens"] == [len(ta), len(tb)] and len(ta) > len(tb)
    assert out["tokens_per_second"] > 0 and out["seconds_full"] >= out["seconds_first_token"]
