"""Per-token log-probs in OpenAI's shape, kept in step with the text the client is sent.

``entry`` turns the engine's ``TokenLogprobs`` into ``{"token", "logprob", "bytes", "top_logprobs"}`` (plus an
``sda`` object with the two unsteered streams' lists when asked for).  ``LogprobTrack`` hands each entry out
with the piece of text that first carries its token's text: the stop matcher may hold text back, and a token
that holds only part of a UTF-8 character has no text of its own yet.  Tokens whose text a stop sequence cut
off entirely (the stop sequence itself and what follows) get no entry, as they are not in the answer.
"""
from __future__ import annotations

from ..runtime.logprobs import StreamLogprobs, TokenLogprobs


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")  # part of a character shows as U+FFFD; ``bytes`` has it exactly


def _alternatives(top) -> list[dict]:
    return [{"token": _text(b), "logprob": lp, "bytes": list(b)} for b, lp in top]


def _stream(s: StreamLogprobs) -> tuple[float, list[dict]]:
    return s.logprob, _alternatives(s.top)


def entry(lp: TokenLogprobs) -> dict:
    d = {"token": _text(lp.token), "logprob": lp.logprob, "bytes": list(lp.token),
         "top_logprobs": _alternatives(lp.top)}
    if lp.with_instruction is not None and lp.without_instruction is not None:
        (a, top_a), (b, top_b) = _stream(lp.with_instruction), _stream(lp.without_instruction)
        d["sda"] = {"logprob_with": a, "top_logprobs_with": top_a, "logprob_without": b,
                    "top_logprobs_without": top_b}
    return d


class LogprobTrack:
    """Offsets into the answer's text: ``token`` before a token's text is fed to the stop matcher, ``sent``
    with each piece that goes out (returns the entries that piece carries), ``rest`` at a natural end."""

    def __init__(self):
        self.fed = 0        # characters fed to the stop matcher
        self.released = 0   # characters sent
        self.pending: list[tuple[int, dict]] = []  # (offset where the token's text starts, entry)

    def token(self, lp: TokenLogprobs | None, text: str) -> None:
        if lp is not None:
            self.pending.append((self.fed, entry(lp)))
        self.fed += len(text)

    def sent(self, piece: str) -> list[dict]:
        self.released += len(piece)
        out = [e for start, e in self.pending if start < self.released]
        self.pending = [(start, e) for start, e in self.pending if start >= self.released]
        return out

    def rest(self) -> list[dict]:
        """At the answer's end without a stop sequence: every entry not handed out yet (tokens with no text)."""
        out, self.pending = [e for _, e in self.pending], []
        return out
