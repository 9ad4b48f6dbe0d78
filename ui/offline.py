"""Keep the page from reaching outside this machine.

Gradio's page template loads an iframe-resizer script from a public CDN and preconnects to a web-font host;
neither is needed here (the chat is not embedded, and its theme uses system fonts).  This ASGI middleware
removes those tags from the HTML the server sends, so opening the chat makes no request to any other host.
Analytics are off separately (``GRADIO_ANALYTICS_ENABLED=False``, ``analytics_enabled=False``).
"""
from __future__ import annotations

import re

_EXTERNAL_TAGS = re.compile(
    rb'<script[^>]*\ssrc="https?://[^"]+"[^>]*>\s*</script>'       # scripts from other hosts
    rb'|<link[^>]*\srel="preconnect"[^>]*>',                          # preconnects (font CDNs)
    re.I | re.S)


def strip_external(html: bytes) -> bytes:
    return _EXTERNAL_TAGS.sub(b"", html)


class StripExternalTags:
    """ASGI middleware: buffers ``text/html`` responses only and drops tags that load from other hosts."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def wrapped(message):
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"text/html"):
                    start = message
                    return
                await send(message)
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = strip_external(b"".join(chunks))
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, receive, wrapped)


def launch_kwargs() -> dict:
    """Extra ``Blocks.launch`` arguments: the middleware above on Gradio's FastAPI app."""
    from starlette.middleware import Middleware

    return {"app_kwargs": {"middleware": [Middleware(StripExternalTags)]}}
