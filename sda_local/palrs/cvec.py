"""Control-vector GGUF files: write, read, and sum several into the buffer llama.cpp applies.

The format is the one llama.cpp's ``--control-vector`` flags read:

- ``general.architecture = "controlvector"``, ``controlvector.model_hint`` (the source model's architecture),
  ``controlvector.layer_count`` (how many ``direction.N`` tensors the file holds);
- one F32, 1-D tensor ``direction.N`` of length n_embd per steered layer, N ≥ 1.

Numbering, which is easy to get wrong: ``direction.N`` is added to the **output of layer N** — the tensor llama.cpp
names ``l_out-N`` — so a vector measured at ``l_out-N`` is written as ``direction.N``.  In the buffer handed to
``llama_set_adapter_cvec`` row ``j`` belongs to layer ``j + 1`` (layer 0 is never steered).

Several files are summed, each times its own scale, and a layer range limits where the sum applies: the same
rules as llama.cpp's ``--control-vector-scaled FILE SCALE`` and ``--control-vector-layer-range A B``.
``control_vectors`` turns "PATH[:SCALE]" specs into the ``core.ControlVectors`` the engine takes.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..core.control import DEFAULT_CV_STREAMS, ControlVectorError, ControlVectors

__all__ = ["ARCH", "ControlVector", "ControlVectorError", "combine", "control_vectors", "load_control_vectors",
           "parse_layer_range", "parse_spec", "read_control_vector", "write_control_vector"]

ARCH = "controlvector"
_DIRECTION = re.compile(r"^direction\.(\d+)$")


@dataclass
class ControlVector:
    """Per-layer directions (layer N → vector added to the output of layer N) and the file's metadata."""

    directions: dict[int, np.ndarray]
    model_hint: str = ""
    metadata: dict[str, object] = field(default_factory=dict)
    path: Path | None = None

    @property
    def n_embd(self) -> int:
        return int(next(iter(self.directions.values())).shape[0])

    @property
    def layers(self) -> list[int]:
        return sorted(self.directions)


