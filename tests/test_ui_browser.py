"""End to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright for Python).

Starts `python -m sda_local.chat` as a user would (conversations in a database under tmp_path), picks a preset,
types a two-line message (Shift+Enter adds the line, Enter sends it), waits for the base answer, the score and λ,
then the aligned answer; clicks a token of it and reads the inspector's three top-5 lists; checks the per-token
plot, exports the chat and reads the JSON back, sends a second message with the Send button; reloads the page and
restarts the app (the conversation comes back both times); votes in arena mode, exports the preferences and runs
`sda-local palrs extract --pairs` on that file; imports answers full of injection payloads (rendered as Markdown,
nothing executes, the text stays visible).  Screenshots go to test-artifacts/; with SDA_UPDATE_SCREENSHOT=1 the
README's docs/screenshot.png is replaced by this run's.  Skipped only where Chromium is missing outside CI; under
CI it must run.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import ARTIFACTS
from servers import free_port
from ui_support import CHROMIUM, CHROMIUM_ARGS, REPO, app_subprocess, require_browser

pytestmark = pytest.mark.slow

sync_api = require_browser()

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
# the legend under the plot, on screen: coloured symbols in the canvas's last 12 rows (the axis title above it is
# grey), and the canvas ends inside its block (with a fixed height it ran past it and the legend was cut off)
PLOT_HAS_LEGEND = """() => {
  const c = document.querySelector('#sda-plot canvas');
  if (!c || c.height < 24) return false;
  if (c.getBoundingClientRect().bottom > document.querySelector('#sda-plot').getBoundingClientRect().bottom) return false;
  const d = c.getContext('2d').getImageData(0, c.height - 12, c.width, 12).data;
  let coloured = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) coloured++;
  }
  return coloured > 20;
}"""


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

    # the plot and table sit in a closed accordion (the conversation has the space): open it
    page.locator("#sda-plot-box").get_by_text("Per-token plot and table").click()
    # the per-token plot rendered (Vega draws a canvas or an svg) and the token table has rows
    page.wait_for_selector("#sda-plot canvas", timeout=60_000)
    box = page.locator("#sda-plot canvas").first.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 50
    # lines were drawn: the canvas holds many coloured (not grey or white) pixels
    page.wait_for_function(PLOT_HAS_LINES, timeout=60_000)
    page.wait_for_function(PLOT_HAS_LEGEND, timeout=10_000)  # which line is which
    assert page.locator("#sda-token-table tbody tr").count() >= 1
    page.locator("#sda-plot-box").get_by_text("Per-token plot and table").click()  # closed again
    return aligned


def _inspect_a_token(page) -> None:
    """Clicking a token of the aligned answer shows the three top-5 lists, JS, T and the removals."""
    tokens = page.locator("#sda-inspector .sda-tok")
    tokens.first.wait_for()
    assert tokens.count() >= 2
    tokens.nth(1).click()
    page.locator("#sda-inspector .sda-tok-sel").wait_for()
    lists = page.locator("#sda-inspector .sda-top")
    lists.nth(2).wait_for()
    assert [lists.nth(i).get_attribute("data-list") for i in range(3)] == ["instructed", "uninstructed", "steered"]
    for i in range(3):
        rows = lists.nth(i).locator("tr")
        assert rows.count() == 5  # plausibility α is 0 here: nothing removed, five candidates each
        assert all(0 <= float(rows.nth(j).locator(".sda-top-p").inner_text()) <= 1 for j in range(5))
    detail = page.locator("#sda-inspector .sda-detail").inner_text()
    assert "JS divergence" in detail and "temperature T" in detail and "no candidates removed" in detail


def _toggle_base(page) -> None:
    page.locator("#sda-show-base input").uncheck()
    page.wait_for_selector("#sda-chat .sda-chat.hide-base")
    assert not page.locator("#sda-chat .sda-base").first.is_visible()
    page.locator("#sda-show-base input").check()
    page.wait_for_selector("#sda-chat .sda-chat:not(.hide-base)")


def _export(page, path: Path, aligned: str) -> None:
    """The JSON file downloads and holds the turn, with each aligned token's top-5 lists."""
    assert not page.locator("#sda-export-file").is_visible()  # no empty file box before there is a file
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
    top = turn["aligned_tokens"][0]["top"]
    assert all(len(top[k]) == 5 for k in ("instructed", "uninstructed", "steered")) and "js" in top


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
    assert "λ = 0.500" in second.locator(".sda-meta").inner_text()


