"""Capture the residual stream (llama.cpp's ``l_out-N`` tensors) of chosen layers while a sequence is decoded.

llama.cpp names the output of layer N — the residual stream after that layer's feed-forward add, and after any
control vector for layer N — ``l_out-N``.  A ``cb_eval`` callback, set when the context is created, is asked for
every graph node; it answers yes for the wanted ``l_out-N`` names and then receives each tensor (F32,
``[n_tokens, n_embd]``) and copies the rows it needs.

The capture context is a dedicated one (the callback splits the graph and slows every decode); it holds one
sequence and reuses the KV prefix a new sequence shares with the previous one (``sda_local.runtime.kvprefix``; for a
preference pair, the prompt is evaluated once for both answers).  Only the rows of the requested positions are copied out.

In the last layer llama.cpp keeps only the rows that produce logits, so when that layer is captured the
requested positions are marked as outputs and its tensor holds exactly those rows.

This module, like ``sda_local.runtime.backend``, calls llama.cpp (ggml) directly through ctypes.
"""
from __future__ import annotations

import ctypes
from typing import Sequence

import llama_cpp
import numpy as np

from ..errors import DecodeError
from ..runtime.backend import Context, LoadedModel
from ..runtime.kvprefix import KvStream

_lib = llama_cpp.llama_cpp._lib  # ggml's symbols resolve through libllama's dependencies
_lib.ggml_get_name.argtypes = [ctypes.c_void_p]
_lib.ggml_get_name.restype = ctypes.c_char_p
_lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
_lib.ggml_backend_tensor_get.restype = None
GGML_TYPE_F32 = 0


class _TensorHead(ctypes.Structure):
    """The first fields of ``struct ggml_tensor`` (ggml.h): type, buffer, ne[4], nb[4]."""

    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4)]


class ResidualCapture:
    """A one-sequence context over ``model`` that records ``l_out-N`` for ``layers`` (0 ≤ N < n_layer).

    >>> cap = ResidualCapture(model, layers=[1, 2], n_ctx=256)
    >>> rows = cap.run(tokens, start=10)      # {1: array (len(tokens) - 10, n_embd), 2: ...}
    """

    def __init__(self, model: LoadedModel, layers: Sequence[int], n_ctx: int, *, n_batch: int = 512,
                 n_threads: int | None = None):
        layers = sorted({int(x) for x in layers})
        if not layers:
            raise ValueError("no layers to capture")
        bad = [x for x in layers if not 0 <= x < model.n_layer]
        if bad:
            raise ValueError(f"layers {bad} do not exist: this model has layers 0..{model.n_layer - 1}")
        self.model = model
        self.layers = layers
        self.n_embd = model.n_embd
        self._names = {f"l_out-{x}".encode(): x for x in layers}
        self._last_layer_wanted = (model.n_layer - 1) in layers
        self._chunk: tuple[int, int, int, int] = (0, 0, 0, 0)  # n_tokens, n_outputs, keep_lo, keep_hi
        self._rows: dict[int, list[np.ndarray]] = {x: [] for x in layers}
        self._error: BaseException | None = None
        self._cb = llama_cpp.ggml_backend_sched_eval_callback(self._callback)
        n_batch = max(1, min(int(n_batch), int(n_ctx)))
        self.ctx = Context(model, n_ctx, n_seq_max=1, n_threads=n_threads, n_batch=n_batch,
                           n_outputs_max_per_seq=n_batch, cb_eval=self._cb)
        self.n_ctx = self.ctx.n_ctx_seq
        self._stream = KvStream(self.ctx, 0)
        self.n_decoded = 0               # tokens evaluated so far (after prefix reuse)

    @property
    def tokens(self) -> list[int]:
        """What the KV cache holds."""
        return self._stream.tokens

    # -- the callback (runs inside llama_decode) -------------------------------------------------------------
    def _callback(self, t, ask, _user_data):
        try:
            layer = self._names.get(_lib.ggml_get_name(t))
            if ask:
                return layer is not None
            if layer is None:
                return True
            h = _TensorHead.from_address(t)
            n_tok, n_out, lo, hi = self._chunk
            ne0, ne1 = int(h.ne[0]), int(h.ne[1])
            if h.type != GGML_TYPE_F32 or ne0 != self.n_embd or h.ne[2] != 1 or h.ne[3] != 1:
                raise DecodeError(f"l_out-{layer}: unexpected tensor (type {h.type}, shape {list(h.ne)})")
            if int(h.nb[0]) != 4 or int(h.nb[1]) != 4 * ne0:
                raise DecodeError(f"l_out-{layer}: the tensor is not contiguous")
            if ne1 == n_tok:
                a, b = lo, hi
            elif ne1 == n_out:  # only the output rows, which are exactly the kept positions
                a, b = 0, ne1
            else:
                raise DecodeError(f"l_out-{layer}: {ne1} rows for a batch of {n_tok} tokens with {n_out} outputs")
            if b > a:
                out = np.empty((b - a, ne0), np.float32)
                _lib.ggml_backend_tensor_get(t, out.ctypes.data, a * int(h.nb[1]), out.nbytes)
                self._rows[layer].append(out)
            return True
        except BaseException as exc:  # never let an exception cross the C boundary: abort the decode
            self._error = exc
            return False

    # -- running a sequence ----------------------------------------------------------------------------------
    def run(self, tokens: Sequence[int], start: int, end: int | None = None) -> dict[int, np.ndarray]:
        """Evaluate ``tokens[:end]`` and return, per captured layer, the rows of positions ``start..end-1``."""
        tokens = [int(t) for t in tokens]
        end = len(tokens) if end is None else int(end)
        if not 0 <= start < end <= len(tokens):
            raise ValueError(f"bad span {start}..{end} for {len(tokens)} tokens")
        if end > self.n_ctx:
            raise DecodeError(f"{end} tokens do not fit the capture context of {self.n_ctx}")
        r = self._stream.reuse(tokens[:end], start)
        for rows in self._rows.values():
            rows.clear()
        self._error = None
        nb = self.ctx.n_batch
        try:
            for c0 in range(r, end, nb):
                c1 = min(end, c0 + nb)
                n_out = 0
                for p in range(c0, c1):
                    out = (start <= p) if self._last_layer_wanted else (p == end - 1)
                    self.ctx.add(tokens[p], p, 0, out)
                    n_out += int(out)
                lo, hi = max(start, c0) - c0, max(start, c1) - c0
                self._chunk = (c1 - c0, n_out, lo, hi)
                try:
                    self.ctx.decode()
                except DecodeError:
                    if self._error is not None:
                        raise self._error from None
                    raise
                self.tokens.extend(tokens[c0:c1])
                self.n_decoded += c1 - c0
        except BaseException:
            self._stream.reset()
            raise
        n = end - start
        out = {}
        for layer, rows in self._rows.items():
            arr = np.concatenate(rows, axis=0) if rows else np.zeros((0, self.n_embd), np.float32)
            if arr.shape[0] != n:
                raise DecodeError(f"l_out-{layer}: captured {arr.shape[0]} rows, expected {n}")
            out[layer] = arr
            rows.clear()
        return out

    def set_control_vector(self, data: np.ndarray | None, il_start: int = 1, il_end: int = -1) -> None:
        """Steer the capture context too (to see what a vector does to the residual stream)."""
        self.ctx.set_control_vector(data, il_start, il_end)
        self._stream.reset()

    def close(self) -> None:
        self.ctx.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
