"""Errors sda-local raises on bad input.  Each message says what was wrong and what to do about it."""
from __future__ import annotations


class SdaError(Exception):
    """Base class: anything the user can fix."""


class ModelFileError(SdaError):
    """The model file is missing, not GGUF, truncated, or llama.cpp refused it."""


class PresetError(SdaError):
    """Unknown preset, or a preset file that does not parse."""


class PromptTooLongError(SdaError):
    """The prompt does not fit into the context window."""

    def __init__(self, n_prompt: int, n_ctx: int, stream: str = "prompt"):
        self.n_prompt, self.n_ctx, self.stream = n_prompt, n_ctx, stream
        super().__init__(
            f"the {stream} is {n_prompt} tokens but the context holds {n_ctx} per stream "
            f"(at least one more is needed to answer); shorten the conversation or raise --n-ctx"
        )


class DecodeError(SdaError):
    """llama.cpp failed while decoding, or produced non-finite logits."""
