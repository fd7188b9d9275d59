"""The storage protocol, sync and async: one shape for memory, SQL and Redis backends.

Every method is a single atomic step; none of them sees a plaintext token (credentials arrive
sealed). Backends translate their driver's errors into :class:`StorageUnavailable`.

Write a backend by implementing :class:`Storage` (sync) and, for async frameworks,
:class:`AsyncStorage`; :class:`~oauth_vault_mw.storage.memory.MemoryStorage` is the
reference implementation, and ``tests/storage`` runs the same contract tests on every one.

A backend may also offer :class:`SessionCredentialReads` (``get_session_credential``): the
request path's session and credential lookups in one read. The vault uses it when present
and makes the two reads otherwise.

A backend may also offer :class:`LeasedSaves` (``save_credential_releasing``): a refresh's
write of new tokens and the release of its lease in one step. The vault uses it when present
and makes the two calls otherwise.

A backend may also offer :class:`LeaseBatches` (``acquire_leases_reading``,
``save_credentials_releasing``): the lease steps of many refreshes (each taken with the record
read under it; each save releasing its lease) in one step. The async adapter over a sync
backend always offers them (a loop of single steps in one worker call where the backend has
none), so concurrent refreshes share a thread hop; the vault uses them when present.

A backend that keeps expired rows offers :class:`ExpiredPurge` (``purge_expired``): the vault
calls it in bounded batches after logins, and ``oauth-vault db prune`` until nothing is left
(see :func:`~oauth_vault_mw.storage.purge_expired`). A backend whose entries expire by
themselves (Redis keys carry a TTL) needs none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..core.model import CredentialKey, StoredCredential

__all__ = [
    "AsyncExpiredPurge",
    "AsyncLeaseBatches",
    "AsyncLeasedSaves",
    "AsyncSessionCredentialReads",
    "AsyncStorage",
    "ExpiredPurge",
    "LeaseBatches",
    "LeasedSaves",
    "NoWaitLeaseBatches",
    "Purged",
    "SessionCredentialReads",
    "Storage",
    "WouldWait",
    "leases_one_by_one",
    "save_then_release",
    "saves_one_by_one",
    "session_credential_by_two_reads",
]

SessionCredential = tuple[str, StoredCredential | None]


@runtime_checkable
class Storage(Protocol):
    """Sync storage (Flask, CLI, background threads)."""

    def setup(self) -> None:
        """Create what is missing (tables...); idempotent."""

    def close(self) -> None: ...

    def get_credential(self, key: CredentialKey) -> StoredCredential | None: ...

    def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        """Write ``record`` if the stored version is ``expected_version`` (0: absent)."""

    def delete_credential(self, key: CredentialKey) -> bool: ...

    def list_credentials(self, user_id: str) -> list[StoredCredential]: ...

    def scan_credentials(
        self,
        *,
        after: CredentialKey | None,
        limit: int,
        expiring_before: float | None = None,
    ) -> list[StoredCredential]:
        """Up to ``limit`` credentials in key order, strictly after ``after`` (paging).

        With ``expiring_before``: only active ones whose ``expires_at`` is set and earlier.
        Key rotation and the refresh sweep walk the store with it, resumably.
        """

    def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        """Take the refresh lease of a credential for ``ttl`` seconds.

        True when ``owner`` now holds it: nobody held it, or the holder's lease expired
        (a process killed mid-refresh blocks others for at most ``ttl``). False otherwise,
        and False when the credential does not exist.
        """

    def release_lease(self, key: CredentialKey, owner: str) -> None:
        """Give the lease back if ``owner`` still holds it (never someone else's)."""

    def get_identity(self, connection_id: str, subject: str) -> str | None: ...

    def link_identity(self, connection_id: str, subject: str, user_id: str) -> str:
        """Bind the identity to ``user_id`` unless bound; return the user it is bound to."""

    def unlink_identities(self, connection_id: str, user_id: str) -> None: ...

    def list_identities(self, connection_id: str, user_id: str) -> list[str]:
        """The subjects bound to ``user_id`` for ``connection_id``, sorted; ``[]`` if none."""

    def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None: ...

    def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        """Remove and return the state: a second take of the same state gets ``None``."""

    def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None: ...

    def get_session(self, session_hash: str, now: float) -> str | None: ...

    def delete_session(self, session_hash: str) -> None: ...

    # -- small documents and the audit trail (service clients, access keys, events) ------

    def put_record(
        self, kind: str, name: str, data: bytes, *, only_if_absent: bool = False
    ) -> bool:
        """Store a small document under (``kind``, ``name``); with ``only_if_absent``, False
        (and nothing written) when one exists. ``kind`` and ``name`` are validated ids."""

    def get_record(self, kind: str, name: str) -> bytes | None: ...

    def delete_record(self, kind: str, name: str) -> bool: ...

    def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        """Every document of ``kind`` as ``(name, data)``, sorted by name."""

    def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        """Append audit events ``(at, data)``; never updated, never deleted by the library."""

    def read_events(self, since: float, limit: int) -> list[tuple[float, bytes]]:
        """Events with ``at >= since``, oldest first (ties in append order), at most ``limit``
        of the newest ones."""


@runtime_checkable
class AsyncStorage(Protocol):
    """Async twin of :class:`Storage` (Starlette/FastAPI)."""

    async def setup(self) -> None: ...

    async def close(self) -> None: ...

    async def get_credential(self, key: CredentialKey) -> StoredCredential | None: ...

    async def save_credential(self, record: StoredCredential, expected_version: int) -> bool: ...

    async def delete_credential(self, key: CredentialKey) -> bool: ...

    async def list_credentials(self, user_id: str) -> list[StoredCredential]: ...

    async def scan_credentials(
        self,
        *,
        after: CredentialKey | None,
        limit: int,
        expiring_before: float | None = None,
    ) -> list[StoredCredential]: ...

    async def acquire_lease(
        self, key: CredentialKey, owner: str, ttl: float, now: float
    ) -> bool: ...

    async def release_lease(self, key: CredentialKey, owner: str) -> None: ...

    async def get_identity(self, connection_id: str, subject: str) -> str | None: ...

    async def link_identity(self, connection_id: str, subject: str, user_id: str) -> str: ...

    async def unlink_identities(self, connection_id: str, user_id: str) -> None: ...

    async def list_identities(self, connection_id: str, user_id: str) -> list[str]: ...

    async def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None: ...

    async def take_login_state(self, state_hash: str, now: float) -> bytes | None: ...

    async def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None: ...

    async def get_session(self, session_hash: str, now: float) -> str | None: ...

    async def delete_session(self, session_hash: str) -> None: ...

    async def put_record(
        self, kind: str, name: str, data: bytes, *, only_if_absent: bool = False
    ) -> bool: ...

    async def get_record(self, kind: str, name: str) -> bytes | None: ...

    async def delete_record(self, kind: str, name: str) -> bool: ...

    async def list_records(self, kind: str) -> list[tuple[str, bytes]]: ...

    async def append_events(self, events: Sequence[tuple[float, bytes]]) -> None: ...

    async def read_events(self, since: float, limit: int) -> list[tuple[float, bytes]]: ...


@runtime_checkable
class SessionCredentialReads(Protocol):
    """Optional for a :class:`Storage`: a session and its user's credential in one read."""

    def get_session_credential(
        self, session_hash: str, now: float, connection_id: str, account: str = "default"
    ) -> SessionCredential | None:
        """``None`` when no session lives under ``session_hash`` at ``now`` (as
        ``get_session``); else ``(user_id, the credential (connection_id, user_id, account)
        or None)``, both seen at one instant."""


@runtime_checkable
class AsyncSessionCredentialReads(Protocol):
    """Async twin of :class:`SessionCredentialReads`."""

    async def get_session_credential(
        self, session_hash: str, now: float, connection_id: str, account: str = "default"
    ) -> SessionCredential | None: ...


@runtime_checkable
class LeasedSaves(Protocol):
    """Optional for a :class:`Storage`: a compare-and-set write that also lets go of the
    writer's lease, in one atomic step (a refresh's last two writes in one)."""

    def save_credential_releasing(
        self, record: StoredCredential, expected_version: int, owner: str
    ) -> bool:
        """``save_credential(record, expected_version)``; when it writes, the lease of
        ``owner`` on the credential (if ``owner`` still holds it) is released in the same
        step, as ``release_lease`` would. When it does not write (another version is stored),
        nothing changes: the lease stays held."""


@runtime_checkable
class AsyncLeasedSaves(Protocol):
    """Async twin of :class:`LeasedSaves`."""

    async def save_credential_releasing(
        self, record: StoredCredential, expected_version: int, owner: str
    ) -> bool: ...


@runtime_checkable
class LeaseBatches(Protocol):
    """Optional for a :class:`Storage`: the lease steps of many refreshes in one step (one
    transaction, one round trip), each as atomic as its single step."""

    def acquire_leases_reading(
        self, leases: Sequence[tuple[CredentialKey, str]], ttl: float, now: float
    ) -> list[StoredCredential | None]:
        """For each ``(key, owner)``, ``acquire_lease(key, owner, ttl, now)``; where taken,
        the record as stored once the lease is held, else ``None`` (held by another owner,
        or no such credential). In the order of ``leases``."""

    def save_credentials_releasing(
        self, saves: Sequence[tuple[StoredCredential, int, str]]
    ) -> list[bool]:
        """For each ``(record, expected_version, owner)``, ``save_credential_releasing``; in
        the order of ``saves``. A batch that fails part-way may be retried whole: a save
        already written no longer matches its expected version (False: the caller reads
        what is stored, its own tokens)."""


@runtime_checkable
class AsyncLeaseBatches(Protocol):
    """Async twin of :class:`LeaseBatches`."""

    async def acquire_leases_reading(
        self, leases: Sequence[tuple[CredentialKey, str]], ttl: float, now: float
    ) -> list[StoredCredential | None]: ...

    async def save_credentials_releasing(
        self, saves: Sequence[tuple[StoredCredential, int, str]]
    ) -> list[bool]: ...


class WouldWait(Exception):
    """A write tried without waiting found the database's write lock taken (another
    connection is writing): it wrote nothing, and may be run again where waiting is fine."""


@runtime_checkable
class NoWaitLeaseBatches(Protocol):
    """Optional for a :class:`Storage` whose writes take a lock held for microseconds (SQLite
    in a file): :class:`LeaseBatches` tried without waiting for it. The async adapter runs
    them on its event loop's thread, which a wait must never block, and runs the waiting
    batches in a worker thread only when these raise :class:`WouldWait`."""

    @property
    def writes_without_waiting(self) -> bool:
        """False where the ``*_now`` batches can only raise :class:`WouldWait`."""

    def acquire_leases_reading_now(
        self, leases: Sequence[tuple[CredentialKey, str]], ttl: float, now: float
    ) -> list[StoredCredential | None]:
        """``acquire_leases_reading``, or :class:`WouldWait` with nothing written."""

    def save_credentials_releasing_now(
        self, saves: Sequence[tuple[StoredCredential, int, str]]
    ) -> list[bool]:
        """``save_credentials_releasing``, or :class:`WouldWait` with nothing written."""

    def wants_checkpoint(self) -> bool:
        """True, once, when the batches above have written enough to want :meth:`checkpoint`
        (they leave the database's housekeeping, which writes to disk, to it)."""

    def checkpoint(self) -> None:
        """The housekeeping the batches above skip; blocking: run in a worker thread."""


def leases_one_by_one(
    storage: Storage, leases: Sequence[tuple[CredentialKey, str]], ttl: float, now: float
) -> list[StoredCredential | None]:
    """What ``acquire_leases_reading`` answers, from ``acquire_lease`` then ``get_credential``
    for each (for a backend without :class:`LeaseBatches`)."""
    return [
        storage.get_credential(key) if storage.acquire_lease(key, owner, ttl, now) else None
        for key, owner in leases
    ]


def saves_one_by_one(
    storage: Storage, saves: Sequence[tuple[StoredCredential, int, str]]
) -> list[bool]:
    """What ``save_credentials_releasing`` answers, one save after the other (for a backend
    without :class:`LeaseBatches`; the backend's ``save_credential_releasing`` when it has
    one)."""
    releasing = getattr(storage, "save_credential_releasing", None)
    if releasing is None:
        return [save_then_release(storage, *save) for save in saves]
    return [bool(releasing(*save)) for save in saves]


@dataclass(frozen=True)
class Purged:
    """What one purge removed: expired sessions and expired login states (rows of the
    previous release, which kept logins in flight in storage)."""

    sessions: int = 0
    login_states: int = 0

    def __add__(self, other: Purged) -> Purged:
        return Purged(self.sessions + other.sessions, self.login_states + other.login_states)

    @property
    def total(self) -> int:
        return self.sessions + self.login_states


@runtime_checkable
class ExpiredPurge(Protocol):
    """Optional for a :class:`Storage` that keeps expired rows until deleted."""

    def purge_expired(self, now: float, limit: int) -> Purged:
        """Delete at most ``limit`` expired sessions and at most ``limit`` expired login
        states (``expires_at <= now``), each kind in one short statement; say how many."""


@runtime_checkable
class AsyncExpiredPurge(Protocol):
    """Async twin of :class:`ExpiredPurge`."""

    async def purge_expired(self, now: float, limit: int) -> Purged: ...


def session_credential_by_two_reads(
    storage: Storage, session_hash: str, now: float, connection_id: str, account: str = "default"
) -> SessionCredential | None:
    """What ``get_session_credential`` answers, from ``get_session`` then ``get_credential``
    (for a backend whose two reads are as cheap as one)."""
    user_id = storage.get_session(session_hash, now)
    if user_id is None:
        return None
    return user_id, storage.get_credential(CredentialKey(connection_id, user_id, account))


def save_then_release(
    storage: Storage, record: StoredCredential, expected_version: int, owner: str
) -> bool:
    """What ``save_credential_releasing`` does, in two steps: the save, then (when it wrote)
    the release (for a backend without :class:`LeasedSaves`)."""
    if not storage.save_credential(record, expected_version):
        return False
    storage.release_lease(record.key, owner)
    return True
