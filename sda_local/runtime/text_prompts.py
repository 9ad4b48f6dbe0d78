"""The two prompts of a raw text completion (``/v1/completions``): no chat template, the instruction before the text.

The instructed stream reads the alignment instruction, a blank line, then the prompt; the uninstructed stream
reads the prompt alone, or
the contrast line (``runtime.prompts.negative_instruction``, as for a system-placed instruction) and a blank
line before it.  Tokenized as the text is written: special tokens parsed, the model's BOS added when it wants one.
"""
from __future__ import annotations

from .prompts import negative_instruction

SEPARATOR = "\n\n"


def text_tokens(model, text: str) -> list[int]:
    """``text`` as the model's tokens (``model``: a ``backend.LoadedModel``)."""
    toks = model.tokenize(text, special=True)
    if model.add_bos and model.bos_token >= 0 and (not toks or toks[0] != model.bos_token):
        toks = [model.bos_token] + toks
    return toks


def text_pair(model, prompt: str, instruction: str, contrast: str = "auto",
              opposite: str = "") -> tuple[list[int], list[int]]:
    """Token ids of the ("with", "without") prompts of ``prompt`` (module docstring)."""
    instruction = instruction.strip()
    negative = negative_instruction(contrast, instruction, "system", opposite)
    with_text = instruction + SEPARATOR + prompt if instruction else prompt
    without_text = negative + SEPARATOR + prompt if negative else prompt
    return text_tokens(model, with_text), text_tokens(model, without_text)
