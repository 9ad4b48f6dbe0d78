"""What the server was started with: limits, the API key, the default λ source and sampling defaults."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core import SamplingParams
from ..judges.spec import JudgeSpec
from ..turn import TurnSettings

DEFAULT_MAX_BODY = 1_000_000  # bytes: a long conversation fits; anything bigger is refused with 413


@dataclass
class ServerConfig:
    """``defaults`` gives the sampling defaults and the λ mapping / fallback / placement of every request (its
    preset is unused: each request names its own).  ``evaluator`` is where λ comes from when a request does not
    say (None: ``DEFAULT_EVALUATOR`` on the served model).  ``max_tokens_limit``: the most tokens one answer may
    have; a request asking for more is capped to it (None: the model's context size).  ``cors_origins``: the
    browser origins allowed to call the API (none: no CORS headers; "*" allows every origin)."""

    api_key: str | None = None
    max_queue: int = 16
    max_body: int = DEFAULT_MAX_BODY
    cv_dir: Path | None = None
    evaluator: JudgeSpec | None = None
    defaults: TurnSettings = field(default_factory=TurnSettings)
    retry_after: int = 2          # seconds suggested to a client refused because the queue is full
    max_tokens_limit: int | None = None
    cors_origins: tuple[str, ...] = ()

    @property
    def sampling(self) -> SamplingParams:
        return self.defaults.sampling
