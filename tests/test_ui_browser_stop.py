"""Issue 29's Stop fixes in a real headless Chromium (Debian's /usr/bin/chromium, Playwright for Python), on the app
built in this process with SmolLM2 and a conversation database under tmp_path, with the default settings (λ per
preset: both answers stream at once): Stop about a second into a long answer keeps the base answer that was on
screen (shown under a "stopped" note, saved), and Stop right after Enter keeps the message, as a stopped turn, in
the page and in the database.  And the smaller fixes as the page shows them: muted notes and headers at 4.5:1 or
more on their background and 12 px or more, Copy answer and ‹ › at 24 px or more, a wide table scrolling inside
its answer, Enter in the title field renaming, a search with no match saying so.  The page logs no JavaScript
error.  A reload mid-answer: test_ui_browser_turns."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from ui_support import chat_page, require_browser, set_max_tokens

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated:DeprecationWarning"),
]

sync_api = require_browser()

TIMEOUT_MS = 240_000
STORY = "Write a long story about a dragon."
QUESTION = "What is the capital of Peru?"
LIVE_BASE = "() => document.querySelector('#sda-chat .sda-live .sda-base .sda-md')?.innerText.trim().length || 0"
IDLE = "() => !document.querySelector('#sda-chat .sda-live')"


def _stop_keeps_the_base_answer(page, store) -> None:
    entry = page.locator("#sda-input textarea")
    entry.fill(STORY)
    entry.press("Enter")
    page.wait_for_function(f"() => ({LIVE_BASE})() > 40", timeout=TIMEOUT_MS)
    shown = page.locator("#sda-chat .sda-live .sda-base .sda-md").inner_text().strip()
    page.locator("#sda-stop").click()
    page.wait_for_function(IDLE, timeout=TIMEOUT_MS)
    turn = page.locator('#sda-chat .sda-turn[data-turn="1"]')
    assert turn.get_attribute("data-phase") == "stopped"
    kept = turn.locator(".sda-base .sda-md").inner_text().strip()
    assert kept and kept[:40] == shown[:40], (kept, shown)  # the base column is not blanked
    assert turn.locator(".sda-base .sda-cut").inner_text() == "stopped"
    assert "base 0.00 s" not in turn.locator(".sda-timings").inner_text()
    (summary,) = store.list()
    (saved,) = store.load(summary.id)[1]["turns"]
    assert saved["user"] == STORY and saved["finish_reason"] == "stopped"
    assert saved["base"] and saved["base"][:30] == shown[:30] and saved["base_finish_reason"] == "stopped"


def _stop_right_after_enter_keeps_the_message(page, store) -> None:
    entry = page.locator("#sda-input textarea")
    entry.fill(QUESTION)
    entry.press("Enter")
    page.locator("#sda-stop").click()  # as soon as Send has become Stop
    page.wait_for_function(IDLE, timeout=TIMEOUT_MS)
    turn = page.locator('#sda-chat .sda-turn[data-turn="2"]')
    turn.wait_for()
    assert turn.locator(".sda-user .sda-txt").inner_text() == QUESTION
    assert turn.get_attribute("data-phase") == "stopped"
    status = page.locator("#sda-status").inner_text()
    assert "was kept" in status and "nothing new" not in status, status
    assert entry.input_value() == ""  # the message is in the chat, not back in the box
    (summary,) = store.list()
    turns = store.load(summary.id)[1]["turns"]
    assert [(t["user"], t["finish_reason"]) for t in turns] == [(STORY, "stopped"), (QUESTION, "stopped")]


# the contrast of an element's text on what is behind it (WCAG 2), and its font size in px
CONTRAST = """(el) => {
  const parse = (c) => {
    let m = c.match(/rgba?\\(([^)]+)\\)/);
    if (m) {
      const v = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
      return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1];
    }
    m = c.match(/color\\(srgb ([^)]+)\\)/);
    if (m) {
      const v = m[1].split(/[ \\/]+/).filter(Boolean).map(Number);
      return [v[0] * 255, v[1] * 255, v[2] * 255, v.length > 3 ? v[3] : 1];
    }
    throw new Error('unknown colour ' + c);
  };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) layers.push(c);
    if (c[3] >= 1) break;
  }
  let bg = [255, 255, 255, 1];
  for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
  const fg = over(parse(getComputedStyle(el).color), bg);
  const lum = (c) => c.slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 :
    Math.pow((v + 0.055) / 1.055, 2.4); }).reduce((s, v, i) => s + [0.2126, 0.7152, 0.0722][i] * v, 0);
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  const style = getComputedStyle(el);
  return {ratio: (a + 0.05) / (b + 0.05), px: parseFloat(style.fontSize), color: style.color};
}"""
WIDE = "| " + " | ".join(f"column {i} heading" for i in range(14)) + " |\n|" + "---|" * 14 + "\n| " + \
    " | ".join(f"value{i}" for i in range(14)) + " |\n"


def _turn_dict(aligned: str, **kw) -> dict:
    return {"user": "A wide table?", "base": "short", "aligned": aligned, "score": None, "lam": 0.3,
            "lam_source": "fixed", "evaluator": "fixed", "warnings": [], "settings": {"preset": {"name": "x"}},
            "timings": {}, "aligned_tokens": [], "finish_reason": "stop", **kw}


def _legible(page) -> None:
    """The stopped turn's headers and notes: 4.5:1 or more, 12 px or more; Copy answer 24 px or more."""
    turn = '#sda-chat .sda-turn[data-turn="1"] '
    for sel in (".sda-user .sda-who", ".sda-base .sda-who", ".sda-aligned .sda-who", ".sda-timings",
                ".sda-base .sda-cut"):
        got = page.locator(turn + sel).evaluate(CONTRAST)
        assert got["ratio"] >= 4.5 and got["px"] >= 12, (sel, got)
    copy = page.locator(turn + ".sda-aligned .sda-copy-answer").bounding_box()
    assert copy["height"] >= 24 and copy["width"] >= 24, copy
    assert page.locator(turn + ".sda-aligned .sda-copy-answer").evaluate(CONTRAST)["px"] >= 12


