"""Thin wrappers over llama-cpp-python's low-level API: the only module that talks to llama.cpp directly.

- ``LoadedModel``: the GGUF weights and vocabulary, loaded once (shared by every context).
- ``Context``: one llama.cpp context with ``n_seq_max`` sequences, its KV memory and a reusable batch.

Pinned to llama-cpp-python 0.3.x (names changed across minor releases).
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path

import llama_cpp
import llama_cpp._internals as _internals
import numpy as np

from ..errors import DecodeError, ModelFileError
from ._alloc import tune_allocator

LLAMA_LOGGER = "llama-cpp-python"  # the logger llama-cpp-python prints llama.cpp's log through
_configured = False
_configure_lock = threading.Lock()


def configure_process() -> None:
    """Process-wide settings for running models, applied once, when the first model is loaded (importing this
    module changes nothing): llama.cpp logs only errors unless SDA_LOCAL_VERBOSE is set, and the allocator
    keeps the per-token numpy temporaries on the heap (``_alloc``)."""
    global _configured
    with _configure_lock:
        if _configured:
            return
        verbose = bool(os.environ.get("SDA_LOCAL_VERBOSE"))
        logging.getLogger(LLAMA_LOGGER).setLevel(logging.DEBUG if verbose else logging.ERROR)
        tune_allocator()
        _configured = True


def cpu_has_amx() -> bool:
    """Whether this llama.cpp build runs Intel AMX int8 kernels on this CPU."""
    return "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode("utf-8", "replace")


def backend_info() -> dict:
    """What this llama.cpp build runs on: whether it can offload layers to a GPU (CUDA, Metal, Vulkan …), the
    backend devices it registered, and its CPU feature line (for benchmark reports)."""
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    devices = []
    try:
        for i in range(llama_cpp.ggml_backend_dev_count()):
            dev = llama_cpp.ggml_backend_dev_get(i)
            devices.append(llama_cpp.ggml_backend_dev_name(dev).decode("utf-8", "replace"))
    except (AttributeError, TypeError, OSError):  # older bindings without the device registry
        pass
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    return {"gpu_offload": gpu, "devices": devices, "backend": "gpu" if gpu else "cpu", "system_info": info}


def use_extra_buffer_types() -> bool:
    """Whether weights may go into llama.cpp's extra CPU buffer types (AMX, repacked layouts).

    Off on CPUs with AMX int8: there the first decode of a quantized model segfaults inside the AMX matmul
    (seen with llama-cpp-python 0.3.x on Xeon machines with AMX; a known llama.cpp issue on some machines).
    ``SDA_LOCAL_EXTRA_BUFTS=1`` or ``=0`` overrides the choice."""
    forced = os.environ.get("SDA_LOCAL_EXTRA_BUFTS")
    if forced in ("0", "1"):
        return forced == "1"
    return not cpu_has_amx()


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class LoadedModel:
    """GGUF weights + vocabulary.  Load once, then create as many contexts over it as needed."""

    def __init__(self, path: str | os.PathLike, n_gpu_layers: int = -1):
        configure_process()
        self.path = Path(path)
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = int(n_gpu_layers)
        params.use_extra_bufts = use_extra_buffer_types()
        try:
            self._model = _internals.LlamaModel(path_model=str(self.path), params=params, verbose=False)
        except (ValueError, OSError) as exc:
            raise ModelFileError(
                f"llama.cpp could not load {self.path}: {exc}. The file may be damaged, or its architecture "
                f"may be newer than this llama.cpp build (llama-cpp-python {llama_cpp.__version__})."
            ) from None
        self.ptr = self._model.model
        self.vocab = llama_cpp.llama_model_get_vocab(self.ptr)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_embd = int(llama_cpp.llama_model_n_embd(self.ptr))
        self.n_layer = int(llama_cpp.llama_model_n_layer(self.ptr))
        self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(self.ptr))
        self.metadata: dict[str, str] = self._model.metadata()
        self._piece_buf = ctypes.create_string_buffer(256)

    # -- vocabulary -------------------------------------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool = False, special: bool = True) -> list[int]:
        return list(self._model.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))

    def token_bytes(self, token: int, special: bool = False) -> bytes:
        """The raw bytes of one token (may be part of a multi-byte character)."""
        n = llama_cpp.llama_token_to_piece(self.vocab, int(token), self._piece_buf, len(self._piece_buf), 0, special)
        if n < 0:  # buffer too small: grow and retry
            self._piece_buf = ctypes.create_string_buffer(-n + 16)
            n = llama_cpp.llama_token_to_piece(self.vocab, int(token), self._piece_buf, len(self._piece_buf), 0, special)
        return self._piece_buf.raw[:n]

    def detokenize(self, tokens: list[int], special: bool = False) -> str:
        return self._model.detokenize(list(tokens), special=special).decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        return self._model.token_get_text(int(token))

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, int(token)))

    @property
    def bos_token(self) -> int:
        return int(llama_cpp.llama_vocab_bos(self.vocab))

    @property
    def eos_token(self) -> int:
        return int(llama_cpp.llama_vocab_eos(self.vocab))

    @property
    def add_bos(self) -> bool:
        return bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template")

    @property
    def description(self) -> str:
        return self._model.desc()

    def close(self) -> None:
        self._model.close()


class Context:
    """A llama.cpp context over a ``LoadedModel`` with ``n_seq_max`` independent sequences.

    ``n_ctx`` is the capacity of *each* sequence.  ``add`` queues tokens into the batch and ``decode`` runs
    them in one ``llama_decode``; ``logits(i)`` then views the output row of batch entry ``i``.
    """

    def __init__(self, model: LoadedModel, n_ctx: int, n_seq_max: int = 1, n_threads: int | None = None,
                 n_batch: int = 512, kv_unified: bool = False, n_outputs_max_per_seq: int = 1, cb_eval=None,
                 flash_attn: int | None = None, n_ubatch: int | None = None):
        """``flash_attn``: llama.cpp's ``flash_attn_type`` (-1 auto, the default; 0 off; 1 on).  ``n_ubatch``: the
        most tokens llama.cpp computes at once (default ``n_batch``); it splits larger batches itself."""
        self.model = model
        cp = llama_cpp.llama_context_default_params()
        if flash_attn is not None:
            cp.flash_attn_type = int(flash_attn)
        cp.n_seq_max = int(n_seq_max)
        cp.n_ctx = int(n_ctx) * int(n_seq_max)
        cp.n_batch = int(n_batch)
        cp.n_ubatch = min(int(n_ubatch or n_batch), int(n_batch))
        threads = int(n_threads or default_threads())
        cp.n_threads = cp.n_threads_batch = threads
        cp.kv_unified = bool(kv_unified)
        cp.n_outputs_max_per_seq = max(1, int(n_outputs_max_per_seq))
        cp.no_perf = True
        if cb_eval is not None:
            cp.cb_eval = cb_eval
            cp.cb_eval_user_data = None
        self._cb_eval = cb_eval  # keep the callback alive as long as the context
        try:
            self._ctx = _internals.LlamaContext(model=model._model, params=cp, verbose=False)
        except ValueError as exc:
            raise DecodeError(f"llama.cpp could not create a context of {cp.n_ctx} tokens: {exc}") from None
        self.ptr = self._ctx.ctx
        self.mem = llama_cpp.llama_get_memory(self.ptr)
        self.n_seq_max = int(n_seq_max)
        self.n_batch = int(n_batch)
        # llama.cpp pads each sequence's share; with a unified cache the share is the whole buffer
        self.n_ctx_seq = min(int(n_ctx), int(llama_cpp.llama_n_ctx_seq(self.ptr)))
        self.n_threads = threads
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, self.n_seq_max)  # room for add_seqs
        self._n = 0
        self._out_rows = 0

    # -- batch ------------------------------------------------------------------------------------------
    @property
    def batch_free(self) -> int:
        return self.n_batch - self._n

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Queue one token; returns its batch index (for ``logits``)."""
        if self._n >= self.n_batch:
            raise DecodeError("internal: batch overflow")
        b, i = self._batch, self._n
        b.token[i] = int(token)
        b.pos[i] = int(pos)
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = int(seq)
        b.logits[i] = 1 if logits else 0
        self._n += 1
        return i

    def add_seqs(self, token: int, pos: int, seqs, logits: bool) -> int:
        """Queue one token that belongs to several sequences at once (its KV cell is shared by all of them; needs
        ``kv_unified``); returns its batch index."""
        if self._n >= self.n_batch:
            raise DecodeError("internal: batch overflow")
        if not 0 < len(seqs) <= self.n_seq_max:
            raise DecodeError(f"internal: a token needs 1 to {self.n_seq_max} sequences, got {len(seqs)}")
        b, i = self._batch, self._n
        b.token[i] = int(token)
        b.pos[i] = int(pos)
        b.n_seq_id[i] = len(seqs)
        row = b.seq_id[i]
        for j, s in enumerate(seqs):
            row[j] = int(s)
        b.logits[i] = 1 if logits else 0
        self._n += 1
        return i

    def decode(self) -> None:
        if self._n == 0:
            return
        self._batch.n_tokens = self._n
        rc = llama_cpp.llama_decode(self.ptr, self._batch)
        self._n = 0
        if rc != 0:
            what = {1: "no room in the KV cache", 2: "aborted", -1: "invalid batch"}.get(rc, "error")
            raise DecodeError(f"llama_decode failed with code {rc} ({what})")

    def logits(self, i: int) -> np.ndarray:
        """Zero-copy view of the logits of batch entry ``i`` of the last decode (valid until the next)."""
        ptr = llama_cpp.llama_get_logits_ith(self.ptr, int(i))
        if not ptr:
            raise DecodeError(f"internal: no logits for batch entry {i}")
        return np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,))

    # -- KV memory --------------------------------------------------------------------------------------
    def seq_rm(self, seq: int, p0: int = 0, p1: int = -1) -> bool:
        return bool(llama_cpp.llama_memory_seq_rm(self.mem, int(seq), int(p0), int(p1)))

    def seq_cp_full(self, src: int, dst: int) -> None:
        """Copy all of ``src`` into ``dst`` (in a split KV cache, cross-sequence copies must be whole)."""
        llama_cpp.llama_memory_seq_rm(self.mem, int(dst), -1, -1)
        llama_cpp.llama_memory_seq_cp(self.mem, int(src), int(dst), -1, -1)

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self.mem, True)

    def seq_state(self, seq: int) -> bytes:
        n = llama_cpp.llama_state_seq_get_size(self.ptr, seq)
        buf = (ctypes.c_uint8 * n)()
        got = llama_cpp.llama_state_seq_get_data(self.ptr, buf, n, seq)
        return bytes(buf[:got])

    def set_seq_state(self, seq: int, data: bytes) -> None:
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_seq_set_data(self.ptr, buf, len(data), seq) == 0:
            raise DecodeError("internal: could not restore a sequence state")

    def set_control_vector(self, data: np.ndarray | None, il_start: int = 1, il_end: int = -1) -> None:
        """Add ``data`` (shape (n_layer, n_embd), row j = layer j+1) to the residual stream; None turns it off."""
        n_embd = self.model.n_embd
        if data is None:
            rc = llama_cpp.llama_set_adapter_cvec(self.ptr, None, 0, n_embd, 0, 0)
        else:
            arr = np.ascontiguousarray(data, dtype=np.float32)
            self._cvec = arr  # llama.cpp copies it, but keep it for inspection
            end = self.model.n_layer if il_end < 0 else il_end
            rc = llama_cpp.llama_set_adapter_cvec(
                self.ptr, arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), arr.size, n_embd, il_start, end)
        if rc != 0:
            raise DecodeError(f"llama.cpp rejected the control vector (n_embd must be {n_embd})")

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        self._ctx.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


class GrammarGreedySampler:
    """llama.cpp's sampler chain: a GBNF grammar, then greedy.  Output is well-formed by construction."""

    def __init__(self, model: LoadedModel, grammar: str, root: str = "root"):
        self._chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        g = llama_cpp.llama_sampler_init_grammar(model.vocab, grammar.encode("utf-8"), root.encode("utf-8"))
        if not g:
            llama_cpp.llama_sampler_free(self._chain)
            raise ValueError("llama.cpp rejected the grammar")
        llama_cpp.llama_sampler_chain_add(self._chain, g)  # the chain owns it now
        llama_cpp.llama_sampler_chain_add(self._chain, llama_cpp.llama_sampler_init_greedy())

    def sample(self, ctx: Context, batch_index: int) -> int:
        """Pick (and accept into the grammar state) the next token from the logits of one batch entry."""
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx.ptr, int(batch_index)))

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None

    def __del__(self):  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass
