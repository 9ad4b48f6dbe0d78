"""Control vectors as data: what the engine adds to the residual stream, and where (no file parsing here —
``sda_local.palrs.cvec`` reads the files and builds a ``ControlVectors``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SdaError

# Which streams the vectors steer: "aligned" (the instructed stream only, the default everywhere) or "both".
DEFAULT_CV_STREAMS = "aligned"
CV_STREAMS = (DEFAULT_CV_STREAMS, "both")


class ControlVectorError(SdaError):
    """A control vector is missing, malformed, or does not fit the model."""


@dataclass(frozen=True)
class ControlVectors:
    """Directions to add to the residual stream.

    ``data`` has one row per layer from layer 1 up to the highest steered layer: row j is added to the output
    of layer j + 1 (llama.cpp's ``llama_set_adapter_cvec`` layout; layer 0 is never steered).  ``layers``
    limits where they apply (inclusive; None = every layer), ``streams`` is "aligned" (the instructed stream only) or
    "both", ``description`` says what they are (shown to the user).
    """

    data: np.ndarray
    layers: tuple[int, int] | None = None
    streams: str = DEFAULT_CV_STREAMS
    description: str = ""

    def __post_init__(self):
        arr = np.ascontiguousarray(self.data, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ControlVectorError(f"control vectors must be a (layers, n_embd) array, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ControlVectorError("control vectors hold NaN or infinite values")
        if self.streams not in CV_STREAMS:
            raise ControlVectorError(f"cv streams must be one of {', '.join(CV_STREAMS)}, got {self.streams!r}")
        if self.layers is not None:
            a, b = (int(x) for x in self.layers)
            if not 1 <= a <= b:
                raise ControlVectorError(f"layer range {a}-{b}: layers start at 1 and the first must not exceed "
                                         "the last")
            object.__setattr__(self, "layers", (a, b))
        object.__setattr__(self, "data", arr)

    @property
    def n_embd(self) -> int:
        return int(self.data.shape[1])

    def buffer(self, n_layer: int, n_embd: int) -> np.ndarray:
        """The (n_layer − 1, n_embd) float32 buffer for a model with ``n_layer`` layers of width ``n_embd``."""
        what = self.description or "the control vectors"
        if self.n_embd != n_embd:
            raise ControlVectorError(f"{what} have n_embd {self.n_embd} but the model has {n_embd}: "
                                     "they were made for a different model")
        rows = max(1, n_layer - 1)
        steered = np.flatnonzero(np.abs(self.data).max(axis=1) > 0)
        if steered.size and steered[-1] + 1 > n_layer - 1:
            raise ControlVectorError(f"{what} steer layer {steered[-1] + 1}, but this model's steerable layers "
                                     f"are 1..{n_layer - 1}: they were made for a different model")
        out = np.zeros((rows, n_embd), np.float32)
        n = min(rows, self.data.shape[0])
        out[:n] = self.data[:n]
        return out

    def layer_range(self, n_layer: int) -> tuple[int, int]:
        """The inclusive range they apply to on a model with ``n_layer`` layers."""
        return self.layers or (1, n_layer)

    def to_dict(self) -> dict:
        return {"description": self.description, "layers": list(self.layers) if self.layers else None,
                "streams": self.streams}
