"""Process-level allocator tuning for the per-token numpy work.

Each SDA step allocates a few vocabulary-sized temporaries (n_vocab × 4 bytes, 0.2–1 MB).  glibc serves
blocks that large with fresh mmap()s, so every step page-faults its memory in again; that doubled the cost of
a step here (0.79 → 0.44 ms at 49k vocab).  Raising the mmap and trim thresholds keeps those blocks on the
heap.  Linux/glibc only; elsewhere this does nothing.  Nothing happens on import: ``backend.configure_process``
calls ``tune_allocator`` when the first model is loaded (and the benchmark calls it before timing core).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def tune_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 128 << 20) -> bool:
    """Raise glibc's mmap and trim thresholds (once per process); True when they are set."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    _done = ok
    return ok
