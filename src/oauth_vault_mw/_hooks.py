"""Running a host's coroutine hook from the sync vault (Flask, background threads)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable
from typing import Any

__all__ = ["run_coroutine"]


async def _wait(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def run_coroutine(awaitable: Awaitable[Any]) -> Any:
    """Run ``awaitable`` to completion and return its result: on a new event loop in this
    thread, or in a worker thread when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_wait(awaitable))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _wait(awaitable)).result()