def _wide_table_and_arrows(page, tmp_path: Path) -> None:
    """An imported turn with a wide table and two versions: the table scrolls inside its answer (the columns stay
    equal), and ‹ is 24 px or more."""
    older = _turn_dict("an older answer")
    data = {"format": "sda-local-chat/1", "turns": [_turn_dict(WIDE, versions=[[older], None], version=2)]}
    path = tmp_path / "wide.json"
    path.write_text(json.dumps(data), "utf-8")
    with page.expect_file_chooser() as chooser:
        page.locator("#sda-import").click()
    chooser.value.set_files(str(path))
    turn = page.locator('#sda-chat .sda-turn[data-turn="1"]')
    table = turn.locator(".sda-aligned .sda-md table")
    table.wait_for(timeout=60_000)
    sizes = table.evaluate("(t) => ({scroll: t.scrollWidth, shown: t.clientWidth})")
    assert sizes["scroll"] > sizes["shown"] + 50, sizes  # it scrolls inside its answer
    base, aligned = turn.locator(".sda-base").bounding_box(), turn.locator(".sda-aligned").bounding_box()
    pair = turn.locator(".sda-pair").bounding_box()
    assert abs(base["width"] - aligned["width"]) < 2  # the table did not widen its column
    assert aligned["x"] + aligned["width"] <= pair["x"] + pair["width"] + 1
    back = turn.locator(".sda-ver-back").bounding_box()
    assert back["height"] >= 24 and back["width"] >= 24, back


def _title_and_search(page) -> None:
    title = page.locator("#sda-conv-title textarea, #sda-conv-title input").first
    title.fill("Dragons and Peru")
    title.press("Enter")  # Enter renames, as Rename does
    page.wait_for_function("() => document.querySelector('#sda-status').innerText.includes('Renamed')")
    search = page.locator("#sda-conv-search textarea, #sda-conv-search input").first
    search.fill("zebra quux")
    page.wait_for_function("() => document.querySelector('#sda-status').innerText.includes('no saved conversation "
                           "matches')")


def test_stop_keeps_what_was_on_screen_in_headless_chromium(tmp_path):
    from sda_local.ui.conversations import ConversationStore

    store = ConversationStore(tmp_path / "chats.sqlite3")
    with chat_page(store, "ui-stop-failed.png") as page:
        set_max_tokens(page, 600)
        _stop_keeps_the_base_answer(page, store)
        _stop_right_after_enter_keeps_the_message(page, store)
        _legible(page)
        _title_and_search(page)
        _wide_table_and_arrows(page, tmp_path)
