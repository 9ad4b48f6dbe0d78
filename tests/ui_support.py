"""Helpers for the chat UI tests: start the real app (in this process or as `python -m sda_local.chat`)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from servers import free_port, stop_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parent.parent


def controller(host, store=None, **kw):
    """A ``ChatController`` that streams without pauses (``kw``: its other options, e.g. ``export_dir``)."""
    from sda_local.ui.controller import ChatController

    return ChatController(host, stream_interval_s=0, store=store, **kw)


def start_saved_turn(host, tmp_path, text: str, **settings):
    """A controller saving to a fresh SQLite store, a new session, and a turn on ``text`` started (its first
    reply read): (controller, state, store, the turn's remaining replies, the conversation's key)."""
    from sda_local.ui.conversations import ConversationStore
    from sda_local.ui.state import SessionState

    store = ConversationStore(tmp_path / "chats.sqlite3")
    c = controller(host, store)
    st = SessionState()
    replies = c.send(st, text, **settings)
    return c, st, store, replies, next(replies)["conv_key"]


@contextmanager
def chat_page(store, shot: str):
    """The chat, served on the tiny model with ``store``, open in headless Chromium (1400×900, 60 s timeouts) at the
    empty conversation: the page.  A failing block leaves a screenshot ``ARTIFACTS/shot``; afterwards the page must
    have logged no JavaScript error."""
    from conftest import ARTIFACTS
    from playwright import sync_api

    errors: list[str] = []
    with served(store) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(60_000)
        try:
            page.goto(url)
            page.wait_for_selector("#sda-chat .sda-empty")
            yield page
        except Exception:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
            raise
        finally:
            browser.close()
    assert not errors, errors  # the page logged no JavaScript error


def set_max_tokens(page, n: int) -> None:
    """Set Advanced settings → max tokens to ``n`` in the chat page (opening and closing the accordion)."""
    page.get_by_text("Advanced settings").click()
    box = page.locator("#sda-max-tokens input[type=number]")
    box.fill(str(n))
    box.press("Enter")
    page.get_by_text("Advanced settings").click()


def require_browser():
    """Playwright's sync API, for a browser test module to call at import: the module is skipped where
    Chromium or Playwright is missing outside CI, and fails under CI (there it must run)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing under CI: .ci/run installs Debian's chromium", pytrace=False)
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
    try:
        from playwright import sync_api
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("Playwright for Python is missing under CI: it comes with the [dev] extra", pytrace=False)
        pytest.skip("Playwright for Python is not installed (pip install -e '.[dev]')", allow_module_level=True)
    return sync_api


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the chat exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.5)


@contextmanager
def app_in_process(host, store=None, max_size: int = 64):
    """``build_app(host)`` (conversations in ``store`` when given) launched on a free 127.0.0.1 port in this
    process; yields (URL, Blocks)."""
    from sda_local.ui.app import build_app
    from sda_local.ui.offline import launch_kwargs

    demo = build_app(host, store=store)
    demo.queue(max_size=max_size)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, inbrowser=False,
                **launch_kwargs())
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url, 60)
        yield url, demo
    finally:
        demo.close()


@contextmanager
def served(store, n_ctx: int = 1024):
    """The chat on SmolLM2 (one thread) with conversations in ``store``, launched in this process on a free port;
    yields its URL."""
    from sda_local.ui.host import ModelHost

    host = ModelHost(None, n_ctx=n_ctx, n_threads=1)
    try:
        with app_in_process(host, store=store, max_size=16) as (url, _):
            yield url
    finally:
        host.close()


@contextmanager
def app_subprocess(*args: str, env: dict | None = None, log: Path | None = None, timeout: float = 240,
                   port: int | None = None):
    """``python -m sda_local.chat --port PORT ARGS`` (default: a free port) as a separate process; yields
    (url, process)."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "sda_local.chat", "--port", str(port), *args]
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=REPO)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url, timeout, proc)
        yield url, proc
    finally:
        stop_process(proc)
        if log:
            out.close()
