"""A generation as an HTTP response: server-sent events (``stream: true``) or one JSON body.

``Job`` runs the plan in a thread (``worker.Runner``) and gives its events to the event loop.  Whatever ends the
response early — a client that disconnects (Starlette cancels the stream), an error while sending — sets the
job's ``cancel`` flag, so the generation stops within one token and the slot is freed.
"""
from __future__ import annotations

import asyncio
import json
import threading
from typing import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse

from .errors import ApiError
from .request import RequestPlan
from .schemas import usage
from .shapes import shape
from .slot import GenerationSlot
from .worker import Result, Runner

DISCONNECT_POLL_S = 0.25   # how often a non-streaming request checks that its client is still there


class Job:
    """One request's generation, started once the slot is ours; the slot is released when the thread ends."""

    def __init__(self, runner: Runner, plan: RequestPlan, slot: GenerationSlot, running: set | None = None):
        self.runner, self.plan, self.slot = runner, plan, slot
        self.running = running if running is not None else set()  # the jobs whose threads are alive
        self.thread: threading.Thread | None = None
        self.cancel = threading.Event()
        self.queue: asyncio.Queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    def _emit(self, item: tuple) -> None:
        try:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
            self.cancel.set()

    def start(self) -> None:
        def target():
            try:
                self.runner.run(self.plan, self.cancel, self._emit)
            finally:
                self.running.discard(self)
                try:
                    self.slot.release_threadsafe()
                except RuntimeError:
                    pass

        self.thread = threading.Thread(target=target, name="sda-local-generation", daemon=True)
        self.running.add(self)
        self.thread.start()

    async def next(self) -> tuple:
        return await self.queue.get()

    def more_text(self, text: str, entries: list | None) -> tuple[str, list | None, tuple]:
        """``text`` (with its log-prob ``entries``) and the pieces already waiting behind it, as one (a client
        that reads slower than the model generates gets fewer, larger chunks); the first event that is not text,
        or ("token", "", None)."""
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if item[0] != "token":
                return text, entries, item
            text += item[1]
            if item[2]:
                entries = (entries or []) + item[2]
        return text, entries, ("token", "", None)


def stop_all(jobs: set, timeout: float = 10.0) -> None:
    """Cancel every running generation and wait for its thread (before the engine is closed)."""
    for job in list(jobs):
        job.cancel.set()
    for job in list(jobs):
        if job.thread is not None:
            job.thread.join(timeout)


def _sse(obj: dict | str) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)}\n\n"


async def stream_events(job: Job) -> AsyncIterator[str]:
    """The OpenAI chunk sequence: (for chat) a role chunk, one chunk per piece of text, a final chunk with
    ``finish_reason`` (and the ``sda`` diagnostics), a usage chunk if asked for, then ``[DONE]``."""
    plan, out = job.plan, shape(job.plan)
    try:
        for chunk in out.first():
            yield _sse(chunk)
        while True:
            kind, value, *more = await job.next()
            if kind == "token":
                text, entries, (kind, value, *more) = job.more_text(value, more[0])
                yield _sse(out.piece(text, entries))
                if kind == "token":
                    continue
            if kind == "done":
                res: Result = value
                yield _sse(out.final(res.finish_reason, res.sda))
                if plan.include_usage:
                    yield _sse(out.usage(usage(res.prompt_tokens, res.completion_tokens)))
            else:
                err: ApiError = value
                yield _sse(err.body())
            break
        yield _sse("[DONE]")
    finally:
        job.cancel.set()  # the client went away (or we are done): stop generating


class JobStream(StreamingResponse):
    """``stream_events(job)`` as a response that cancels the job however it ends: also when the client had gone
    before the first chunk (Starlette then never starts the body's generator, whose own ``finally`` would not
    run)."""

    def __init__(self, job: Job):
        super().__init__(stream_events(job), media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.job = job

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel.set()


async def _watch_disconnect(job: Job, request: Request) -> None:
    while not job.cancel.is_set():
        if await request.is_disconnected():
            job.cancel.set()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


async def complete(job: Job, request: Request) -> dict:
    """Wait for the whole answer (stopping it if the client disconnects meanwhile); the completion body."""
    pieces: list[str] = []
    watcher = asyncio.create_task(_watch_disconnect(job, request))
    try:
        while True:
            kind, value, *_ = await job.next()
            if kind == "token":
                pieces.append(value)
            elif kind == "done":
                return shape(job.plan).body("".join(pieces), value)
            else:
                raise value
    finally:
        job.cancel.set()
        watcher.cancel()
