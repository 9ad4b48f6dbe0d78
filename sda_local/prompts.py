"""Build the two prompts of a turn from the model's own chat template.

The template (GGUF ``tokenizer.chat_template``) is untrusted input: it is rendered by llama-cpp-python's
``Jinja2ChatFormatter``, which uses jinja2's ``ImmutableSandboxedEnvironment``.

"with"    = the conversation with the alignment instruction appended to the last user message after a newline
            (or, with ``placement="system"``, given as a system message);
"without" = the conversation as it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from .errors import SdaError

Placement = Literal["user", "system"]
PLACEMENTS = ("user", "system")

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


def with_instruction(messages: Sequence[Message], instruction: str, placement: Placement = "user") -> list[Message]:
    """The conversation as the "with" stream sees it."""
    msgs = [dict(m) for m in messages]
    instruction = instruction.strip()
    if not instruction:
        return msgs
    if placement == "user":
        msgs[-1]["content"] = msgs[-1]["content"] + "\n" + instruction
    elif placement == "system":
        if msgs and msgs[0]["role"] == "system":
            msgs[0]["content"] = msgs[0]["content"].rstrip() + "\n" + instruction
        else:
            msgs.insert(0, {"role": "system", "content": instruction})
    else:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    return msgs


@dataclass
class ChatPrompter:
    """Renders conversations with a model's chat template and tokenizes them (special tokens parsed)."""

    template: str | None
    bos_text: str
    eos_text: str
    bos_id: int
    add_bos: bool
    tokenize_fn: object  # callable(str) -> list[int]

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

    def pair(self, messages: Sequence[Message], instruction: str, placement: Placement = "user") -> tuple[list[int], list[int]]:
        """Token ids of the ("with", "without") prompts."""
        msgs = check_messages(messages)
        return self.tokens(with_instruction(msgs, instruction, placement)), self.tokens(msgs)
