"""``--model`` and how llama.cpp runs it, as an argparse parent (``model_parent``) and a typed result
(``ModelOptions``).  Light on purpose: nothing here imports numpy or llama.cpp, so ``sda-local chat --help``
answers at once, even where the engine's dependencies are missing."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..runtime.layouts import LAYOUTS
from ..runtime.models import default_model_help

if TYPE_CHECKING:
    from ..runtime.engine import Engine


@dataclass(frozen=True)
class ModelOptions:
    model: str | None = None
    n_ctx: int | None = None
    n_gpu_layers: int = -1
    threads: int | None = None
    layout: str | None = None

    def open(self, **engine_kwargs) -> "Engine":
        """Load the engine (``engine_kwargs``: e.g. control vectors)."""
        from ..runtime.engine import (
            Engine,  # here: parsing options must not load numpy or llama.cpp
        )

        return Engine(self.model, n_ctx=self.n_ctx, n_gpu_layers=self.n_gpu_layers, n_threads=self.threads,
                      layout=self.layout, **engine_kwargs)


def model_parent(*, layout: bool = True, gpu: bool = True, ctx: bool = True,
                 n_ctx: int | None = None) -> argparse.ArgumentParser:
    """``--model`` and ``--threads``; ``--n-ctx`` (default ``n_ctx``), ``--n-gpu-layers`` and ``--layout`` unless
    the command fixes them (then ``model_from_args`` reads ``n_ctx``, -1 and None)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", default=None,
                   help=f"registry id, file name in models/, or path (default: {default_model_help()})")
    g.add_argument("--threads", type=int, default=None, help="CPU threads (default: cores, at most 8)")
    fixed: dict = {}
    if ctx:
        g.add_argument("--n-ctx", type=int, default=n_ctx,
                       help=f"context tokens per stream (default: {n_ctx or 'the registry entry'})")
    else:
        fixed["n_ctx"] = n_ctx
    if gpu:
        g.add_argument("--n-gpu-layers", type=int, default=-1, help="layers to offload (-1 = all; Metal/CUDA builds)")
    else:
        fixed["n_gpu_layers"] = -1
    if layout:
        g.add_argument("--layout", choices=LAYOUTS, default=None,
                       help="the streams' layout: one context with the streams as sequences, or two contexts "
                            "(default batched)")
        g.add_argument("--variant", dest="layout", choices=LAYOUTS, help=argparse.SUPPRESS)  # its old name
    else:
        fixed["layout"] = None
    p.set_defaults(**fixed)
    return p


def model_from_args(args: argparse.Namespace) -> ModelOptions:
    return ModelOptions(args.model, args.n_ctx, args.n_gpu_layers, args.threads, args.layout)
