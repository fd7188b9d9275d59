"""The operator's long-running jobs, without the printing: key rotation and the refresh sweep.

Both walk the store with ``scan_credentials`` in pages (key order, strictly after the last key
seen), so memory stays bounded and an interrupted run simply starts again: a rotation skips
records already on the current key, a sweep skips credentials that no longer expire soon.
``oauth-vault keys rotate`` and ``oauth-vault credentials refresh`` (:mod:`oauth_vault_mw.cli`)
call them; a host app that has a scheduler of its own (Celery beat, APScheduler, cron) calls
them directly::

    from oauth_vault_mw import AsyncVault, Settings
    from oauth_vault_mw.jobs import rotate_keys, sweep

    async def refresh_expiring() -> None:  # every few minutes
        vault = AsyncVault(Settings.from_env())
        await vault.startup()
        try:
            report = await sweep(vault, within=600, concurrency=8)
            log.info("sweep: %s", report)
        finally:
            await vault.aclose()

    def rotate() -> None:  # after putting a new key first in OAUTH_VAULT_ENCRYPTION_KEYS
        settings = Settings.from_env()
        storage = storage_from_url(settings.storage_url)  # from oauth_vault_mw.storage
        try:
            report = rotate_keys(storage, settings.encryption_keys)
        finally:
            storage.close()

A sweep uses the request path's machinery: single flight, the cross-process lease, rotation of
refresh tokens, ``invalid_grant`` marking and backoff, so it runs safely beside the app's own
requests and beside another sweep.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from ._async.vault import AsyncVault
from .core.crypto import Sealer, key_id
from .core.errors import CredentialUnreadable, StorageUnavailable
from .core.model import CredentialKey, StoredCredential
from .core.records import open_record
from .core.refresh import RefreshOutcome
from .storage import AsyncStorage, Storage

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_CONCURRENCY",
    "CredentialState",
    "Progress",
    "RefreshOutcome",
    "RotationReport",
    "SweepReport",
    "count_credentials",
    "count_expiring",
    "credential_states",
    "rotate_keys",
    "sweep",
]

DEFAULT_BATCH = 500
DEFAULT_CONCURRENCY = 8

Progress = Callable[[int, int], None]
"""Called with ``(done, total)`` after each record."""


def _no_progress(done: int, total: int) -> None:
    return None


# -- listing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialState:
    """One stored credential as ``credentials list`` shows it: never a token."""

    key: CredentialKey
    status: str
    expires_at: float | None
    """When the access token expires (the vault refreshes it before then)."""
    login_needed_at: float | None
    """When the user must log in again (see ``TokenSet.login_needed_at``); ``None`` when
    nothing known ends the credential, or when it cannot be opened."""
    refreshable: bool | None
    """Whether it holds a refresh token; ``None`` when it cannot be opened."""
    sealed_with: str
    """The id of the key that sealed it."""
    readable: bool


def credential_states(
    storage: Storage,
    sealer: Sealer,
    *,
    connection_id: str | None = None,
    status: str | None = None,
    login_needed_within: float | None = None,
    now: float | None = None,
    batch: int = DEFAULT_BATCH,
) -> Iterator[CredentialState]:
    """The stored credentials in key order (one paged pass), those of ``connection_id``,
    with ``status``, or whose user must log in again within ``login_needed_within`` seconds
    (marked ones included): what an app reads to warn its users in time. A record no
    configured key opens is listed from its clear copies (and left out by
    ``login_needed_within``, which needs what is sealed)."""
    at = time.time() if now is None else now
    for page in _pages(storage, batch):
        for record in page:
            if connection_id is not None and record.key.connection_id != connection_id:
                continue
            state = _state(sealer, record)
            if status is not None and state.status != status:
                continue
            if login_needed_within is not None and (
                state.login_needed_at is None or state.login_needed_at > at + login_needed_within
            ):
                continue
            yield state


def _state(sealer: Sealer, record: StoredCredential) -> CredentialState:
    sealed_with = sealer.kid_of(record.sealed) or "unknown"
    try:
        tokens = open_record(sealer, record)
    except CredentialUnreadable:
        return CredentialState(
            record.key, record.status, record.expires_at, None, None, sealed_with, False
        )
    return CredentialState(
        record.key,
        tokens.status,
        tokens.expires_at,
        tokens.login_needed_at,
        tokens.refresh_token is not None,
        sealed_with,
        True,
    )


# -- key rotation -------------------------------------------------------------------------


@dataclass
class RotationReport:
    """What ``keys rotate`` did. ``unreadable = len(missing) + damaged`` records, by cause."""

    resealed: int = 0
    current: int = 0
    missing_kids: dict[str, int] = field(default_factory=dict)  # key id -> records
    damaged: int = 0  # sealed with a configured key, but failed the integrity check

    @property
    def unreadable(self) -> int:
        return sum(self.missing_kids.values()) + self.damaged


def _pages(storage: Storage, batch: int) -> Iterator[list[StoredCredential]]:
    after: CredentialKey | None = None
    while True:
        page = storage.scan_credentials(after=after, limit=batch)
        if page:
            yield page
        if len(page) < batch:
            return
        after = page[-1].key


def count_credentials(storage: Storage, *, batch: int = DEFAULT_BATCH) -> int:
    """How many credentials the store holds (one paged pass)."""
    return sum(len(page) for page in _pages(storage, batch))


def rotate_keys(
    storage: Storage,
    keys: Sequence[bytes],
    *,
    batch: int = DEFAULT_BATCH,
    lease_ttl: float = 15.0,
    total: int = 0,
    progress: Progress = _no_progress,
    clock: Callable[[], float] = time.time,
) -> RotationReport:
    """Re-seal every credential not sealed with ``keys[0]`` in the current envelope format
    (``v1`` envelopes too, whatever their key); resumable, safe beside live apps.

    Each record is re-sealed under its refresh lease (so a refresh in flight is never
    overwritten: its rotated refresh token would be lost) and saved with compare-and-set on
    its version; a conflict re-reads the record and tries again. A record whose key is not in
    ``keys`` is counted as unreadable, by key id, and left as it is.
    """
    sealer = Sealer(keys)
    configured = {key_id(k) for k in keys}
    report = RotationReport()
    done = 0
    for page in _pages(storage, batch):
        for record in page:
            kid = sealer.kid_of(record.sealed) or "?"
            try:
                outcome = _reseal(storage, sealer, record, lease_ttl, clock)
            except CredentialUnreadable:
                if kid in configured:
                    report.damaged += 1
                else:
                    report.missing_kids[kid] = report.missing_kids.get(kid, 0) + 1
            else:
                if outcome == "resealed":
                    report.resealed += 1
                elif outcome == "current":
                    report.current += 1
            done += 1
            progress(done, total)
    return report


def _reseal(
    storage: Storage,
    sealer: Sealer,
    record: StoredCredential,
    lease_ttl: float,
    clock: Callable[[], float],
) -> Literal["resealed", "current", "gone"]:
    deadline = time.monotonic() + 2 * lease_ttl + 5
    pause = 0.02
    while True:
        if sealer.is_current(record.sealed):
            return "current"
        aad = record.key.aad()
        # CredentialUnreadable: counted. A v1 envelope (NUL-joined associated data) is
        # re-sealed as v2 even when its key is the current one.
        plaintext = sealer.unseal(record.sealed, aad, legacy_aad=record.key.legacy_aad())
        owner = secrets.token_hex(12)
        if storage.acquire_lease(record.key, owner, lease_ttl, clock()):
            try:
                latest = storage.get_credential(record.key)
                if latest is not None and latest.version == record.version:
                    resealed = replace(
                        record, sealed=sealer.seal(plaintext, aad), updated_at=clock()
                    )
                    if storage.save_credential(resealed, record.version):
                        return "resealed"
            finally:
                storage.release_lease(record.key, owner)
        elif time.monotonic() > deadline:
            raise StorageUnavailable(
                f"credential {record.key.connection_id}/{record.key.user_id} stayed leased "
                "by another process; rerun the rotation"
            )
        else:  # another process is refreshing it: it writes soon, maybe with the new key
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
        # Someone wrote in between (a refresh, a login): start again from what is stored.
        current = storage.get_credential(record.key)
        if current is None:
            return "gone"
        record = current


# -- the refresh sweep ------------------------------------------------------------------------


@dataclass
class SweepReport:
    """What ``credentials refresh`` did, by :data:`RefreshOutcome`."""

    refreshed: int = 0
    reauthentication_required: int = 0
    failed: int = 0
    fresh: int = 0
    not_started: int = 0  # left when ``deadline`` passed
    unconfigured: dict[str, int] = field(default_factory=dict)  # connection id -> failed

    def add(self, outcome: RefreshOutcome) -> None:
        if outcome == "refreshed":
            self.refreshed += 1
        elif outcome == "fresh":
            self.fresh += 1
        elif outcome == "reauthentication_required":
            self.reauthentication_required += 1
        else:
            self.failed += 1


async def _expiring_pages(
    storage: AsyncStorage, horizon: float, batch: int, connection_id: str | None
) -> AsyncIterator[list[StoredCredential]]:
    # Keys sort by connection first: one connection's credentials are one run of the scan,
    # from just before its smallest key (no account is empty) to the first key past it.
    after = None if connection_id is None else CredentialKey(connection_id, "", "")
    while True:
        page = await storage.scan_credentials(after=after, limit=batch, expiring_before=horizon)
        wanted = [r for r in page if connection_id in (None, r.key.connection_id)]
        if wanted:
            yield wanted
        if len(page) < batch or len(wanted) < len(page):
            return
        after = page[-1].key


async def count_expiring(
    storage: AsyncStorage,
    horizon: float,
    *,
    batch: int = DEFAULT_BATCH,
    connection_id: str | None = None,
) -> int:
    """How many active credentials expire before ``horizon`` (epoch seconds)."""
    total = 0
    async for page in _expiring_pages(storage, horizon, batch, connection_id):
        total += len(page)
    return total


async def sweep(
    vault: AsyncVault,
    *,
    within: float,
    concurrency: int = DEFAULT_CONCURRENCY,
    batch: int = DEFAULT_BATCH,
    connection_id: str | None = None,
    horizon: float | None = None,
    total: int = 0,
    progress: Progress = _no_progress,
    deadline: float | None = None,
) -> SweepReport:
    """Refresh every active credential expiring within ``within`` seconds, N at a time.

    ``concurrency`` workers each take the next credential the scan found and refresh it
    through :meth:`AsyncVault.refresh_if_expiring` (leases, single flight, rotation,
    ``invalid_grant`` marking, backoff: what a request does), handing it the scanned record;
    the next page is read when the last one runs out, so the refreshes in flight never drain
    at a page's end. ``horizon`` (default now + ``within``) bounds the scan; past ``deadline``
    (``time.monotonic()``) no new refresh starts (those count as ``not_started``). A
    credential of a connection no longer in the settings counts as failed, under
    ``unconfigured``.
    """
    report = SweepReport()
    end = vault.clock() + within if horizon is None else horizon
    found = _records(vault.storage, end, batch, connection_id)
    turn = asyncio.Lock()  # one worker at a time reads the scan
    done = 0

    async def worker() -> None:
        nonlocal done
        while True:
            async with turn:
                record = await anext(found, None)
            if record is None:
                return
            key = record.key
            if deadline is not None and time.monotonic() >= deadline:
                report.not_started += 1
            elif vault.settings.connection(key.connection_id) is None:
                report.failed += 1
                report.unconfigured[key.connection_id] = (
                    report.unconfigured.get(key.connection_id, 0) + 1
                )
            else:
                report.add(
                    await vault.refresh_if_expiring(
                        key.connection_id, key.user_id, within=within, record=record
                    )
                )
            done += 1
            progress(done, total)

    workers = [asyncio.ensure_future(worker()) for _ in range(max(1, concurrency))]
    try:
        await asyncio.gather(*workers)
    finally:  # one worker failed (or the sweep was cancelled): stop the others, then the scan
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await found.aclose()
    return report


async def _records(
    storage: AsyncStorage, horizon: float, batch: int, connection_id: str | None
) -> AsyncGenerator[StoredCredential, None]:
    async for page in _expiring_pages(storage, horizon, batch, connection_id):
        for record in page:
            yield record
