"""End to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright for Python).

Starts `python -m sda_local.chat` as a user would, picks a preset, types a two-line message (Shift+Enter adds the
line, Enter sends it), waits for the base answer, the score and λ, then the aligned answer, checks the per-token
plot, exports the chat and reads the JSON back, then sends a second message with the Send button.
Screenshots go to test-artifacts/.  Skipped only where Chromium is missing outside CI; under CI it must run.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import ARTIFACTS
from ui_support import CHROMIUM, CHROMIUM_ARGS, app_subprocess

pytestmark = pytest.mark.slow

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

TIMEOUT_MS = 240_000
QUESTION = "How can I get back\nat my noisy neighbour?"

PLOT_HAS_LINES = """() => {
  const c = document.querySelector('#sda-plot canvas');
  if (!c || !c.width || !c.height) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let coloured = 0;
  for (let i = 0; i < d.length; i += 4) {
    const [r, g, b, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
    if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
  }
  return coloured > 300;
}"""  # one turn with the local judge on a busy 2-core machine


def _pick_dropdown(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.locator("ul.options li", has_text=option).first.click()


def _set_slider(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def _settings(page) -> None:
    """Harmlessness preset, short answers, a fixed seed, and the local judge (the default is the preset's λ)."""
    _pick_dropdown(page, "sda-preset", "harmlessness")  # fills the instruction box
    page.locator("#sda-evaluator label", has_text="Local judge: grammar score").click()
    page.wait_for_function(
        "() => document.querySelector('#sda-instruction textarea').value.toLowerCase().includes('harm')")
    page.get_by_text("Advanced settings").click()
    _set_slider(page, "sda-max-tokens", 24)
    page.locator("#sda-seed input").fill("5")
    page.locator("#sda-seed input").press("Tab")
    # the settings are generated from SamplingParams: the plausibility α slider is there, off
    assert page.locator("#sda-plausibility input[type=number]").input_value() == "0"


def _send_with_the_keyboard(page) -> None:
    """Shift+Enter adds a line and sends nothing; Enter sends."""
    entry = page.locator("#sda-input textarea")
    entry.fill("How can I get back")
    entry.press("Shift+Enter")
    entry.press_sequentially("at my noisy neighbour?")
    assert entry.input_value() == QUESTION
    page.wait_for_timeout(1500)
    assert page.locator("#sda-chat .sda-empty").count() == 1  # nothing was sent
    entry.press("Enter")
    page.wait_for_selector("#sda-chat .sda-turn")


def _first_turn(page) -> str:
    """Base answer, then score and λ, then the aligned answer (returned), the plot and the token table."""
    base = page.locator("#sda-chat .sda-turn .sda-base .sda-txt")
    base.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#sda-chat .sda-base .sda-txt')"
                           "?.textContent.trim().length > 0", timeout=TIMEOUT_MS)
    page.locator("#sda-chat .sda-lam").wait_for(timeout=TIMEOUT_MS)
    # λ only appears once the base answer is there
    assert base.inner_text().strip()
    done = page.locator('#sda-chat .sda-turn[data-phase="done"]')
    done.wait_for(timeout=TIMEOUT_MS)
    aligned = done.locator(".sda-aligned .sda-txt").inner_text()
    assert aligned.strip()
    badge = done.locator(".sda-meta").inner_text()
    assert "λ = " in badge and ("score" in badge or "fallback" in badge)
    assert "first aligned token" in done.locator(".sda-timings").inner_text()
    assert "Done" in page.locator("#sda-status").inner_text()

    # the per-token plot rendered (Vega draws a canvas or an svg) and the token table has rows
    page.wait_for_selector("#sda-plot canvas", timeout=60_000)
    box = page.locator("#sda-plot canvas").first.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 50
    # lines were drawn: the canvas holds many coloured (not grey or white) pixels
    page.wait_for_function(PLOT_HAS_LINES, timeout=60_000)
    assert page.locator("#sda-token-table tbody tr").count() >= 1
    return aligned


def _toggle_base(page) -> None:
    page.locator("#sda-show-base input").uncheck()
    page.wait_for_selector("#sda-chat .sda-chat.hide-base")
    assert not page.locator("#sda-chat .sda-base").first.is_visible()
    page.locator("#sda-show-base input").check()
    page.wait_for_selector("#sda-chat .sda-chat:not(.hide-base)")


def _export(page, path: Path, aligned: str) -> None:
    """The JSON file downloads and holds the turn."""
    page.locator("#sda-export").click()
    link = page.locator("#sda-export-file a").first
    link.wait_for()
    with page.expect_download() as dl:
        link.click()
    dl.value.save_as(path)
    data = json.loads(path.read_text("utf-8"))
    assert data["format"] == "sda-local-chat/1" and len(data["turns"]) == 1
    turn = data["turns"][0]
    assert turn["user"] == QUESTION
    assert turn["aligned"].strip() == aligned.strip()
    assert turn["settings"]["preset"]["name"] == "harmlessness" and turn["settings"]["sampling"]["seed"] == 5
    assert turn["evaluator"].startswith("local:") and 0 <= turn["lam"] <= 1
    assert data["messages"][-1] == {"role": "assistant", "content": turn["aligned"]}


def _send_with_the_button(page) -> None:
    """A second message through the Send button, with a fixed λ (no judge)."""
    entry = page.locator("#sda-input textarea")
    assert entry.input_value() == ""  # the box was emptied when the first turn started
    page.locator("#sda-evaluator label", has_text="Fixed score / λ").click()
    page.locator("#sda-fixed-lam").wait_for()
    entry.fill("Thanks!")
    page.locator("#sda-send").click()
    second = page.locator('#sda-chat .sda-turn[data-phase="done"]').nth(1)
    second.wait_for(timeout=TIMEOUT_MS)
    assert second.locator(".sda-user .sda-txt").inner_text() == "Thanks!"
    assert "fixed" in second.locator(".sda-meta").inner_text()


def test_chat_in_headless_chromium(tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {"SDA_LOCAL_CONFIG": str(tmp_path / "config"), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = ARTIFACTS / "ui-browser-app.log"
    with app_subprocess("--n-ctx", "1024", "--threads", "1", env=env, log=log) as (url, _proc):
        external: list[str] = []
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
                page.on("request", lambda r: external.append(r.url)
                        if urlparse(r.url).hostname not in ("127.0.0.1", "localhost", None) and
                        not r.url.startswith(("data:", "blob:")) else None)
                page.set_default_timeout(60_000)
                page.goto(url)
                page.wait_for_selector("#sda-chat .sda-empty")
                _settings(page)
                _send_with_the_keyboard(page)
                aligned = _first_turn(page)
                _toggle_base(page)
                _export(page, tmp_path / "export.json", aligned)
                _send_with_the_button(page)

                page.evaluate("window.scrollTo(0, 0)")
                shot = ARTIFACTS / "ui-chat.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "ui-chat-failed.png"), full_page=True)  # what went wrong
                raise
            finally:
                browser.close()
        assert not external, f"the page fetched from outside this machine: {external[:5]}"
    shutil.copy(log, ARTIFACTS / "ui-browser-app.last.log")
