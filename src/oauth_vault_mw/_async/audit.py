"""The audit trail (async): who read, refreshed, connected or revoked what, and when.

The vault reports through the :class:`AsyncAuditSink` protocol; :class:`AsyncAuditTrail`
is the implementation the service layer attaches, writing to the log and to storage.
"""

from __future__ import annotations

import asyncio  # unasync: remove
import logging
import threading
from typing import Protocol

from ..core.errors import VaultError
from ..core.service import AuditEvent
from ..metrics import NO_METRICS, Metrics
from ..storage import AsyncStorage

__all__ = ["AsyncAuditSink", "AsyncAuditTrail"]

audit_logger = logging.getLogger("oauth_vault_mw.audit")
logger = logging.getLogger("oauth_vault_mw")


class AsyncAuditSink(Protocol):
    """Where the vault reports what it did (see ``_service.AsyncAuditTrail``)."""

    def count(
        self,
        at: float,
        actor: str,
        action: str,
        outcome: str,
        connection_id: str | None = None,
        user_id: str | None = None,
    ) -> bool:
        """Note a routine event without I/O; True when a write is due (``flush_soon``)."""

    async def flush_soon(self) -> None: ...

    async def note(
        self,
        at: float,
        actor: str,
        action: str,
        outcome: str,
        connection_id: str | None = None,
        user_id: str | None = None,
        *,
        urgent: bool = False,
    ) -> None: ...


class AsyncAuditTrail:
    """Records events as structured log records and in storage.

    Security-relevant events (refused keys aside) are written at once. Routine ones, reads
    first of all, are aggregated: identical (actor, action, outcome, connection, user)
    events within a window become one entry with a ``count``, written once the window is a
    second old or holds ``batch`` (1,000) distinct entries, and on ``flush()``: one row per
    user and second however many reads (a window of 50 entries wrote about a row per read
    once an app had more than 50 users reading). The async trail writes a due window in a
    task of its own, off the request path; the sync trail writes it in the call that finds
    it due. ``metrics`` counts the events a failed write loses; the vault's
    metrics read :meth:`backlog` when they are collected.
    """

    def __init__(
        self,
        storage: AsyncStorage,
        *,
        batch: int = 1000,
        max_delay: float = 1.0,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.storage = storage
        self.batch = batch
        self.max_delay = max_delay
        self.metrics = metrics
        self._window: dict[tuple[str, str, str, str | None, str | None], list[float]] = {}
        self._opened = 0.0
        self._lock = threading.Lock()
        self._flushing: set[asyncio.Task[None]] = set()  # unasync: remove

    def count(
        self,
        at: float,
        actor: str,
        action: str,
        outcome: str,
        connection_id: str | None = None,
        user_id: str | None = None,
    ) -> bool:
        """Note one routine event, no I/O; True when the window is due to be written."""
        if audit_logger.isEnabledFor(logging.INFO):
            audit_logger.info(
                "%s by %s: %s",
                action,
                actor,
                outcome,
                extra={
                    "audit": {
                        "at": at,
                        "actor": actor,
                        "action": action,
                        "outcome": outcome,
                        "connection_id": connection_id,
                        "user_id": user_id,
                    }
                },
            )
        key = (actor, action, outcome, connection_id, user_id)
        with self._lock:
            if not self._window:
                self._opened = at
            entry = self._window.get(key)
            if entry is None:
                self._window[key] = [at, 1.0]
            else:
                entry[1] += 1
            return len(self._window) >= self.batch or at - self._opened >= self.max_delay

    async def note(
        self,
        at: float,
        actor: str,
        action: str,
        outcome: str,
        connection_id: str | None = None,
        user_id: str | None = None,
        *,
        urgent: bool = False,
    ) -> None:
        """Record one event: written at once when ``urgent``, else with its window."""
        due = self.count(at, actor, action, outcome, connection_id, user_id)
        if urgent:
            await self.flush()
        elif due:
            await self.flush_soon()

    async def record(self, event: AuditEvent, *, urgent: bool = False) -> None:
        await self.note(
            event.at,
            event.actor,
            event.action,
            event.outcome,
            event.connection_id,
            event.user_id,
            urgent=urgent,
        )

    async def flush_soon(self) -> None:
        if self._flushing:  # unasync: remove
            return  # one write already scheduled takes the whole window  # unasync: remove
        task = asyncio.ensure_future(self.flush())  # unasync: remove
        self._flushing.add(task)  # unasync: remove
        task.add_done_callback(self._flushing.discard)  # unasync: remove
        # unasync: sync-only: self.flush()

    def backlog(self) -> int:
        """Events counted and not yet handed to storage (the ``audit.backlog`` gauge)."""
        with self._lock:
            return int(sum(count for _first, count in self._window.values()))

    def _take(self) -> list[AuditEvent]:
        with self._lock:
            window, self._window = self._window, {}
        return [
            AuditEvent(first, actor, action, outcome, cid, uid, int(count))
            for (actor, action, outcome, cid, uid), (first, count) in window.items()
        ]

    async def flush(self) -> None:
        events = self._take()
        if not events:
            return
        events.sort(key=lambda e: e.at)
        try:
            await self.storage.append_events([(e.at, e.to_bytes()) for e in events])
        except VaultError:
            logger.warning("audit trail: storage unavailable, %d events lost", len(events))
            self.metrics.audit_events_lost(sum(e.count for e in events))

    async def read(self, since: float, limit: int = 1000) -> list[AuditEvent]:
        await self.flush()
        return [
            AuditEvent.from_bytes(data)
            for _at, data in await self.storage.read_events(since, limit)
        ]
