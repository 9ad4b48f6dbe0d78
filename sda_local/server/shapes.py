"""What a response looks like: the streamed chunks and the whole body of a chat completion (``_Chat``) or a
legacy text completion (``_Text``, ``/v1/completions``); ``shape`` picks the one a plan needs."""
from __future__ import annotations

import time

from .request import RequestPlan
from .schemas import chunk_body, completion_body, completion_id, text_completion_body, usage
from .worker import Result


class _Chat:
    """The chunks and the body of a chat completion."""

    def __init__(self, plan: RequestPlan):
        self.plan, self.cid, self.created = plan, completion_id(), int(time.time())

    def first(self) -> list[dict]:
        return [chunk_body(self.cid, self.plan.model, self.created, {"role": "assistant", "content": ""})]

    def piece(self, text: str, entries: list | None) -> dict:
        lp = None if self.plan.logprobs is None else entries or []
        return chunk_body(self.cid, self.plan.model, self.created, {"content": text}, logprobs=lp)

    def final(self, finish: str, sda: dict | None) -> dict:
        extra = {"sda": sda} if sda is not None else {}
        return chunk_body(self.cid, self.plan.model, self.created, {}, finish, extra)

    def usage(self, u: dict) -> dict:
        return chunk_body(self.cid, self.plan.model, self.created, {}, extra={"usage": u}, choices=False)

    def body(self, text: str, res: Result) -> dict:
        return completion_body(self.cid, self.plan.model, text, res.finish_reason,
                               usage(res.prompt_tokens, res.completion_tokens), res.sda, res.logprobs)


class _Text(_Chat):
    """The chunks and the body of a legacy text completion (``/v1/completions``)."""

    def __init__(self, plan: RequestPlan):
        super().__init__(plan)
        self.cid = completion_id("cmpl-")

    def first(self) -> list[dict]:
        return []

    def piece(self, text: str, entries: list | None) -> dict:
        return text_completion_body(self.cid, self.plan.model, text, None, None, None, self.created)

    def final(self, finish: str, sda: dict | None) -> dict:
        return text_completion_body(self.cid, self.plan.model, "", finish, None, sda, self.created)

    def usage(self, u: dict) -> dict:
        return text_completion_body(self.cid, self.plan.model, "", None, u, None, self.created, choices=False)

    def body(self, text: str, res: Result) -> dict:
        return text_completion_body(self.cid, self.plan.model, text, res.finish_reason,
                                    usage(res.prompt_tokens, res.completion_tokens), res.sda)


def shape(plan: RequestPlan) -> _Chat:
    return _Chat(plan) if plan.prompt is None else _Text(plan)