def _screenshot(page) -> None:
    """The README's picture: two turns (λ > 0) and the inspector showing a token's lists."""
    page.locator('#sda-chat .sda-turn[data-turn="2"] [data-act="turn 2"]').click()
    page.locator("#sda-inspector .sda-strip[data-turn='2'] .sda-tok").nth(2).click()
    page.locator("#sda-inspector .sda-top").nth(2).wait_for()
    page.get_by_text("Advanced settings").click()  # closed: the picture shows the chat, not every slider
    page.evaluate("window.scrollTo(0, 0)")
    shot = ARTIFACTS / "ui-chat.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("SDA_UPDATE_SCREENSHOT") == "1":
        shutil.copy(shot, REPO / "docs" / "screenshot.png")


def _conversation_is_back(page, n_turns: int) -> None:
    page.locator(f'#sda-chat .sda-turn[data-turn="{n_turns}"][data-phase="done"]').wait_for(timeout=60_000)
    assert page.locator("#sda-chat .sda-turn").count() == n_turns
    assert page.locator("#sda-chat .sda-user .sda-txt").first.inner_text() == QUESTION
    assert "Resumed" in page.locator("#sda-status").inner_text()
    page.locator("#sda-conv-pick input").click()  # it is in the saved list too
    assert page.locator("ul.options li", has_text="How can I get back").count() == 1
    page.keyboard.press("Escape")


