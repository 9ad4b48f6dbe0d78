"""``stop`` sequences over streamed text: text is released only once it cannot be the start of a stop sequence."""
from __future__ import annotations


class StopMatcher:
    """Feed pieces of text; get back what may be sent now, and whether a stop sequence was reached (the stop
    sequence itself and everything after it are never sent, as in OpenAI's API)."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        if not self.stops:
            return piece
        text = self._held + piece
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self._held = True, ""
            return text[:cut]
        keep = 0  # the longest tail of ``text`` that begins a stop sequence
        for s in self.stops:
            for n in range(min(len(s) - 1, len(text)), keep, -1):
                if s.startswith(text[-n:]):
                    keep = n
                    break
        self._held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep]

    def flush(self) -> str:
        out, self._held = ("" if self.stopped else self._held), ""
        return out
