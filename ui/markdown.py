"""Model answers as Markdown (paragraphs, lists, emphasis, tables of code, links) rendered to safe HTML.

GitHub's pipe tables and ~~strikethrough~~ render too.  Model output is untrusted: raw HTML in it is shown as
text (markdown-it-py with ``html=False``), links with a ``javascript:``, ``vbscript:``, ``file:`` or ``data:`` URL
stay plain text (markdown-it's link validation), images are never loaded (an image would load from another host:
its alt text is shown instead, in ``sda-img-alt``), and links open in a new tab without a referrer.  Code blocks
get a Copy button (``app``'s page script copies the block's text).
"""
from __future__ import annotations

from functools import lru_cache
from html import escape

from markdown_it import MarkdownIt

COPY_BUTTON = '<button type="button" class="sda-copy" title="Copy the code">Copy</button>'


def _with_copy(default):
    def render(tokens, idx, options, env):
        return f'<div class="sda-code">{COPY_BUTTON}{default(tokens, idx, options, env)}</div>'
    return render


def _image_as_alt(renderer, tokens, idx, options, env):
    """An image as its alt text (escaped), never as an ``<img>``: nothing is fetched."""
    alt = renderer.renderInlineAsText(tokens[idx].children or [], options, env).strip() or "image"
    return f'<span class="sda-img-alt" title="image not loaded">{escape(alt)}</span>'


def _link_open(renderer, tokens, idx, options, env):
    tokens[idx].attrSet("target", "_blank")
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    return renderer.renderToken(tokens, idx, options, env)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    rules = md.renderer.rules
    rules["fence"] = _with_copy(rules["fence"])
    rules["code_block"] = _with_copy(rules["code_block"])
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("image", _image_as_alt)
    return md


def render_markdown(text: str) -> str:
    """``text`` as HTML; nothing in it can add markup of its own (everything the model wrote is escaped)."""
    return _parser().render(text or "")