def _arena(page, tmp_path: Path) -> None:
    """Blind A/B, a vote, the preferences file, and `sda-local palrs extract --pairs` on it."""
    page.locator("#sda-arena input").check()
    page.wait_for_selector("#sda-chat .sda-chat.arena")
    entry = page.locator("#sda-input textarea")
    entry.fill("Give me one tip for a tidy desk.")
    entry.press("Enter")
    turn = page.locator('#sda-chat .sda-turn[data-turn="3"][data-phase="done"]')
    turn.wait_for(timeout=TIMEOUT_MS)
    heads = [h.replace("Copy answer", "") for h in turn.locator(".sda-answer .sda-who").all_text_contents()]
    assert heads == ["Answer A", "Answer B"]  # no labels before the vote
    assert "Arena: vote on turn 3 first" in page.locator("#sda-inspector").inner_text()
    turn.locator('[data-act="vote 3 A"]').click()
    page.locator('#sda-chat .sda-turn[data-turn="3"][data-vote="A"]').wait_for()
    named = [h.replace("Copy answer", "") for h in
             page.locator('#sda-chat .sda-turn[data-turn="3"] .sda-answer .sda-who').all_text_contents()]
    assert sorted(named) == ["Answer A · SDA (aligned)", "Answer B · base"] or \
        sorted(named) == ["Answer A · base", "Answer B · SDA (aligned)"]
    page.locator("#sda-export-prefs").click()
    report = page.locator("#sda-prefs-report")
    report.wait_for()
    assert "N = 1" in report.inner_text()
    link = page.locator("#sda-prefs-file a").first
    link.wait_for()
    with page.expect_download() as dl:
        link.click()
    prefs = tmp_path / "prefs.jsonl"
    dl.value.save_as(prefs)
    (pair,) = [json.loads(line) for line in prefs.read_text("utf-8").splitlines()]
    assert pair["prompt"] == "Give me one tip for a tidy desk." and pair["chosen"] != pair["rejected"]
    r = subprocess.run([sys.executable, "-m", "sda_local.cli", "palrs", "extract", "--pairs", str(prefs), "--out",
                        str(tmp_path / "taste.gguf"), "--quiet", "--threads", "1"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "from 1 pairs" in r.stdout, r.stderr[-2000:]
    page.locator("#sda-arena input").uncheck()


PAYLOAD = ("A list:\n\n- one\n- **two**\n\n<script>window.sdaPwned = 1; alert('script')</script>\n\n"
           "<img src=x onerror=\"window.sdaPwned = 2; alert('img')\">\n\n[click me](javascript:window.sdaPwned=3)\n\n"
           "```python\nprint('hi')\n```\n")


def _injection(page, tmp_path: Path, dialogs: list) -> None:
    """Answers full of HTML and script payloads (imported, as a shared chat file would be): rendered as Markdown,
    the payloads shown as text, nothing runs; the code block's Copy button copies its text."""
    turn = {"user": "<b>not bold</b>", "base": PAYLOAD, "aligned": PAYLOAD, "score": None, "lam": 0.3,
            "lam_source": "fixed", "evaluator": "fixed", "warnings": ["<img src=y onerror=alert(4)>"],
            "settings": {"preset": {"name": "<i>x</i>"}}, "timings": {}, "aligned_tokens": [],
            "finish_reason": "stop"}
    path = tmp_path / "payload.json"
    path.write_text(json.dumps({"format": "sda-local-chat/1", "turns": [turn]}), "utf-8")
    with page.expect_file_chooser() as chooser:
        page.locator("#sda-import").click()
    chooser.value.set_files(str(path))
    aligned = page.locator('#sda-chat .sda-turn[data-turn="1"] .sda-aligned .sda-md')
    aligned.locator("li").nth(1).wait_for(timeout=60_000)
    assert aligned.locator("li strong").inner_text() == "two"  # Markdown rendered
    text = aligned.inner_text()
    assert "<script>window.sdaPwned = 1;" in text and "<img src=x onerror=" in text  # shown, as text
    assert "[click me](javascript:window.sdaPwned=3)" in text
    chat = page.locator("#sda-chat")
    assert chat.locator("script").count() == 0 and chat.locator("img").count() == 0
    assert chat.locator("a[href^='javascript' i]").count() == 0
    assert "<b>not bold</b>" in chat.locator(".sda-user").inner_text()
    aligned.get_by_text("click me").click()
    copy = aligned.locator(".sda-code .sda-copy")
    copy.click()
    page.wait_for_function("() => document.querySelector('#sda-chat .sda-aligned .sda-copy')"
                           ".textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == "print('hi')\n"
    page.wait_for_timeout(500)
    assert page.evaluate("window.sdaPwned") is None and not dialogs


ARGS = ("--n-ctx", "1024", "--threads", "1")


def test_chat_in_headless_chromium(tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {"SDA_LOCAL_CONFIG": str(tmp_path / "config"), "GRADIO_ANALYTICS_ENABLED": "False",
           "SDA_LOCAL_CHAT_DB": str(tmp_path / "chats.sqlite3")}
    log = ARTIFACTS / "ui-browser-app.log"
    port = free_port()  # the same port after the restart: the tab's sessionStorage belongs to its origin
    external: list[str] = []
    dialogs: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        try:
            page.on("request", lambda r: external.append(r.url)
                    if urlparse(r.url).hostname not in ("127.0.0.1", "localhost", None) and
                    not r.url.startswith(("data:", "blob:")) else None)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.set_default_timeout(60_000)
            with app_subprocess(*ARGS, env=env, log=log, port=port) as (url, _proc):
                context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url.rstrip("/"))
                page.goto(url)
                page.wait_for_selector("#sda-chat .sda-empty")
                assert not page.locator("#sda-plot").is_visible()  # before the first turn: no empty plot
                _settings(page)
                _send_with_the_keyboard(page)
                aligned = _first_turn(page)
                _inspect_a_token(page)
                _toggle_base(page)
                _export(page, tmp_path / "export.json", aligned)
                _send_with_the_button(page)
                _screenshot(page)
                page.reload()
                _conversation_is_back(page, 2)
            with app_subprocess(*ARGS, env=env, log=ARTIFACTS / "ui-browser-app-2.log", port=port) as (url, _proc):
                page.reload()
                _conversation_is_back(page, 2)
                page.locator("#sda-evaluator label", has_text="Fixed score / λ").click()
                page.get_by_text("Advanced settings").click()
                _set_slider(page, "sda-max-tokens", 16)
                _arena(page, tmp_path)
                _injection(page, tmp_path, dialogs)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "ui-chat-failed.png"), full_page=True)  # what went wrong
            raise
        finally:
            browser.close()
    assert not external, f"the page fetched from outside this machine: {external[:5]}"
    assert not errors, f"the page logged JavaScript errors: {errors[:5]}"
    shutil.copy(log, ARTIFACTS / "ui-browser-app.last.log")
