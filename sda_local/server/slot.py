"""One generation on the model at a time; at most ``max_queue`` requests wait for it, others get a 503.

The slot is taken on the event loop (``acquire``) and given back from the worker thread when its generation has
really ended (``release_threadsafe``), so a request that was cancelled frees the model only once its
generator is closed.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class QueueFull(Exception):
    """Every place in the queue is taken."""


class GenerationSlot:
    def __init__(self, max_queue: int):
        if max_queue < 0:
            raise ValueError(f"max_queue must be ≥ 0, got {max_queue}")
        self.max_queue = max_queue
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.waiting = 0
        self.busy = False

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem, self._loop = asyncio.Semaphore(1), asyncio.get_running_loop()
        return self._sem

    async def acquire(self, gone: Callable[[], Awaitable[bool]] | None = None, poll: float = 0.25) -> bool:
        """Wait for the model; ``QueueFull`` at once when ``max_queue`` requests are already waiting.  With
        ``gone`` (is the client still there?), asked every ``poll`` seconds while waiting: False, and no place
        held or taken, once it says the client has left."""
        sem = self._semaphore()
        if self.busy or sem.locked():
            if self.waiting >= self.max_queue:
                raise QueueFull()
        self.waiting += 1
        try:
            got = await _wait(sem, gone, poll)
        finally:
            self.waiting -= 1
        self.busy = self.busy or got
        return got

    def release(self) -> None:
        self.busy = False
        self._semaphore().release()

    def release_threadsafe(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.release)

    def status(self) -> dict:
        return {"busy": self.busy, "waiting": self.waiting, "max_queue": self.max_queue}


def _give_back_if_taken(sem: asyncio.Semaphore):
    def done(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is None:
            sem.release()  # it got the semaphore just as its client left: pass it on
    return done


async def _wait(sem: asyncio.Semaphore, gone: Callable[[], Awaitable[bool]] | None, poll: float) -> bool:
    """Take ``sem``; False (nothing taken) as soon as ``gone()`` says the client left while it waited."""
    if gone is None or not sem.locked():
        await sem.acquire()
        return True
    task = asyncio.ensure_future(sem.acquire())
    taken = left = False
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=poll)
            if not task.done() and await gone():
                left = True
                break
        taken = not left and not task.cancelled() and task.exception() is None
        return taken
    finally:
        if not taken:  # the client left (or this wait was cancelled): leave the queue, hold nothing
            task.cancel()
            task.add_done_callback(_give_back_if_taken(sem))
