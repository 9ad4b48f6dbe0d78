"""Turn a stream of token byte pieces into text pieces that never split a UTF-8 character."""
from __future__ import annotations

import codecs


class Utf8Stream:
    """Feed raw token bytes; get back only complete characters.

    A multi-byte character whose bytes arrive in several tokens comes out whole with the token that
    completes it; invalid byte sequences become U+FFFD rather than an exception.
    """

    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""

    def feed(self, data: bytes) -> str:
        piece = self._dec.decode(data, final=False)
        self.text += piece
        return piece

    def flush(self) -> str:
        piece = self._dec.decode(b"", final=True)
        self.text += piece
        return piece
