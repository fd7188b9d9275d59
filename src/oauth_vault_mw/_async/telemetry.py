"""Storage operations timed and traced (async): the wrapper a vault with metrics puts around
its storage, chosen when the vault is built, so a vault without metrics calls its storage
directly and pays nothing.

Every operation of the storage protocol, the optional ones included where the backend has
them, goes through ``metrics.storage_call(backend, operation, connection)``; the request
path's reads (:data:`READS`) only when ``metrics.time_storage_reads`` says so, else the
wrapper hands out the backend's own methods. Anything else is the backend's, untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..metrics import Metrics
from ..metrics._protocol import backend_name, connection_of
from ..storage import AsyncStorage, Purged
from ..storage._purge import async_purge_expired  # unasync: remove

# unasync: sync-only: from ..storage._purge import purge_expired

__all__ = ["OPERATIONS", "READS", "AsyncInstrumentedStorage"]

OPERATIONS = (
    "setup",
    "close",
    "get_credential",
    "save_credential",
    "delete_credential",
    "list_credentials",
    "scan_credentials",
    "acquire_lease",
    "release_lease",
    "get_identity",
    "link_identity",
    "unlink_identities",
    "list_identities",
    "put_login_state",
    "take_login_state",
    "create_session",
    "get_session",
    "delete_session",
    "put_record",
    "get_record",
    "delete_record",
    "list_records",
    "append_events",
    "read_events",
    # optional (storage/_protocol.py): present only where the backend offers them
    "get_session_credential",
    "save_credential_releasing",
    "acquire_leases_reading",
    "save_credentials_releasing",
)
"""The operations timed (their names are the ``operation`` label)."""

READS = frozenset({"get_credential", "get_session", "get_session_credential", "get_record"})
"""What a request reads (session, credential, a service client's key): timed only on request."""


class AsyncInstrumentedStorage:
    """Wraps ``storage`` (the :class:`AsyncStorage` protocol): reports each operation to
    ``metrics``."""

    def __init__(self, storage: AsyncStorage, metrics: Metrics) -> None:
        self.inner = storage
        self.backend = backend_name(storage)
        self._metrics = metrics
        for name in OPERATIONS:
            method = getattr(storage, name, None)
            if method is None:
                continue
            if name in READS and not metrics.time_storage_reads:
                setattr(self, name, method)  # the backend's own: nothing added
            else:
                setattr(self, name, self._timed(name, method))
        self.purge_expired = self._timed("purge_expired", self._purge)

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    async def _purge(self, now: float, limit: int) -> Purged | None:
        """``purge_expired`` as the backend does it (or ``None``: its entries expire)."""
        return await async_purge_expired(self.inner, now, limit)  # unasync: remove
        # unasync: sync-only: return purge_expired(self.inner, now, limit)

    def _timed(self, operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
        metrics, backend = self._metrics, self.backend

        async def timed(*args: Any, **kwargs: Any) -> Any:
            with metrics.storage_call(backend, operation, connection_of(args)):
                return await method(*args, **kwargs)

        return timed
