"""The storage backends every contract test runs on.

To put a new backend under the contract (PostgreSQL, Redis...), add one :class:`Backend` to
:data:`BACKENDS`: ``url`` names an empty store for one test (derive it from ``tmp_path``, or
create a fresh database/key prefix; or give, as a string, the name of a fixture returning such
a URL, for a server started by a fixture), ``sync`` builds the sync backend from that URL,
``marks`` can tag it (``pytest.mark.integration`` for a backend that needs a real server). Each
backend then runs through its sync API and through ``async_storage_from_url``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from oauth_vault_mw.core.model import CredentialKey, StoredCredential
from oauth_vault_mw.storage import (
    AsyncStorage,
    MemoryStorage,
    Storage,
    async_storage_from_url,
)
from oauth_vault_mw.storage.sql import SQLStorage

T = TypeVar("T")


@dataclass(frozen=True)
class Backend:
    name: str
    url: Callable[[Path], str] | str  # str: the name of a fixture returning the URL
    sync: Callable[[str], Storage]
    marks: tuple[pytest.MarkDecorator, ...] = field(default=())


def _memory(_url: str) -> Storage:
    return MemoryStorage()


def _redis(url: str) -> Storage:
    from oauth_vault_mw.storage.redis import RedisStorage

    return RedisStorage(url)


def _url(backend: Backend, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if isinstance(backend.url, str):
        return str(request.getfixturevalue(backend.url))
    return backend.url(tmp_path)


BACKENDS = [
    Backend("memory", lambda _tmp: "memory://", _memory),
    Backend("sqlite", lambda tmp: f"sqlite:///{tmp / 'vault.db'}", SQLStorage),
    Backend("redis", "redis_store_url", _redis, marks=(pytest.mark.integration,)),
    Backend("redis-cluster", "redis_cluster_store_url", _redis, marks=(pytest.mark.integration,)),
    Backend("postgresql", "postgres_store_url", SQLStorage, marks=(pytest.mark.integration,)),
    Backend("pgbouncer", "pgbouncer_store_url", SQLStorage, marks=(pytest.mark.integration,)),
]

SYNC_PARAMS = [pytest.param(b, id=b.name, marks=b.marks) for b in BACKENDS]


class BlockingStorage:
    """Runs an :class:`AsyncStorage` on a private event loop, so the sync contract tests
    exercise the async adapter too."""

    def __init__(self, inner: AsyncStorage) -> None:
        self.inner = inner
        self._loop = asyncio.new_event_loop()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def setup(self) -> None:
        self._run(self.inner.setup())

    def close(self) -> None:
        try:
            self._run(self.inner.close())
            self._run(self._loop.shutdown_default_executor())
        finally:
            self._loop.close()

    def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        return self._run(self.inner.get_credential(key))

    def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        return self._run(self.inner.save_credential(record, expected_version))

    def save_credential_releasing(
        self, record: StoredCredential, expected_version: int, owner: str
    ) -> bool:
        save = getattr(self.inner, "save_credential_releasing", None)
        if save is None:
            pytest.skip(f"{self.inner!r} does not offer the optional save_credential_releasing")
        saved: bool = self._run(save(record, expected_version, owner))
        return saved

    def delete_credential(self, key: CredentialKey) -> bool:
        return self._run(self.inner.delete_credential(key))

    def list_credentials(self, user_id: str) -> list[StoredCredential]:
        return self._run(self.inner.list_credentials(user_id))

    def scan_credentials(
        self,
        *,
        after: CredentialKey | None,
        limit: int,
        expiring_before: float | None = None,
    ) -> list[StoredCredential]:
        return self._run(
            self.inner.scan_credentials(after=after, limit=limit, expiring_before=expiring_before)
        )

    def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        return self._run(self.inner.acquire_lease(key, owner, ttl, now))

    def release_lease(self, key: CredentialKey, owner: str) -> None:
        self._run(self.inner.release_lease(key, owner))

    def get_identity(self, connection_id: str, subject: str) -> str | None:
        return self._run(self.inner.get_identity(connection_id, subject))

    def link_identity(self, connection_id: str, subject: str, user_id: str) -> str:
        return self._run(self.inner.link_identity(connection_id, subject, user_id))

    def unlink_identities(self, connection_id: str, user_id: str) -> None:
        self._run(self.inner.unlink_identities(connection_id, user_id))

    def list_identities(self, connection_id: str, user_id: str) -> list[str]:
        return self._run(self.inner.list_identities(connection_id, user_id))

    def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None:
        self._run(self.inner.put_login_state(state_hash, data, expires_at))

    def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        return self._run(self.inner.take_login_state(state_hash, now))

    def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None:
        self._run(self.inner.create_session(session_hash, user_id, expires_at))

    def get_session(self, session_hash: str, now: float) -> str | None:
        return self._run(self.inner.get_session(session_hash, now))

    def delete_session(self, session_hash: str) -> None:
        self._run(self.inner.delete_session(session_hash))

    def get_session_credential(
        self, session_hash: str, now: float, connection_id: str, account: str = "default"
    ) -> tuple[str, StoredCredential | None] | None:
        read = getattr(self.inner, "get_session_credential", None)
        if read is None:
            pytest.skip(f"{self.inner!r} does not offer the optional get_session_credential")
        found: tuple[str, StoredCredential | None] | None = self._run(
            read(session_hash, now, connection_id, account)
        )
        return found

    def put_record(
        self, kind: str, name: str, data: bytes, *, only_if_absent: bool = False
    ) -> bool:
        return self._run(self.inner.put_record(kind, name, data, only_if_absent=only_if_absent))

    def get_record(self, kind: str, name: str) -> bytes | None:
        return self._run(self.inner.get_record(kind, name))

    def delete_record(self, kind: str, name: str) -> bool:
        return self._run(self.inner.delete_record(kind, name))

    def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        return self._run(self.inner.list_records(kind))

    def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        self._run(self.inner.append_events(events))

    def read_events(self, since: float, limit: int) -> list[tuple[float, bytes]]:
        return self._run(self.inner.read_events(since, limit))


@pytest.fixture(params=SYNC_PARAMS)
def sync_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A fresh backend through its sync API."""
    backend: Backend = request.param
    store = backend.sync(_url(backend, request, tmp_path))
    store.setup()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=SYNC_PARAMS)
async def async_storage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncStorage]:
    """A fresh backend through ``async_storage_from_url`` (the Starlette shell's path)."""
    backend: Backend = request.param
    store = async_storage_from_url(_url(backend, request, tmp_path))
    await store.setup()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(
    params=[
        *SYNC_PARAMS,
        *(pytest.param(("async", b), id=f"async-{b.name}", marks=b.marks) for b in BACKENDS),
    ]
)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Every backend, through its sync API and through the async adapter."""
    param: Backend | tuple[str, Backend] = request.param
    store: Storage
    if isinstance(param, tuple):
        store = BlockingStorage(async_storage_from_url(_url(param[1], request, tmp_path)))
    else:
        store = param.sync(_url(param, request, tmp_path))
    store.setup()
    try:
        yield store
    finally:
        store.close()
