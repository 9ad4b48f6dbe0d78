"""Progress of a long run on stderr, drawn by tqdm: ``[truthfulqa]:  6%|▋  | 12/200 [00:23<05:57, MC2 instr 0.412]``.

On a terminal the bar is redrawn in place; elsewhere (a log, CI) at most every ``LOG_INTERVAL`` seconds and
once at the end, so a log is not flooded.
"""
from __future__ import annotations

import sys

from tqdm import tqdm

LOG_INTERVAL = 10.0  # seconds between redraws when stderr is not a terminal


class Progress(tqdm):
    """A tqdm bar labelled ``[label]``.  ``update(note=…)`` shows a short note after the counts; calling the bar
    as ``bar(done, total)`` moves it to ``done`` of ``total`` (for code that reports progress as a callback,
    such as PaLRS extraction) and closes it at the end."""

    def __init__(self, label: str, total: int | None = None, *, stream=None, enabled: bool = True):
        stream = stream or sys.stderr
        tty = bool(getattr(stream, "isatty", lambda: False)())
        super().__init__(total=total, desc=f"[{label}]", file=stream, disable=not enabled, unit="item",
                         mininterval=0.1 if tty else LOG_INTERVAL, dynamic_ncols=tty)

    def update(self, n: int = 1, note: str = "") -> bool | None:
        if note:
            self.set_postfix_str(note, refresh=False)
        return super().update(n)

    def __call__(self, done: int, total: int) -> None:
        self.total = total
        self.update(done - self.n)
        if done >= total:
            self.close()
