"""Group commit: calls that arrive while a batch is being written go together in the next.

A refresh takes its lease and stores its tokens in a storage step each; many refreshes at
once (the proactive sweep, a burst of requests) would each pay a round trip, and over SQLite a
worker-thread hop, for a few microseconds of work. ``AsyncGroupCommit`` writes the first call
at once (a lone call waits for nothing) and queues those arriving meanwhile for one batch call
when it ends. Each call still gets its own result; a failed batch raises its error to each of
its callers. The batch runs as a task of its own, so a caller that goes away does not cancel
the write others wait for.

Async only: the sync shell's threads each write their own step.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["AsyncGroupCommit"]

A = TypeVar("A")
R = TypeVar("R")

MAX_BATCH = 64


class _Queue(Generic[A, R]):
    __slots__ = ("running", "waiting")

    def __init__(self) -> None:
        self.waiting: list[tuple[A, asyncio.Future[R]]] = []
        self.running = False


class AsyncGroupCommit(Generic[A, R]):
    """``await group(item)``: ``write([..., item, ...])``'s answer for ``item``.

    ``write`` takes a batch of up to ``max_batch`` items and returns one result per item, in
    their order. One queue per event loop (a future belongs to the loop that made it).
    """

    def __init__(
        self, write: Callable[[Sequence[A]], Awaitable[list[R]]], *, max_batch: int = MAX_BATCH
    ) -> None:
        self._write = write
        self.max_batch = max_batch
        self._queues: weakref.WeakKeyDictionary[Any, _Queue[A, R]] = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, item: A) -> R:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        future: asyncio.Future[R] = loop.create_future()
        queue.waiting.append((item, future))
        if not queue.running:
            queue.running = True
            task = loop.create_task(self._drain(queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, queue: _Queue[A, R]) -> None:
        try:
            while queue.waiting:
                batch = queue.waiting[: self.max_batch]
                del queue.waiting[: len(batch)]
                try:
                    results = await self._write([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError("a batch write answered for another number of items")
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:  # cancelled (the loop is closing): so are its callers
                    for _, future in batch:
                        future.cancel()
                    raise
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            queue.running = False
            for _, future in queue.waiting:  # cancelled with calls still queued
                if not future.done():
                    future.cancel()
            queue.waiting.clear()
