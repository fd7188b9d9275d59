"""Group commit (``_group_commit.AsyncGroupCommit``): the lease steps of concurrent refreshes
go to storage together."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from oauth_vault_mw._group_commit import AsyncGroupCommit


class Writer:
    """Records each batch; holds a batch open until ``release`` is set."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_on: int | None = None

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.release.wait()
        if self.fail_on in items:
            raise RuntimeError("storage down")
        return [i * 10 for i in items]


async def test_a_lone_call_is_written_at_once_as_a_batch_of_one() -> None:
    writer = Writer()
    group = AsyncGroupCommit(writer)
    assert await group(1) == 10
    assert await group(2) == 20
    assert writer.batches == [[1], [2]]


async def test_calls_arriving_during_a_write_go_together_in_the_next() -> None:
    writer = Writer()
    writer.release.clear()
    group = AsyncGroupCommit(writer)
    first = asyncio.ensure_future(group(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the first batch is being written
    rest = [asyncio.ensure_future(group(i)) for i in range(2, 6)]
    await asyncio.sleep(0)
    writer.release.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40, 50]
    assert writer.batches == [[1], [2, 3, 4, 5]]


async def test_batches_are_capped() -> None:
    writer = Writer()
    writer.release.clear()
    group = AsyncGroupCommit(writer, max_batch=2)
    calls = [asyncio.ensure_future(group(i)) for i in range(5)]
    await asyncio.sleep(0)
    writer.release.set()
    assert await asyncio.gather(*calls) == [0, 10, 20, 30, 40]
    assert writer.batches == [[0, 1], [2, 3], [4]]


async def test_a_failed_batch_raises_to_each_of_its_callers_only() -> None:
    writer = Writer()
    writer.release.clear()
    writer.fail_on = 2
    group = AsyncGroupCommit(writer)
    first = asyncio.ensure_future(group(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    failing = [asyncio.ensure_future(group(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    writer.release.set()
    assert await first == 10
    for call in failing:
        with pytest.raises(RuntimeError, match="storage down"):
            await call
    assert await group(4) == 40  # the next batch is written as usual


async def test_a_caller_going_away_does_not_cancel_the_write_of_others() -> None:
    writer = Writer()
    writer.release.clear()
    group = AsyncGroupCommit(writer)
    leaving = asyncio.ensure_future(group(1))
    staying = asyncio.ensure_future(group(2))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    writer.release.set()
    assert await staying == 20
    assert writer.batches == [[1, 2]]  # written all the same (a lease taken, tokens saved)
