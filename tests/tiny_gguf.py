"""Write a tiny random-weight llama-architecture GGUF for engine mechanics tests.

Deterministic for a given seed: a byte-fallback SentencePiece-style vocabulary (~300 tokens), ChatML special
tokens and chat template, 3 layers, n_embd 64.  ``eog_bias`` > 0 pushes the end-of-turn token's logit up, so
generation stops after a few tokens.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIAL = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
WORDS = ["▁the", "▁a", "▁is", "▁you", "▁and", "▁to", "▁of", "▁it", "▁be", "▁safe", "▁help", "▁true"]


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    tokens, scores, types = [], [], []
    for i, t in enumerate(SPECIAL):
        tokens.append(t); scores.append(0.0); types.append(2 if i == 0 else 3)  # UNKNOWN, CONTROL
    for b in range(256):
        tokens.append(f"<0x{b:02X}>"); scores.append(0.0); types.append(6)  # BYTE
    normal = ["▁"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    normal += list(".,!?'\n") + WORDS
    for j, t in enumerate(normal):
        tokens.append(t); scores.append(-float(j) if len(t) == 1 else 1.0); types.append(1)  # NORMAL
    return tokens, scores, types


def write_tiny_llama(path: str | Path, *, seed: int = 0, n_embd: int = 64, n_layer: int = 3, n_head: int = 4,
                     n_head_kv: int = 2, n_ff: int = 128, n_ctx_train: int = 4096, eog_bias: float = 0.0) -> Path:
    import gguf

    path = Path(path)
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)
    head_dim = n_embd // n_head

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-random-llama")
    w.add_context_length(n_ctx_train)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(4)  # <|im_end|>: end of turn
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)
    w.add_add_space_prefix(False)
    w.add_chat_template(CHAT_TEMPLATE)

    def rand(*shape, scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    emb = rand(n_vocab, n_embd, scale=1.0)
    out = rand(n_vocab, n_embd, scale=2.0 / np.sqrt(n_embd))
    if eog_bias:
        emb[:, 0] += 4.0          # every hidden state keeps a positive component in dimension 0 …
        out[4, :] = 0.0
        out[4, 0] = eog_bias      # … which the end-of-turn row reads
    w.add_tensor("token_embd.weight", emb)
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    w.add_tensor("output.weight", out)
    kv = n_head_kv * head_dim
    for i in range(n_layer):
        s = 0.5 / np.sqrt(n_embd)
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", rand(n_embd, n_embd, scale=s * 2))
        w.add_tensor(f"blk.{i}.attn_k.weight", rand(kv, n_embd, scale=s * 2))
        w.add_tensor(f"blk.{i}.attn_v.weight", rand(kv, n_embd, scale=s))
        w.add_tensor(f"blk.{i}.attn_output.weight", rand(n_embd, n_embd, scale=s))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", rand(n_ff, n_embd, scale=s))
        w.add_tensor(f"blk.{i}.ffn_up.weight", rand(n_ff, n_embd, scale=s))
        w.add_tensor(f"blk.{i}.ffn_down.weight", rand(n_embd, n_ff, scale=s))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


if __name__ == "__main__":  # pragma: no cover
    import sys
    print(write_tiny_llama(sys.argv[1] if len(sys.argv) > 1 else "tiny.gguf"))
