"""Model answers as Markdown (paragraphs, lists, emphasis, tables of code, links) rendered to safe HTML.

Model output is untrusted: raw HTML in it is shown as text (markdown-it-py with ``html=False``), links with a
``javascript:``, ``vbscript:``, ``file:`` or ``data:`` URL stay plain text (markdown-it's link validation), images
are not rendered (an image would load from another host; its Markdown shows as a link), and links open in a new
tab without a referrer.  Code blocks get a Copy button (``app``'s page script copies the block's text).
"""
from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt

COPY_BUTTON = '<button type="button" class="sda-copy" title="Copy the code">Copy</button>'


def _with_copy(default):
    def render(tokens, idx, options, env):
        return f'<div class="sda-code">{COPY_BUTTON}{default(tokens, idx, options, env)}</div>'
    return render


def _link_open(renderer, tokens, idx, options, env):
    tokens[idx].attrSet("target", "_blank")
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    return renderer.renderToken(tokens, idx, options, env)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).disable("image")
    rules = md.renderer.rules
    rules["fence"] = _with_copy(rules["fence"])
    rules["code_block"] = _with_copy(rules["code_block"])
    md.add_render_rule("link_open", _link_open)
    return md


def render_markdown(text: str) -> str:
    """``text`` as HTML; nothing in it can add markup of its own (everything the model wrote is escaped)."""
    return _parser().render(text or "")
