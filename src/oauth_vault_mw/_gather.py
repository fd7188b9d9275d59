"""Run a coroutine function over items, at most ``limit`` at a time, results in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

__all__ = ["bounded_gather"]

T = TypeVar("T")
R = TypeVar("R")


async def bounded_gather(
    fn: Callable[[T], Awaitable[R]], items: Sequence[T], limit: int
) -> list[R]:
    """``[await fn(item) for item in items]``, with up to ``limit`` of them running at once
    (the first exception propagates at once; the calls already started run to their end)."""
    gate = asyncio.Semaphore(max(1, limit))

    async def one(item: T) -> R:
        async with gate:
            return await fn(item)

    return list(await asyncio.gather(*(one(item) for item in items)))
