"""Run a sync backend from async code.

Memory operations run inline (they never block). SQLite reads run inline too: in WAL mode a
reader never waits for a writer, and a ~20 us query costs less than a thread hand-off; writes,
which may wait for SQLite's write lock, run in a worker thread so the event loop never blocks.

The refresh path's lease batches are the exception (a backend with
:class:`~oauth_vault_mw.storage.NoWaitLeaseBatches`: SQLite in a file). They are tried inline
first, on a connection that never waits for the lock and never checkpoints, and run in a
worker thread only when another connection holds the lock (:class:`WouldWait`, nothing
written). The checkpoints they skip run in a worker thread, every
:data:`~oauth_vault_mw.storage.sql.CHECKPOINT_ROWS` rows, before the batch that asks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from ..core.errors import StorageUnavailable
from ..core.model import CredentialKey, StoredCredential
from ._protocol import (
    NoWaitLeaseBatches,
    Storage,
    WouldWait,
    leases_one_by_one,
    save_then_release,
    saves_one_by_one,
    session_credential_by_two_reads,
)

__all__ = ["AsyncStorageAdapter"]

T = TypeVar("T")


async def _inline(fn: Callable[..., T], *args: object) -> T:
    return fn(*args)


async def _thread(fn: Callable[..., T], *args: object) -> T:
    return await asyncio.to_thread(fn, *args)


class AsyncStorageAdapter:
    """An :class:`~oauth_vault_mw.storage.AsyncStorage` over a sync :class:`Storage`."""

    def __init__(self, sync: Storage, *, offload_reads: bool, offload_writes: bool) -> None:
        self.sync = sync
        self._read = _thread if offload_reads else _inline
        self._write = _thread if offload_writes else _inline
        self._session_credential: Callable[..., tuple[str, StoredCredential | None] | None] = (
            getattr(sync, "get_session_credential", None)
            or partial(session_credential_by_two_reads, sync)
        )
        self._save_releasing: Callable[[StoredCredential, int, str], bool] = getattr(
            sync, "save_credential_releasing", None
        ) or partial(save_then_release, sync)
        self._leases_reading: Callable[..., list[StoredCredential | None]] = getattr(
            sync, "acquire_leases_reading", None
        ) or partial(leases_one_by_one, sync)
        self._saves_releasing: Callable[..., list[bool]] = getattr(
            sync, "save_credentials_releasing", None
        ) or partial(saves_one_by_one, sync)
        self._now: NoWaitLeaseBatches | None = None
        if isinstance(sync, NoWaitLeaseBatches) and sync.writes_without_waiting:
            self._now = sync

    def __repr__(self) -> str:
        return f"AsyncStorageAdapter({self.sync!r})"

    @property
    def shared_across_processes(self) -> bool:
        return bool(getattr(self.sync, "shared_across_processes", False))

    async def setup(self) -> None:
        await _thread(self.sync.setup)

    async def close(self) -> None:
        await _thread(self.sync.close)

    async def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        return await self._read(self.sync.get_credential, key)

    async def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        return await self._write(self.sync.save_credential, record, expected_version)

    async def save_credential_releasing(
        self, record: StoredCredential, expected_version: int, owner: str
    ) -> bool:
        """The sync backend's ``save_credential_releasing``, else its save and, when that
        wrote, its ``release_lease``: both in one worker call."""
        return await self._write(self._save_releasing, record, expected_version, owner)

    async def acquire_leases_reading(
        self, leases: Sequence[tuple[CredentialKey, str]], ttl: float, now: float
    ) -> list[StoredCredential | None]:
        """The sync backend's ``acquire_leases_reading``, else its single steps: all in one
        worker call (:class:`~oauth_vault_mw.storage.LeaseBatches`); inline when the backend
        can try it without waiting (:class:`~oauth_vault_mw.storage.NoWaitLeaseBatches`)."""
        now_first = self._now
        if now_first is not None:
            await self._checkpoint_if_wanted(now_first)
            with contextlib.suppress(WouldWait):
                return now_first.acquire_leases_reading_now(leases, ttl, now)
        return await self._write(self._leases_reading, leases, ttl, now)

    async def save_credentials_releasing(
        self, saves: Sequence[tuple[StoredCredential, int, str]]
    ) -> list[bool]:
        """The sync backend's ``save_credentials_releasing``, else its single saves: all in
        one worker call; inline when the backend can try it without waiting."""
        now_first = self._now
        if now_first is not None:
            await self._checkpoint_if_wanted(now_first)
            with contextlib.suppress(WouldWait):
                return now_first.save_credentials_releasing_now(saves)
        return await self._write(self._saves_releasing, saves)

    @staticmethod
    async def _checkpoint_if_wanted(storage: NoWaitLeaseBatches) -> None:
        """The checkpoint the inline batches skip, in a worker thread, before the batch that
        finds it due (so a cancelled wait here leaves nothing half done). One that fails is
        left to the next: the WAL only grows meanwhile."""
        if storage.wants_checkpoint():
            with contextlib.suppress(StorageUnavailable):
                await _thread(storage.checkpoint)

    async def delete_credential(self, key: CredentialKey) -> bool:
        return await self._write(self.sync.delete_credential, key)

    async def list_credentials(self, user_id: str) -> list[StoredCredential]:
        return await self._read(self.sync.list_credentials, user_id)

    async def scan_credentials(
        self,
        *,
        after: CredentialKey | None,
        limit: int,
        expiring_before: float | None = None,
    ) -> list[StoredCredential]:
        return await self._read(
            lambda: self.sync.scan_credentials(
                after=after, limit=limit, expiring_before=expiring_before
            )
        )

    async def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        return await self._write(self.sync.acquire_lease, key, owner, ttl, now)

    async def release_lease(self, key: CredentialKey, owner: str) -> None:
        await self._write(self.sync.release_lease, key, owner)

    async def get_identity(self, connection_id: str, subject: str) -> str | None:
        return await self._read(self.sync.get_identity, connection_id, subject)

    async def link_identity(self, connection_id: str, subject: str, user_id: str) -> str:
        return await self._write(self.sync.link_identity, connection_id, subject, user_id)

    async def unlink_identities(self, connection_id: str, user_id: str) -> None:
        await self._write(self.sync.unlink_identities, connection_id, user_id)

    async def list_identities(self, connection_id: str, user_id: str) -> list[str]:
        return await self._read(self.sync.list_identities, connection_id, user_id)

    async def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None:
        await self._write(self.sync.put_login_state, state_hash, data, expires_at)

    async def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        return await self._write(self.sync.take_login_state, state_hash, now)

    async def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None:
        await self._write(self.sync.create_session, session_hash, user_id, expires_at)

    async def get_session(self, session_hash: str, now: float) -> str | None:
        return await self._read(self.sync.get_session, session_hash, now)

    async def get_session_credential(
        self, session_hash: str, now: float, connection_id: str, account: str = "default"
    ) -> tuple[str, StoredCredential | None] | None:
        found: tuple[str, StoredCredential | None] | None = await self._read(
            self._session_credential, session_hash, now, connection_id, account
        )
        return found

    async def delete_session(self, session_hash: str) -> None:
        await self._write(self.sync.delete_session, session_hash)

    async def put_record(
        self, kind: str, name: str, data: bytes, *, only_if_absent: bool = False
    ) -> bool:
        return await self._write(
            lambda: self.sync.put_record(kind, name, data, only_if_absent=only_if_absent)
        )

    async def get_record(self, kind: str, name: str) -> bytes | None:
        return await self._read(self.sync.get_record, kind, name)

    async def delete_record(self, kind: str, name: str) -> bool:
        return await self._write(self.sync.delete_record, kind, name)

    async def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        return await self._read(self.sync.list_records, kind)

    async def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        await self._write(self.sync.append_events, events)

    async def read_events(self, since: float, limit: int) -> list[tuple[float, bytes]]:
        return await self._read(self.sync.read_events, since, limit)
