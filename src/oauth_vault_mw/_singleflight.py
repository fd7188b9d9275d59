"""Single flight: one call per key at a time; everyone asking meanwhile shares its result.

``AsyncSingleFlight`` runs the call as its own task, so a caller that goes away (a client
disconnect cancels its request) neither cancels the refresh others wait for nor loses a
rotated refresh token half-way. ``SingleFlight`` is the thread twin for the sync shell.

``on_join(key)``, when given, is told of each caller that found the call already running
(the vault's metrics count them); without it nothing is added to any call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

__all__ = ["AsyncSingleFlight", "SingleFlight"]

T = TypeVar("T")


class AsyncSingleFlight(Generic[T]):
    def __init__(self, *, on_join: Callable[[Any], None] | None = None) -> None:
        self._running: dict[Hashable, asyncio.Task[T]] = {}
        self._on_join = on_join

    async def run(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():

            async def wrapped() -> T:
                return await call()

            task = asyncio.ensure_future(wrapped())
            self._running[key] = task
            task.add_done_callback(lambda t: self._forget(key, t))
        elif self._on_join is not None:
            self._on_join(key)
        return await asyncio.shield(task)

    def _forget(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved here; raised to every waiter


class SingleFlight(Generic[T]):
    def __init__(self, *, on_join: Callable[[Any], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, Future[T]] = {}
        self._on_join = on_join

    def run(self, key: Hashable, call: Callable[[], T]) -> T:
        with self._lock:
            future = self._running.get(key)
            leader = future is None
            if future is None:
                future = self._running[key] = Future()
        if not leader:
            if self._on_join is not None:
                self._on_join(key)
            return future.result()
        try:
            future.set_result(call())
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            with self._lock:
                del self._running[key]
        return future.result()
