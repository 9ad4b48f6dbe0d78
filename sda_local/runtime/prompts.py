"""Build the two prompts of a turn from the model's own chat template.

The template (GGUF ``tokenizer.chat_template``) is untrusted input: it is rendered by llama-cpp-python's
``Jinja2ChatFormatter``, which uses jinja2's ``ImmutableSandboxedEnvironment``.

Where the instruction goes (``placement``):

- ``"user"`` (the paper's): "with" = the last user message, a newline, the instruction; "without" = the
  conversation as it is.
- ``"system"``: "with" gets the instruction as (or appended to) the system message; "without" is unchanged.
- ``"matched"``: both streams get the same system frame; "with"'s system message carries the instruction,
  "without"'s a neutral default (``NEUTRAL_INSTRUCTION``) in the same place.  The frame's tokens (system
  header, a user's own system prompt) are then identical in both streams and cancel in lp_with − lp_without,
  and a template that adds its own default system prompt when none is given (Qwen's does) adds it to neither.

What the "without" stream gets in the instruction's place (``contrast``, ``SamplingParams.contrast``):

- ``"auto"``: the placement's own (the neutral line under "matched", nothing under "user" and "system");
- ``"none"`` (the paper's): nothing; ``"neutral"``: ``NEUTRAL_INSTRUCTION``;
- ``"ignore"``: the instruction's own words framed as a guideline to disregard (``IGNORE_FRAME``);
- ``"opposite"``: the preset's hand-written opposite instruction (a custom instruction without one gets
  ``OPPOSITE_FRAME``).

Every mode but "none" puts its line exactly where the instruction goes, so both streams share the frame and
only the instruction's direction differs.  With the instruction's words in both streams (``ignore``,
``opposite``), a token that merely copies them is likely in both, so lp_with − lp_without no longer rewards
reciting the instruction (``../shared/notes/methods.md``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from ..core.params import CONTRASTS
from ..errors import SdaError

Placement = Literal["user", "system", "matched"]
PLACEMENTS = ("user", "system", "matched")
NEUTRAL_INSTRUCTION = "Answer the user's request."
IGNORE_FRAME = "Ignore this guideline: {instruction}"
OPPOSITE_FRAME = "Do the opposite of this guideline: {instruction}"

# Used only when a GGUF carries no chat template (e.g. some base models).
FALLBACK_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant: {{ m['content'] }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


class TemplateError(SdaError):
    """The chat template failed to render the conversation."""


Message = dict  # {"role": "system"|"user"|"assistant", "content": str}


def check_messages(messages: Sequence[Message]) -> list[Message]:
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise TemplateError(f"message {i} must be a dict with role system/user/assistant, got {m!r:.80}")
        if not isinstance(m.get("content"), str):
            raise TemplateError(f"message {i} has no text content")
        out.append({"role": m["role"], "content": m["content"]})
    if not out or out[-1]["role"] != "user":
        raise TemplateError("the conversation must end with a user message")
    return out


def _add_system(msgs: list[Message], text: str) -> list[Message]:
    """``msgs`` with ``text`` appended to the system message (or as a new first system message)."""
    if msgs and msgs[0]["role"] == "system":
        msgs[0]["content"] = msgs[0]["content"].rstrip() + "\n" + text
    else:
        msgs.insert(0, {"role": "system", "content": text})
    return msgs


def with_instruction(messages: Sequence[Message], instruction: str, placement: Placement = "user") -> list[Message]:
    """The conversation as the "with" stream sees it."""
    msgs = [dict(m) for m in messages]
    instruction = instruction.strip()
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    if not instruction:
        return msgs
    if placement == "user":
        msgs[-1]["content"] = msgs[-1]["content"] + "\n" + instruction
        return msgs
    return _add_system(msgs, instruction)


def negative_instruction(contrast: str, instruction: str, placement: Placement = "user", opposite: str = "") -> str:
    """The line the "without" stream gets in the instruction's place ("" = nothing), for ``contrast``."""
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    instruction = instruction.strip()
    if not instruction or contrast == "none" or (contrast == "auto" and placement != "matched"):
        return ""
    if contrast in ("auto", "neutral"):
        return NEUTRAL_INSTRUCTION
    if contrast == "ignore":
        return IGNORE_FRAME.format(instruction=instruction)
    return opposite.strip() or OPPOSITE_FRAME.format(instruction=instruction)


def without_instruction(messages: Sequence[Message], instruction: str, placement: Placement = "user",
                        contrast: str = "auto", opposite: str = "") -> list[Message]:
    """The conversation as the "without" stream sees it: its ``contrast`` line where the instruction goes."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    negative = negative_instruction(contrast, instruction, placement, opposite)
    return with_instruction(messages, negative, placement)


@dataclass
class ChatPrompter:
    """Renders conversations with a model's chat template and tokenizes them (special tokens parsed)."""

    template: str | None
    bos_text: str
    eos_text: str
    bos_id: int
    add_bos: bool
    tokenize_fn: object  # callable(str) -> list[int]

    @classmethod
    def for_model(cls, model) -> "ChatPrompter":
        """The prompter of a loaded model (``backend.LoadedModel``): its chat template, BOS/EOS and tokenizer."""
        m = model
        return cls(m.chat_template, m.token_text(m.bos_token) if m.bos_token >= 0 else "",
                   m.token_text(m.eos_token) if m.eos_token >= 0 else "", m.bos_token, m.add_bos, m.tokenize)

    def __post_init__(self) -> None:
        self.uses_fallback = not self.template
        self._fmt = Jinja2ChatFormatter(
            template=self.template or FALLBACK_TEMPLATE, eos_token=self.eos_text, bos_token=self.bos_text,
            add_generation_prompt=True,
        )

    def render(self, messages: Sequence[Message]) -> str:
        try:
            return self._fmt(messages=list(messages)).prompt
        except Exception as exc:  # template code is arbitrary: report any failure plainly
            roles = "/".join(m["role"] for m in messages)
            raise TemplateError(f"the model's chat template could not render a {roles} conversation: {exc}") from None

    def tokens(self, messages: Sequence[Message]) -> list[int]:
        text = self.render(messages)
        toks = self.tokenize_fn(text)
        if self.add_bos and self.bos_id >= 0 and (not toks or toks[0] != self.bos_id):
            toks = [self.bos_id] + toks
        return toks

    def pair(self, messages: Sequence[Message], instruction: str, placement: Placement = "user",
             contrast: str = "auto", opposite: str = "") -> tuple[list[int], list[int]]:
        """Token ids of the ("with", "without") prompts."""
        msgs = check_messages(messages)
        return (self.tokens(with_instruction(msgs, instruction, placement)),
                self.tokens(without_instruction(msgs, instruction, placement, contrast, opposite)))
