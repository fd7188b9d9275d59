"""The audit trail's batching: routine events aggregate; one write per due window."""

from __future__ import annotations

from oauth_vault_mw import AsyncAuditTrail
from oauth_vault_mw.storage import async_storage_from_url


async def test_a_due_window_schedules_one_write_not_one_per_event() -> None:
    storage = async_storage_from_url("memory://")
    trail = AsyncAuditTrail(storage, batch=50, max_delay=1.0)
    await trail.note(100.0, "user:u", "credentials.read", "ok", "demo", "u")
    # The window is due from now on; a tight loop that never yields keeps noting reads.
    for i in range(500):
        await trail.note(102.0 + i / 1000, "user:u", "credentials.read", "ok", "demo", "u")
    assert len(trail._flushing) == 1  # one scheduled write takes the whole window
    await trail.flush()
    events = await trail.read(0)
    assert [(e.action, e.count) for e in events] == [("credentials.read", 501)]


async def test_distinct_events_and_urgent_ones() -> None:
    storage = async_storage_from_url("memory://")
    trail = AsyncAuditTrail(storage, batch=50, max_delay=60.0)
    await trail.note(1.0, "user:a", "credentials.read", "ok", "demo", "a")
    await trail.note(1.5, "user:b", "credentials.read", "ok", "demo", "b")
    assert await storage.read_events(0, 10) == []  # routine: not written yet
    await trail.note(2.0, "client:x/k", "credentials.read", "forbidden", "demo", "a", urgent=True)
    stored = [e.actor for e in await trail.read(0)]
    assert sorted(stored) == ["client:x/k", "user:a", "user:b"]
