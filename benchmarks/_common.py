"""What the hot-path and endpoint benchmarks share: settings, a seeded vault, timing helpers."""

from __future__ import annotations

import base64
import gc
import json
import os
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from oauth_vault_mw import AsyncVault, CredentialKey, Settings, Vault
from oauth_vault_mw._async.service import AsyncServiceAccess
from oauth_vault_mw.core.cookies import hash_id
from oauth_vault_mw.core.model import TokenSet

CONNECTION_ID = "demo"
USER_ID = "bench-user"
CREDENTIALS_PATH = f"/auth/connections/{CONNECTION_ID}/credentials"

# Nothing is called on the hot path: the provider URLs point at a closed loopback port.
CONNECTION: dict[str, Any] = {
    "id": CONNECTION_ID,
    "client_id": "bench-client",
    "client_secret": "bench-secret",
    "authorize_url": "http://127.0.0.1:1/authorize",
    "token_url": "http://127.0.0.1:1/token",
    "userinfo_url": "http://127.0.0.1:1/userinfo",
}


def new_secret_key() -> str:
    return secrets.token_urlsafe(48)


def new_encryption_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


# The headers the vault's credential route sends; the bare apps send them too (each endpoint
# run checks both answers against each other before timing).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _env(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        raise RuntimeError(f"{name} is not set: run the benchmarks with ./scripts/bench") from None


def settings_from_env() -> Settings:
    """The served vault app's settings: ``BENCH_STORAGE_URL``, ``BENCH_SECRET_KEY``,
    ``BENCH_ENCRYPTION_KEY`` (set by the runner)."""
    return make_settings(
        _env("BENCH_STORAGE_URL"), _env("BENCH_SECRET_KEY"), _env("BENCH_ENCRYPTION_KEY")
    )


def payload_from_env() -> dict[str, Any]:
    """What the served bare apps answer: ``BENCH_PAYLOAD``, the seeded credential's JSON."""
    payload: dict[str, Any] = json.loads(_env("BENCH_PAYLOAD"))
    return payload


def make_settings(storage_url: str, secret_key: str, encryption_key: str) -> Settings:
    return Settings.from_mapping(
        {
            "secret_key": secret_key,
            "encryption_keys": encryption_key,
            "base_url": "http://127.0.0.1:8000",
            "storage_url": storage_url,
            "connections": [CONNECTION],
        }
    )


@dataclass(frozen=True)
class Seeded:
    """A started vault holding one valid credential and one session for ``USER_ID``, with
    the service layer attached as the middleware attaches it (its audit trail records every
    credential read)."""

    vault: AsyncVault
    service: AsyncServiceAccess
    key: CredentialKey
    session_id: str
    session_hash: str
    cookie_value: str


async def seed(vault: AsyncVault) -> Seeded:
    await vault.startup()
    service = AsyncServiceAccess(vault)
    now = time.time()
    key = CredentialKey(CONNECTION_ID, USER_ID)
    await vault.put_tokens(key, new_tokens(now))
    session_id = secrets.token_urlsafe(32)
    session_hash = hash_id(session_id)
    await vault.storage.create_session(session_hash, USER_ID, now + 3600)
    cookie_value = vault.cookies.session_cookie(session_id).value
    return Seeded(vault, service, key, session_id, session_hash, cookie_value)


def new_tokens(now: float) -> TokenSet:
    return TokenSet(
        access_token="at-" + secrets.token_urlsafe(32),
        refresh_token="rt-" + secrets.token_urlsafe(32),
        expires_at=now + 3600,
        obtained_at=now,
        scope="openid",
    )


@dataclass(frozen=True)
class SyncSeeded:
    """A started sync vault (Flask) holding the same: one credential, one session."""

    vault: Vault
    key: CredentialKey
    session_hash: str
    cookie_value: str


def seed_sync(vault: Vault) -> SyncSeeded:
    vault.startup()
    now = time.time()
    key = CredentialKey(CONNECTION_ID, USER_ID)
    vault.put_tokens(key, new_tokens(now))
    session_id = secrets.token_urlsafe(32)
    session_hash = hash_id(session_id)
    vault.storage.create_session(session_hash, USER_ID, now + 3600)
    cookie_value = vault.cookies.session_cookie(session_id).value
    return SyncSeeded(vault, key, session_hash, cookie_value)


Call = Callable[[], Awaitable[object]]
SyncCall = Callable[[], object]


@dataclass(frozen=True)
class Timing:
    """Per-call cost in microseconds over ``repeats`` runs of ``calls`` calls each."""

    median_us: float
    min_us: float
    calls: int
    repeats: int


async def _run(fn: Call, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return time.perf_counter() - start


async def calibrate(fn: Call, target_seconds: float) -> int:
    """How many calls take about ``target_seconds`` (at least 20)."""
    for _ in range(20):  # warm-up: caches, lazily compiled statements, pools
        await fn()
    probe = 50
    elapsed = await _run(fn, probe)
    return max(20, int(target_seconds / max(elapsed / probe, 1e-9)))


async def time_interleaved(fns: dict[str, tuple[Call, int]], repeats: int) -> dict[str, Timing]:
    """Time each ``(function, calls)`` ``repeats`` times, alternating them so drift hits all.

    The collector is off while a batch runs (as in ``timeit``).
    """
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, (fn, calls) in fns.items():
            gc.collect()
            gc.disable()
            try:
                elapsed = await _run(fn, calls)
            finally:
                gc.enable()
            samples[name].append(elapsed / calls * 1e6)
    return {
        name: Timing(statistics.median(s), min(s), fns[name][1], repeats)
        for name, s in samples.items()
    }


def _run_sync(fn: SyncCall, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - start


def calibrate_sync(fn: SyncCall, target_seconds: float) -> int:
    """:func:`calibrate` for plain functions."""
    for _ in range(20):
        fn()
    probe = 50
    elapsed = _run_sync(fn, probe)
    return max(20, int(target_seconds / max(elapsed / probe, 1e-9)))


def time_interleaved_sync(fns: dict[str, tuple[SyncCall, int]], repeats: int) -> dict[str, Timing]:
    """:func:`time_interleaved` for plain functions (the Flask shell is sync)."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, (fn, calls) in fns.items():
            gc.collect()
            gc.disable()
            try:
                elapsed = _run_sync(fn, calls)
            finally:
                gc.enable()
            samples[name].append(elapsed / calls * 1e6)
    return {
        name: Timing(statistics.median(s), min(s), fns[name][1], repeats)
        for name, s in samples.items()
    }


@dataclass(frozen=True)
class HotResult:
    """One hot-path row: ours next to its floor (or its peer), per call."""

    case: str
    storage: str
    ours: Timing
    floor: Timing

    @property
    def ratio(self) -> float:
        return self.ours.median_us / self.floor.median_us


@dataclass(frozen=True)
class Skipped:
    """A row that could not be measured here (a tool or package is missing)."""

    case: str
    storage: str
    reason: str


def batch_seconds(quick: bool) -> float:
    """How long one timed batch of calls lasts (calibrated per function)."""
    return 0.02 if quick else 0.05


def repeats_for(quick: bool) -> int:
    return 5 if quick else 9
