"""The operations behind the CLI, in process: rotation under contention, the sweep's outcomes.

The provider here is an ``httpx.MockTransport`` (the real one is in ``test_sweep_provider``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from oauth_vault_mw import AsyncVault, Settings
from oauth_vault_mw.cli import parse_duration
from oauth_vault_mw.cli.progress import ProgressBar
from oauth_vault_mw.core.crypto import Sealer, key_id
from oauth_vault_mw.core.model import (
    REAUTHENTICATION_REQUIRED,
    CredentialKey,
    StoredCredential,
    TokenSet,
)
from oauth_vault_mw.core.records import open_record, seal_record
from oauth_vault_mw.core.refresh import decide
from oauth_vault_mw.jobs import SweepReport, rotate_keys, sweep
from oauth_vault_mw.storage import AsyncStorageAdapter, MemoryStorage

OLD, NEW = os.urandom(32), os.urandom(32)
NOW = 1_700_000_000.0


def settings(**overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "secret_key": "s" * 48,
        "encryption_keys": [base64.b64encode(k).decode() for k in (NEW, OLD)],
        "base_url": "http://127.0.0.1:8000",
        "storage_url": "memory://",
        "refresh_attempts": 1,
        "connections": [
            {
                "id": cid,
                "authorize_url": "http://127.0.0.1:9/authorize",
                "token_url": f"http://127.0.0.1:9/{cid}/token",
                "userinfo_url": "http://127.0.0.1:9/userinfo",
                "client_id": cid,
                "client_secret": f"{cid}-secret",
            }
            for cid in ("demo", "other")
        ],
    }
    data.update(overrides)
    return Settings.from_mapping(data)


def tokens(expires_in: float | None, *, lifetime: float = 3600, refresh: bool = True,
           n: int = 0) -> TokenSet:  # fmt: skip
    return TokenSet(
        f"at-{n}", f"rt-{n}" if refresh else None,
        expires_at=None if expires_in is None else NOW + expires_in,
        obtained_at=NOW + (expires_in or 0) - lifetime,
    )  # fmt: skip


# -- rotation ---------------------------------------------------------------------------------


class RacingStorage(MemoryStorage):
    """Before the rotation's first save, another process writes the record (sealed by ``by``)."""

    def __init__(self, by: Sealer) -> None:
        super().__init__()
        self.by = by
        self.raced = 0

    def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        if self.raced == 0 and expected_version > 0:
            self.raced += 1
            current = self.get_credential(record.key)
            assert current is not None
            fresh = seal_record(self.by, record.key, tokens(3600, n=99), now=NOW)
            assert super().save_credential(fresh, current.version)
        return super().save_credential(record, expected_version)


@pytest.mark.parametrize(("writer", "outcome"), [(NEW, "current"), (OLD, "resealed")])
def test_rotation_rereads_after_a_concurrent_write(writer: bytes, outcome: str) -> None:
    storage = RacingStorage(Sealer([writer]))
    key = CredentialKey("demo", "u1")
    storage.save_credential(seal_record(Sealer([OLD]), key, tokens(600), now=NOW), 0)
    report = rotate_keys(storage, [NEW, OLD])
    assert storage.raced == 1
    assert (report.resealed, report.current, report.unreadable) == (
        (1, 0, 0) if outcome == "resealed" else (0, 1, 0)
    )
    record = storage.get_credential(key)
    assert record is not None
    assert open_record(Sealer([NEW]), record).access_token == "at-99"  # the racer's write kept


def test_rotation_waits_for_a_refresh_in_flight() -> None:
    storage = MemoryStorage()
    key = CredentialKey("demo", "u1")
    storage.save_credential(seal_record(Sealer([OLD]), key, tokens(600), now=NOW), 0)
    assert storage.acquire_lease(key, "refresher", 0.3, time.time())
    started = time.monotonic()
    report = rotate_keys(storage, [NEW, OLD], lease_ttl=5)
    assert time.monotonic() - started >= 0.25  # it did not write under someone's lease
    assert report.resealed == 1
    record = storage.get_credential(key)
    assert record is not None
    assert Sealer([NEW]).kid_of(record.sealed) == key_id(NEW)
    assert storage.acquire_lease(key, "next", 1, time.time())  # and it let go of its own


def test_rotation_reports_progress_per_record() -> None:
    storage = MemoryStorage()
    for i in range(7):
        key = CredentialKey("demo", f"u{i}")
        storage.save_credential(seal_record(Sealer([OLD]), key, tokens(600), now=NOW), 0)
    seen: list[tuple[int, int]] = []
    report = rotate_keys(
        storage, [NEW], batch=3, total=7, progress=lambda d, t: seen.append((d, t))
    )
    assert report.missing_kids == {key_id(OLD): 7}
    assert seen == [(i, 7) for i in range(1, 8)]


# -- refresh_if_expiring and the sweep ------------------------------------------------------


