"""The page script (run once when the page loads): clicks, copying, the conversation pane's scrolling.

- A click on anything carrying ``data-act`` (a token, "inspect tokens", "edit", a version's ‹ ›, a vote button)
  writes that action and the click time into the hidden ``#sda-action`` box, which runs ``ChatController.act``.
  A click on a word of an aligned answer (an element with ``data-pick="TURN"``) sends ``word TURN N``: N counts
  the visible non-space characters before the clicked one, which ``pick.token_at`` maps to the token.  A click in
  the conversation that asks for the inspector scrolls the page to it (opening its accordion if it was closed).
- The evaluator's choices get their one-line tooltips (``controls.EVALUATOR_TIPS``).
- A code block's Copy button copies the block's text; an answer's **Copy answer** button its whole text.
- The conversation (``#sda-chat``) scrolls in its own pane and sticks to its bottom while an answer streams,
  unless the user scrolled up; a new turn (sent, opened, resumed) scrolls it to the bottom.

Model text never reaches this script as code: it only reads the page's text and its own data attributes.
"""
from __future__ import annotations

import json

STICK_PX = 48  # within this many pixels of the bottom, the pane counts as "at the bottom" and follows the answer

PAGE_JS = """() => {
  if (window.sdaWired) return;
  window.sdaWired = true;
  const act = (action) => {
    const box = document.querySelector('#sda-action textarea');
    if (!box) return;
    box.value = action + ' ' + Date.now();
    box.dispatchEvent(new Event('input', {bubbles: true}));
  };
  const revealInspector = () => {
    const box = document.querySelector('#sda-inspector-box');
    if (!box) return;
    const label = box.querySelector('.label-wrap');
    if (label && !label.classList.contains('open')) label.click();
    box.scrollIntoView({block: 'start'});
  };
  const copied = (button, label) => () => {
    button.textContent = 'Copied';
    setTimeout(() => { button.textContent = label; }, 1500);
  };
  const copy = (button, text, label) => {
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(copied(button, label), copied(button, label));
  };
  // the visible non-space characters of an answer before the one at (x, y); null if (x, y) is on no text
  const charsBefore = (md, x, y) => {
    const at = document.caretRangeFromPoint ? document.caretRangeFromPoint(x, y) : null;
    if (!at || at.startContainer.nodeType !== Node.TEXT_NODE || !md.contains(at.startContainer)) return null;
    const walker = document.createTreeWalker(md, NodeFilter.SHOW_TEXT);
    let n = 0;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest('.sda-copy')) continue;
      if (node !== at.startContainer) { n += node.data.replace(/\\s/g, '').length; continue; }
      let off = at.startOffset;  // the caret sits between characters: step back onto a word just ended
      if (off > 0 && (off === node.data.length || /\\s/.test(node.data[off]))) off -= 1;
      return n + node.data.slice(0, off).replace(/\\s/g, '').length;
    }
    return null;
  };
  document.addEventListener('click', (e) => {
    const code = e.target.closest('.sda-copy');
    if (code) {
      const block = code.parentElement.querySelector('code');
      if (block) copy(code, block.innerText, 'Copy');
      return;
    }
    const whole = e.target.closest('.sda-copy-answer');
    if (whole) {
      const md = whole.closest('.sda-aligned, .sda-base, .sda-answer')?.querySelector('.sda-md');
      if (md) copy(whole, md.dataset.text ?? md.innerText, 'Copy answer');
      return;
    }
    const el = e.target.closest('[data-act]');
    if (el) {
      const a = el.dataset.act;
      if (a.startsWith('edit')) document.querySelector('#sda-input textarea')?.focus();
      else if (el.closest('#sda-chat') && !a.startsWith('vote') && !a.startsWith('version')) revealInspector();
      act(a);
      return;
    }
    const md = e.target.closest('[data-pick]');
    if (!md || e.target.closest('a') || String(window.getSelection() || '')) return;
    const n = charsBefore(md, e.clientX, e.clientY);
    if (n === null) return;
    revealInspector();
    act('word ' + md.dataset.pick + ' ' + n);
  });
  // one-line tooltips on the evaluator's choices
  const tips = TIPS;
  document.querySelectorAll('#sda-evaluator label').forEach((label) => {
    const tip = tips[label.textContent.trim()];
    if (tip) label.title = tip;
  });
  // the conversation pane: follow the answer while at the bottom; a new turn always scrolls to it
  const pane = document.querySelector('#sda-chat');
  if (!pane) return;
  let stuck = true;
  let turns = 0;
  pane.addEventListener('scroll', () => {
    stuck = pane.scrollHeight - pane.scrollTop - pane.clientHeight < STICK_PX;
  });
  const follow = () => {
    const n = pane.querySelectorAll('.sda-turn').length;
    if (n > turns) stuck = true;
    turns = n;
    if (stuck) pane.scrollTop = pane.scrollHeight;
  };
  new MutationObserver(follow).observe(pane, {childList: true, subtree: true, characterData: true});
  follow();
}"""


def page_js(tips: dict[str, str]) -> str:
    """The script, with ``tips`` (a choice's label → its tooltip) for the evaluator's choices."""
    return PAGE_JS.replace("STICK_PX", str(STICK_PX)).replace("TIPS", json.dumps(tips, ensure_ascii=False))
