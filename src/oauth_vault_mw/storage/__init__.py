"""Storage backends behind one protocol; pick one with :func:`storage_from_url`.

``memory://`` (one process), ``sqlite:///path.db`` (embedded default),
``postgresql://...`` and ``redis://...``/``rediss://...`` (several app instances), and
``redis+cluster://...``/``rediss+cluster://...`` (a Redis Cluster, through one of its nodes).
"""

from __future__ import annotations

from ..core.errors import ConfigurationError
from ._adapter import AsyncStorageAdapter as AsyncStorageAdapter
from ._protocol import AsyncExpiredPurge as AsyncExpiredPurge
from ._protocol import AsyncLeaseBatches as AsyncLeaseBatches
from ._protocol import AsyncLeasedSaves as AsyncLeasedSaves
from ._protocol import AsyncSessionCredentialReads as AsyncSessionCredentialReads
from ._protocol import AsyncStorage as AsyncStorage
from ._protocol import ExpiredPurge as ExpiredPurge
from ._protocol import LeaseBatches as LeaseBatches
from ._protocol import LeasedSaves as LeasedSaves
from ._protocol import NoWaitLeaseBatches as NoWaitLeaseBatches
from ._protocol import Purged as Purged
from ._protocol import SessionCredentialReads as SessionCredentialReads
from ._protocol import Storage as Storage
from ._protocol import WouldWait as WouldWait
from ._purge import async_purge_expired as async_purge_expired
from ._purge import purge_expired as purge_expired
from .memory import MemoryStorage as MemoryStorage

__all__ = [
    "AsyncExpiredPurge",
    "AsyncLeaseBatches",
    "AsyncLeasedSaves",
    "AsyncSessionCredentialReads",
    "AsyncStorage",
    "AsyncStorageAdapter",
    "ExpiredPurge",
    "LeaseBatches",
    "LeasedSaves",
    "MemoryStorage",
    "NoWaitLeaseBatches",
    "Purged",
    "SessionCredentialReads",
    "Storage",
    "WouldWait",
    "async_purge_expired",
    "async_storage_from_url",
    "purge_expired",
    "storage_from_url",
]


_REDIS_SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")


def _redis_missing(err: ImportError) -> ConfigurationError:
    """redis-py missing: a configuration error naming the setting, at start-up (a missing
    PostgreSQL driver is :func:`~.sql.driver_missing`'s)."""
    cause = err.__cause__
    missing = err.name or (cause.name if isinstance(cause, ImportError) else None)
    return ConfigurationError(
        f"OAUTH_VAULT_STORAGE_URL: the Redis driver is not installed ({missing or err}); "
        "pip install 'oauth-vault-mw[redis]'"
    )


def storage_from_url(url: str) -> Storage:
    """A sync backend for ``OAUTH_VAULT_STORAGE_URL``."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryStorage()
    if scheme.startswith(("sqlite", "postgresql")):
        from .sql import SQLStorage

        return SQLStorage(url)
    if scheme in _REDIS_SCHEMES:
        try:
            from .redis import RedisStorage
        except ImportError as err:
            raise _redis_missing(err) from None
        return RedisStorage(url)
    raise ConfigurationError(
        f"OAUTH_VAULT_STORAGE_URL: unsupported scheme {scheme!r} "
        "(memory, sqlite, postgresql, redis, rediss, redis+cluster, rediss+cluster)"
    )


def async_storage_from_url(url: str) -> AsyncStorage:
    """An async backend for ``OAUTH_VAULT_STORAGE_URL``."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in _REDIS_SCHEMES:
        try:
            from .redis import AsyncRedisStorage
        except ImportError as err:
            raise _redis_missing(err) from None
        return AsyncRedisStorage(url)  # natively async, no worker threads
    if scheme.startswith("postgresql"):
        try:
            from .sql_async import AsyncSQLStorage
        except ImportError as err:  # psycopg, imported by sql_async at its top
            from .sql import driver_missing

            raise driver_missing(err) from None
        return AsyncSQLStorage(url)  # asyncio psycopg, no worker threads
    sync = storage_from_url(url)
    if isinstance(sync, MemoryStorage):
        return AsyncStorageAdapter(sync, offload_reads=False, offload_writes=False)
    is_sqlite = url.lower().startswith("sqlite")
    return AsyncStorageAdapter(sync, offload_reads=not is_sqlite, offload_writes=True)
