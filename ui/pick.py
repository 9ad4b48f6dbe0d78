"""Which token of an aligned answer a click on its rendered text landed on.

The page script counts the visible non-space characters before the clicked one (``word TURN N``); the answer
as shown is its Markdown rendered (``markdown.render_markdown``), so the Markdown syntax the model wrote (``**``,
list markers, fences) is not on the page.  The visible characters are matched in order against the tokens'
text (a greedy subsequence walk), which finds the token that produced the clicked character; where Markdown
dropped characters that also occur in the text, the match may land a token or two away, never on another line.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

from .markdown import render_markdown

_SPACE = re.compile(r"\s")


class _Visible(HTMLParser):
    """The text of rendered Markdown as the page shows it, without the code blocks' Copy buttons."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0  # depth inside a Copy button

    def handle_starttag(self, tag, attrs):
        if self._skip or (tag == "button" and "sda-copy" in (dict(attrs).get("class") or "")):
            self._skip += 1

    def handle_endtag(self, tag):
        if self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Visible()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def token_at(tokens: list[dict], answer: str, n: int) -> int | None:
    """The index (``i``) of the token behind the ``n``-th visible non-space character of ``answer`` rendered;
    the last token for a character past the end; None without tokens."""
    if not tokens:
        return None
    shown = _SPACE.sub("", visible_text(render_markdown(answer)))
    n = max(0, min(int(n), len(shown) - 1))
    j = 0
    for k, t in enumerate(tokens):
        for ch in t.get("text") or "":
            if j < len(shown) and ch == shown[j]:
                if j == n:
                    return int(t.get("i", k))
                j += 1
    return int(tokens[-1].get("i", len(tokens) - 1))
