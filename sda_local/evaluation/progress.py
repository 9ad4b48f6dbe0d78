"""A small progress line on stderr: ``[truthfulqa] 12/200  6%  1.9 s/item  ETA 5m57s``.

On a terminal the line is redrawn in place; otherwise (logs, CI) a line is printed every ``every`` items.
"""
from __future__ import annotations

import sys
import time


def _fmt_eta(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    def __init__(self, label: str, total: int, stream=None, every: int = 10, enabled: bool = True):
        self.label, self.total, self.n = label, int(total), 0
        self.stream = stream or sys.stderr
        self.every = max(1, int(every))
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0 = time.perf_counter()

    def line(self, note: str = "") -> str:
        el = time.perf_counter() - self._t0
        per = el / self.n if self.n else 0.0
        eta = per * (self.total - self.n)
        share = f"{100 * self.n / self.total:3.0f}%" if self.total else ""
        return (f"[{self.label}] {self.n}/{self.total} {share}  {per:.2f} s/item  ETA {_fmt_eta(eta)}"
                + (f"  {note}" if note else ""))

    def update(self, n: int = 1, note: str = "") -> None:
        self.n += n
        if not self.enabled:
            return
        if self.tty:
            print("\r" + self.line(note)[:150].ljust(80), end="", file=self.stream, flush=True)
        elif self.n % self.every == 0 or self.n == self.total:
            print(self.line(note), file=self.stream, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=self.stream, flush=True)