class Provider:
    """A token endpoint: rotates refresh tokens, refuses revoked ones, can fail with 503."""

    def __init__(self, delay: float = 0.0) -> None:
        self.grants = 0
        self.revoked: set[str] = set()
        self.down = False
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            if self.down:
                return httpx.Response(503, json={"error": "temporarily_unavailable"})
            if form.get("refresh_token") in self.revoked:
                return httpx.Response(400, json={"error": "invalid_grant"})
            self.grants += 1
            body = {"access_token": f"at-new-{self.grants}", "token_type": "Bearer",
                    "expires_in": 3600, "refresh_token": f"rt-new-{self.grants}"}  # fmt: skip
            return httpx.Response(200, json=body)
        finally:
            self.in_flight -= 1


def make_vault(provider: Provider) -> AsyncVault:
    storage = AsyncStorageAdapter(MemoryStorage(), offload_reads=False, offload_writes=False)
    return AsyncVault(settings(), storage=storage, clock=lambda: NOW,
                      http_transport=httpx.MockTransport(provider))  # fmt: skip


async def put(vault: AsyncVault, user: str, t: TokenSet, cid: str = "demo") -> CredentialKey:
    key = CredentialKey(cid, user)
    await vault.storage.save_credential(seal_record(vault.sealer, key, t, now=NOW), 0)
    return key


async def stored(vault: AsyncVault, key: CredentialKey) -> TokenSet:
    record = await vault.storage.get_credential(key)
    assert record is not None
    return open_record(vault.sealer, record)


def test_decide_without_the_half_life_rule() -> None:
    short = tokens(200, lifetime=300)  # a 5-minute token with 200 s left
    assert decide(short, now=NOW, min_validity=600) == "use"  # the request path's rule
    assert decide(short, now=NOW, min_validity=600, half_life=False) == "refresh"
    assert decide(short, now=NOW, min_validity=100, half_life=False) == "use"


async def test_refresh_if_expiring_outcomes() -> None:
    provider = Provider()
    vault = make_vault(provider)
    expiring = await put(vault, "expiring", tokens(100))
    short = await put(vault, "short", tokens(200, lifetime=300))
    fresh = await put(vault, "fresh", tokens(3000))
    forever = await put(vault, "forever", tokens(None))
    revoked = await put(vault, "revoked", tokens(100, n=7))
    provider.revoked.add("rt-7")
    no_refresh = await put(vault, "no-refresh", tokens(100, refresh=False))

    async def outcome(key: CredentialKey) -> str:
        return await vault.refresh_if_expiring(key.connection_id, key.user_id, within=600)

    assert await outcome(expiring) == "refreshed"
    assert (await stored(vault, expiring)).refresh_token == "rt-new-1"  # rotated
    assert await outcome(short) == "refreshed"  # no half-life rule in a sweep
    assert await outcome(fresh) == "fresh"
    assert await outcome(forever) == "fresh"
    assert provider.grants == 2
    assert await outcome(revoked) == "reauthentication_required"
    assert (await stored(vault, revoked)).status == REAUTHENTICATION_REQUIRED  # marked
    assert await outcome(revoked) == "reauthentication_required"  # without asking again
    assert await outcome(no_refresh) == "reauthentication_required"
    assert await outcome(CredentialKey("demo", "nobody")) == "fresh"
    assert await vault.refresh_if_expiring("gone", "expiring", within=600) == "failed"
    assert provider.grants == 2


@pytest.mark.parametrize("expires_in", [100, -10])
async def test_refresh_if_expiring_fails_when_the_provider_is_down(expires_in: float) -> None:
    provider = Provider()
    vault = make_vault(provider)
    key = await put(vault, "u", tokens(expires_in))
    provider.down = True
    assert await vault.refresh_if_expiring("demo", "u", within=600) == "failed"
    assert await stored(vault, key) == tokens(expires_in)  # unchanged


async def test_sweep_counts_and_bounds_concurrency() -> None:
    provider = Provider(delay=0.02)
    vault = make_vault(provider)
    for i in range(20):
        await put(vault, f"u{i:02d}", tokens(100 + i))
    await put(vault, "later", tokens(5000))  # outside the window: not even scanned
    await put(vault, "x", tokens(100), cid="other")
    await put(vault, "y", tokens(100), cid="removed")  # its connection left the settings
    seen: list[tuple[int, int]] = []
    report = await sweep(vault, within=600, concurrency=3, batch=7, total=22,
                         progress=lambda d, t: seen.append((d, t)))  # fmt: skip
    assert (report.refreshed, report.reauthentication_required, report.failed, report.fresh) == (
        21, 0, 1, 0,
    )  # fmt: skip
    assert report.unconfigured == {"removed": 1}
    assert provider.max_in_flight == 3
    assert seen[-1] == (22, 22)
    assert await sweep(vault, within=600) == SweepReport(failed=1, unconfigured={"removed": 1})
    grants = provider.grants
    only = await sweep(vault, within=4000, connection_id="other")  # now valid for an hour
    assert (only.refreshed, provider.grants - grants) == (1, 1)


async def test_sweep_stops_starting_refreshes_after_its_deadline() -> None:
    vault = make_vault(Provider())
    for i in range(5):
        await put(vault, f"u{i}", tokens(100))
    report = await sweep(vault, within=600, deadline=time.monotonic() - 1)
    assert (report.refreshed, report.not_started) == (0, 5)


