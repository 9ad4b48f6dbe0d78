"""One generation on the model at a time; at most ``max_queue`` requests wait for it, others get a 503.

The slot is taken on the event loop (``acquire``) and given back from the worker thread when its generation has
really ended (``release_threadsafe``), so a request that was cancelled frees the model only once its
generator is closed.
"""
from __future__ import annotations

import asyncio


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

    async def acquire(self) -> None:
        """Wait for the model; ``QueueFull`` at once when ``max_queue`` requests are already waiting."""
        sem = self._semaphore()
        if self.busy or sem.locked():
            if self.waiting >= self.max_queue:
                raise QueueFull()
        self.waiting += 1
        try:
            await sem.acquire()
        finally:
            self.waiting -= 1
        self.busy = True

    def release(self) -> None:
        self.busy = False
        self._semaphore().release()

    def release_threadsafe(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.release)

    def status(self) -> dict:
        return {"busy": self.busy, "waiting": self.waiting, "max_queue": self.max_queue}
