"""Storage backends behind one protocol; pick one with :func:`storage_from_url`.

``memory://`` (one process), ``sqlite:///path.db`` (embedded default) and
``postgresql://...`` (several app instances).
"""

from __future__ import annotations

from .._exceptions import ConfigurationError
from ._adapter import AsyncStorageAdapter as AsyncStorageAdapter
from ._protocol import AsyncStorage as AsyncStorage
from ._protocol import Storage as Storage
from .memory import MemoryStorage as MemoryStorage

__all__ = [
    "AsyncStorage",
    "AsyncStorageAdapter",
    "MemoryStorage",
    "Storage",
    "async_storage_from_url",
    "storage_from_url",
]


def storage_from_url(url: str) -> Storage:
    """A sync backend for ``OAUTH_VAULT_STORAGE_URL``."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryStorage()
    if scheme.startswith(("sqlite", "postgresql")):
        from .sql import SQLStorage

        return SQLStorage(url)
    raise ConfigurationError(
        f"OAUTH_VAULT_STORAGE_URL: unsupported scheme {scheme!r} (memory, sqlite, postgresql)"
    )


def async_storage_from_url(url: str) -> AsyncStorage:
    """An async backend for ``OAUTH_VAULT_STORAGE_URL``."""
    sync = storage_from_url(url)
    if isinstance(sync, MemoryStorage):
        return AsyncStorageAdapter(sync, offload_reads=False, offload_writes=False)
    is_sqlite = url.lower().startswith("sqlite")
    return AsyncStorageAdapter(sync, offload_reads=not is_sqlite, offload_writes=True)
