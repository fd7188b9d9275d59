"""Purging expired sessions and login states, in bounded batches, on any backend.

:func:`purge_expired` (sync) and :func:`async_purge_expired` run one batch: the backend's own
``purge_expired`` when it has one (:class:`~oauth_vault_mw.storage.ExpiredPurge`, as memory),
else the SQL statements here on a SQL backend. ``None`` means the backend purges nothing
itself: Redis keys carry a TTL (the expiry plus a grace minute) and the server removes them.

A batch is one ``DELETE ... WHERE key IN (SELECT key ... WHERE expires_at <= now LIMIT n)``
per table: short, whatever the backlog; a caller that wants everything gone loops until a
batch removes fewer rows than it allowed (``oauth-vault db prune``).
"""

from __future__ import annotations

import asyncio
import functools
import sys
from typing import Any

from ._adapter import AsyncStorageAdapter
from ._protocol import AsyncStorage, Purged, Storage

__all__ = ["async_purge_expired", "purge_expired"]


@functools.cache
def _statements() -> tuple[Any, Any]:
    """The two ``DELETE`` statements (SQLAlchemy imported only for a SQL backend)."""
    import sqlalchemy as sa

    from ._sql_statements import login_states, sessions

    def batch_delete(table: sa.Table, key: sa.Column[Any], expires: sa.Column[Any]) -> Any:
        oldest = (
            sa.select(key)
            .where(expires <= sa.bindparam("now"))
            .limit(sa.bindparam("limit", type_=sa.Integer))
            .scalar_subquery()
        )
        return sa.delete(table).where(key.in_(oldest))

    return (
        batch_delete(sessions, sessions.c.session_hash, sessions.c.expires_at),
        batch_delete(login_states, login_states.c.state_hash, login_states.c.expires_at),
    )


def _deleted(result: Any) -> int:
    return max(int(result.rowcount), 0)


def purge_ops(now: float, limit: int) -> tuple[Any, Any]:
    """The two statements of one batch (``Op`` values): expired sessions, expired login
    states."""
    from ._sql_statements import Op

    params = {"now": now, "limit": max(limit, 0)}
    expired_sessions, expired_states = _statements()
    return (
        Op(expired_sessions, params, True, _deleted),
        Op(expired_states, params, True, _deleted),
    )


def purge_expired(storage: Storage, now: float, limit: int) -> Purged | None:
    """One batch on a sync backend; ``None`` when it expires entries by itself (Redis)."""
    own = getattr(storage, "purge_expired", None)
    if own is not None:
        found: Purged = own(now, limit)
        return found
    sql = sys.modules.get("oauth_vault_mw.storage.sql")
    if sql is not None and isinstance(storage, sql.SQLStorage):
        run = storage._run  # the storage package's own runner
        first, second = purge_ops(now, limit)
        return Purged(run(first), run(second))
    return None


async def async_purge_expired(storage: AsyncStorage, now: float, limit: int) -> Purged | None:
    """:func:`purge_expired` on an async backend."""
    own = getattr(storage, "purge_expired", None)
    if own is not None:
        found: Purged = await own(now, limit)
        return found
    if isinstance(storage, AsyncStorageAdapter):
        return await asyncio.to_thread(purge_expired, storage.sync, now, limit)
    sql_async = sys.modules.get("oauth_vault_mw.storage.sql_async")
    if sql_async is not None and isinstance(storage, sql_async.AsyncSQLStorage):
        run = storage._run  # the storage package's own runner
        first, second = purge_ops(now, limit)
        return Purged(await run(first), await run(second))
    return None