# -- small parts of the CLI -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("90", 90), ("1.5", 1.5),
     (" 10M ", 600), ("0", 0)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "10x", "-5m", "1e3", "10 m", "367d", "9" * 400])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
        parse_duration(text)


def test_progress_bar_on_a_terminal_redraws_one_line() -> None:
    out = io.StringIO()
    bar = ProgressBar("job", stream=out, tty=True)
    for i in range(1, 1001):
        bar(i, 1000)
    bar.close()
    text = out.getvalue()
    assert text.startswith("\rjob [")
    assert text.endswith("] 100%  1000/1000\n")
    assert text.count("\n") == 1
    assert text.count("\r") < 50  # throttled


def test_progress_bar_elsewhere_prints_a_line_per_tenth() -> None:
    out = io.StringIO()
    bar = ProgressBar("job", stream=out, tty=False)
    for i in range(1, 1001):
        bar(i, 1000)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines == [f"job: {p}% ({p * 10}/1000)" for p in range(10, 101, 10)]
    silent = io.StringIO()
    ProgressBar("job", stream=silent, tty=False)(0, 0)
    ProgressBar("job", stream=silent, enabled=False)(5, 10)
    assert silent.getvalue() == ""


class CountingStorage(MemoryStorage):
    """Counts the storage steps a refresh takes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        self._count("get")
        return super().get_credential(key)

    def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        self._count("acquire")
        return super().acquire_lease(key, owner, ttl, now)

    def release_lease(self, key: CredentialKey, owner: str) -> None:
        self._count("release")
        super().release_lease(key, owner)

    def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        self._count("save")
        return super().save_credential(record, expected_version)

    def save_credential_releasing(
        self, record: StoredCredential, expected_version: int, owner: str
    ) -> bool:
        self._count("save_releasing")
        return super().save_credential_releasing(record, expected_version, owner)


async def test_a_swept_refresh_takes_one_lease_write_and_one_save() -> None:
    """The scanned record is not read again; the lease just taken is the first attempt's
    renewal; the save of the new tokens lets go of the lease. Under the lease the record is
    still read again (another process may have refreshed it since the scan)."""
    counting = CountingStorage()
    storage = AsyncStorageAdapter(counting, offload_reads=False, offload_writes=False)
    vault = AsyncVault(settings(), storage=storage, clock=lambda: NOW,
                       http_transport=httpx.MockTransport(Provider()))  # fmt: skip
    key = await put(vault, "u", tokens(100))
    counting.calls.clear()
    report = await sweep(vault, within=600)
    assert report.refreshed == 1
    assert counting.calls == {"get": 1, "acquire": 1, "save_releasing": 1}
    assert (await stored(vault, key)).refresh_token == "rt-new-1"
    assert counting.acquire_lease(key, "someone-else", 10, NOW)  # released


async def test_a_retried_refresh_renews_the_lease_before_the_retry() -> None:
    provider = Provider()
    attempts: list[int] = []

    async def flaky(request: httpx.Request) -> httpx.Response:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            return httpx.Response(503, json={"error": "temporarily_unavailable"})
        return await provider(request)

    counting = CountingStorage()
    storage = AsyncStorageAdapter(counting, offload_reads=False, offload_writes=False)
    vault = AsyncVault(settings(refresh_attempts=2), storage=storage, clock=lambda: NOW,
                       http_transport=httpx.MockTransport(flaky))  # fmt: skip
    key = await put(vault, "u", tokens(100))
    counting.calls.clear()
    assert await vault.refresh_if_expiring("demo", "u", within=600) == "refreshed"
    assert len(attempts) == 2
    assert counting.calls["acquire"] == 2  # taken, then renewed before the retry
    assert (await stored(vault, key)).refresh_token == "rt-new-1"


async def test_sweep_of_one_connection_reads_only_its_run_of_the_scan() -> None:
    counting = CountingStorage()
    storage = AsyncStorageAdapter(counting, offload_reads=False, offload_writes=False)
    vault = AsyncVault(settings(), storage=storage, clock=lambda: NOW,
                       http_transport=httpx.MockTransport(Provider()))  # fmt: skip
    for cid in ("a-before", "demo", "other"):
        for i in range(5):
            await put(vault, f"u{i}", tokens(100), cid=cid)
    scans: list[CredentialKey | None] = []
    scan = counting.scan_credentials

    def recording(
        *, after: CredentialKey | None, limit: int, expiring_before: float | None = None
    ) -> list[StoredCredential]:
        scans.append(after)
        return scan(after=after, limit=limit, expiring_before=expiring_before)

    counting.scan_credentials = recording  # type: ignore[method-assign]
    report = await sweep(vault, within=600, connection_id="demo", batch=2)
    assert report.refreshed == 5
    assert len(scans) == 3  # demo's 5 in pages of 2; the third page reaches "other": done
    for untouched in ("a-before", "other"):
        assert (await stored(vault, CredentialKey(untouched, "u0"))).refresh_token == "rt-0"