def write_control_vector(path: str | os.PathLike, directions: Mapping[int, np.ndarray], model_hint: str,
                         metadata: Mapping[str, object] | None = None) -> Path:
    """Write ``directions`` (layer N ≥ 1 → 1-D vector) as a control-vector GGUF.

    ``metadata`` adds extra key/value pairs (str, int, float, bool, or lists of float); llama.cpp ignores them.
    """
    import gguf

    if not directions:
        raise ControlVectorError("no directions to write")
    vecs = {}
    n_embd = None
    for layer, v in sorted(directions.items()):
        layer = int(layer)
        if layer < 1:
            raise ControlVectorError(f"layer {layer}: control vectors start at layer 1 (layer 0 is never steered)")
        arr = np.ascontiguousarray(np.asarray(v, dtype=np.float32).reshape(-1))
        if n_embd is None:
            n_embd = arr.shape[0]
        elif arr.shape[0] != n_embd:
            raise ControlVectorError(f"layer {layer}: length {arr.shape[0]}, other layers have {n_embd}")
        if not np.all(np.isfinite(arr)):
            raise ControlVectorError(f"layer {layer}: the direction holds NaN or infinite values")
        vecs[layer] = arr
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), ARCH)
    w.add_string(f"{ARCH}.model_hint", str(model_hint))
    w.add_uint32(f"{ARCH}.layer_count", len(vecs))
    for key, val in (metadata or {}).items():
        if isinstance(val, bool):
            w.add_bool(key, val)
        elif isinstance(val, (int, np.integer)):
            w.add_int64(key, int(val))
        elif isinstance(val, (float, np.floating)):
            w.add_float64(key, float(val))
        elif isinstance(val, str):
            w.add_string(key, val)
        elif isinstance(val, (list, tuple, np.ndarray)):
            w.add_array(key, [float(x) for x in val])
        else:
            raise ControlVectorError(f"metadata {key!r}: unsupported type {type(val).__name__}")
    for layer, arr in vecs.items():
        w.add_tensor(f"direction.{layer}", arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _field_value(f):
    v = f.contents()
    return v.tolist() if isinstance(v, np.ndarray) else v


def read_control_vector(path: str | os.PathLike) -> ControlVector:
    """Read a control-vector GGUF (ours, llama.cpp's cvector-generator's, or repeng's)."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise ControlVectorError(f"control vector {path} not found")
    try:
        r = gguf.GGUFReader(str(path))
    except Exception as exc:
        raise ControlVectorError(f"{path} is not a readable GGUF file: {exc}") from None
    meta = {k: _field_value(f) for k, f in r.fields.items() if not k.startswith("GGUF.")}
    arch = meta.get("general.architecture")
    if arch != ARCH:
        raise ControlVectorError(f"{path} is not a control vector (general.architecture is {arch!r}, "
                                 f"expected {ARCH!r}); is it a model file?")
    directions: dict[int, np.ndarray] = {}
    n_embd = None
    for t in r.tensors:
        m = _DIRECTION.match(t.name)
        if not m:
            raise ControlVectorError(f"{path}: unexpected tensor {t.name!r} (only direction.N tensors are allowed)")
        layer = int(m.group(1))
        if layer < 1:
            raise ControlVectorError(f"{path}: {t.name} — layers start at 1 (layer 0 is never steered)")
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise ControlVectorError(f"{path}: {t.name} is {t.tensor_type.name}, control vectors must be F32")
        dims = [int(d) for d in t.shape if int(d) != 1] or [1]
        if len(dims) != 1:
            raise ControlVectorError(f"{path}: {t.name} has shape {list(t.shape)}, expected one dimension")
        arr = np.array(t.data, dtype=np.float32).reshape(-1)
        if n_embd is None:
            n_embd = arr.shape[0]
        elif arr.shape[0] != n_embd:
            raise ControlVectorError(f"{path}: {t.name} has length {arr.shape[0]}, other directions {n_embd}")
        if layer in directions:
            raise ControlVectorError(f"{path}: {t.name} appears twice")
        directions[layer] = arr
    if not directions:
        raise ControlVectorError(f"{path} holds no direction.N tensors")
    return ControlVector(directions, str(meta.get(f"{ARCH}.model_hint", "")), meta, path)


def parse_spec(spec: str, default_scale: float = 1.0) -> tuple[str, float]:
    """``"PATH"`` or ``"PATH:SCALE"`` → (path, scale).  A suffix that is not a number stays part of the path."""
    path, sep, tail = spec.rpartition(":")
    if sep and path:
        try:
            return path, float(tail)
        except ValueError:
            pass
    return spec, float(default_scale)


def parse_layer_range(text: str | Sequence[int] | None) -> tuple[int, int] | None:
    """``"A-B"`` (or ``"N"``, or a pair) → (A, B), inclusive; None stays None."""
    if text is None:
        return None
    if not isinstance(text, str):
        a, b = (int(x) for x in text)
    else:
        m = re.fullmatch(r"\s*(\d+)\s*(?:[-:]\s*(\d+)\s*)?", text)
        if not m:
            raise ControlVectorError(f"layer range {text!r}: write it as A-B (e.g. 10-20) or a single layer N")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
    if a > b:
        raise ControlVectorError(f"layer range {a}-{b}: the first layer must not exceed the last")
    return a, b


def _sum(pairs: list[tuple[ControlVector, float]], rows: int, n_embd: int) -> np.ndarray:
    """Σ scale × direction, row j = layer j + 1."""
    buf = np.zeros((rows, n_embd), np.float32)
    for cv, scale in pairs:
        for layer, v in cv.directions.items():
            buf[layer - 1] += np.float32(scale) * v
    return buf


def combine(vectors: Iterable[tuple[ControlVector, float]], n_layer: int, n_embd: int) -> np.ndarray:
    """Sum ``scale × direction`` over files into llama.cpp's buffer: shape (n_layer - 1, n_embd), row j = layer j+1."""
    pairs = list(vectors)
    for cv, _ in pairs:
        where = f"{cv.path}" if cv.path else "control vector"
        if cv.n_embd != n_embd:
            raise ControlVectorError(f"{where} has n_embd {cv.n_embd} but the model has {n_embd}: "
                                     f"it was made for a different model")
        if max(cv.directions) > n_layer - 1:
            raise ControlVectorError(f"{where} has direction.{max(cv.directions)}, but this model's steerable "
                                     f"layers are 1..{n_layer - 1}: it was made for a different model")
    return _sum(pairs, max(1, n_layer - 1), n_embd)


def _read_specs(specs: Iterable[tuple[str | os.PathLike, float] | str], scale: float) -> list[tuple[ControlVector, float]]:
    pairs = []
    for s in specs:
        path, sc = parse_spec(s) if isinstance(s, str) else (s[0], float(s[1]))
        pairs.append((read_control_vector(path), sc * float(scale)))
    if not pairs:
        raise ControlVectorError("no control vector given")
    return pairs


def load_control_vectors(specs: Iterable[tuple[str | os.PathLike, float] | str], n_layer: int, n_embd: int,
                         scale: float = 1.0) -> np.ndarray:
    """Read and sum several files (``(path, scale)`` or ``"PATH[:SCALE]"``), times a common ``scale``."""
    return combine(_read_specs(specs, scale), n_layer, n_embd)


def _describe(specs: list, scale: float) -> str:
    names = [str(s) if isinstance(s, str) else f"{os.fspath(s[0])}:{float(s[1]):g}" for s in specs]
    return ", ".join(names) + (f" × {float(scale):g}" if float(scale) != 1.0 else "")


def control_vectors(specs: Iterable[tuple[str | os.PathLike, float] | str], *, scale: float = 1.0,
                    layers: str | Sequence[int] | None = None, streams: str = DEFAULT_CV_STREAMS) -> ControlVectors:
    """Read and sum control-vector files into the data the engine takes (``Engine(control=…)``).

    ``specs``: ``"PATH[:SCALE]"`` strings or ``(path, scale)`` pairs, summed, times ``scale``; ``layers``: "A-B"
    or a pair (inclusive; None = all); ``streams``: "aligned" (the instructed stream only) or "both".  Whether they fit a
    model is checked when the engine applies them.
    """
    specs = list(specs)
    pairs = _read_specs(specs, scale)
    n_embd = pairs[0][0].n_embd
    for cv, _ in pairs[1:]:
        if cv.n_embd != n_embd:
            raise ControlVectorError(f"{cv.path} has n_embd {cv.n_embd} but {pairs[0][0].path} has {n_embd}: "
                                     "they were made for different models")
    data = _sum(pairs, max(max(cv.directions) for cv, _ in pairs), n_embd)
    return ControlVectors(data, parse_layer_range(layers), streams, _describe(specs, scale))
