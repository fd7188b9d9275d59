"""Hot path on the shared backends: PostgreSQL (``AsyncSQLStorage``) and Redis
(``AsyncRedisStorage``), each next to a bare driver read + unseal on a held connection.

Throwaway servers from the test helpers (:class:`tests.support.postgres_server.PostgresServer`:
``initdb`` in a temp dir, fsync off; :class:`tests.support.redis_server.RedisServer`: no
persistence), both on 127.0.0.1, stopped in ``finally``. One credential is seeded through
the vault (with the service layer attached, as the middleware attaches it: every read also
goes to the audit trail, written every 50 reads). Per call:

* ours: ``await vault.get_connection_credentials("demo", user)`` on an ``AsyncVault`` whose
  storage URL is ``postgresql://...`` or ``redis://...``;
* PostgreSQL floor: on one held ``psycopg.AsyncConnection`` (autocommit, prepared after five
  runs as psycopg does by default), ``SELECT sealed FROM oauth_vault_credentials WHERE
  connection_id = %s AND user_id = %s AND account = %s`` + unseal (AES-GCM open + JSON
  decode: ``open_record``'s work);
* Redis floor: on one held ``redis.asyncio.Redis`` client, ``HGETALL`` of the credential's
  hash + the same unseal.

A section whose server binaries or driver are missing yields a "skipped: <reason>" row.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import cast

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.core.model import TokenSet

from ._common import (
    CONNECTION_ID,
    USER_ID,
    Call,
    HotResult,
    Seeded,
    Skipped,
    batch_seconds,
    calibrate,
    make_settings,
    new_encryption_key,
    new_secret_key,
    repeats_for,
    seed,
    time_interleaved,
)

__all__ = ["CASE", "run_postgres", "run_redis"]

ROOT = Path(__file__).resolve().parent.parent
CASE = "hot path: vault.get_connection_credentials()"
PG_SELECT = (
    "SELECT sealed FROM oauth_vault_credentials "
    "WHERE connection_id = %s AND user_id = %s AND account = %s"
)


def _test_support() -> None:
    """Make ``tests.support`` importable (the repository root on ``sys.path``)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def _helper_failures() -> Iterator[None]:
    """The test helpers report a server that will not start with ``pytest.fail`` (a
    ``BaseException``): an ordinary error here."""
    import pytest

    try:
        yield
    except pytest.fail.Exception as err:
        raise RuntimeError(str(err)) from None


def _redis_server_found() -> bool:
    """Where :class:`tests.support.redis_server.RedisServer` looks for it."""
    return Path("/usr/bin/redis-server").exists() or shutil.which("redis-server") is not None


def _missing(*modules: str) -> str | None:
    for name in modules:
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed"
    return None


async def _time(seeded: Seeded, floor: Call, quick: bool, label: str) -> HotResult:
    vault = seeded.vault

    async def ours() -> object:
        return await vault.get_connection_credentials(CONNECTION_ID, USER_ID)

    expected = await vault.get_connection_credentials(CONNECTION_ID, USER_ID)
    got = await floor()
    if not isinstance(got, TokenSet) or got.access_token != expected.access_token:
        raise RuntimeError(f"{label} floor read the wrong token")
    calls: dict[str, Call] = {"ours": ours, "floor": floor}
    batch = batch_seconds(quick)
    plan = {name: (fn, await calibrate(fn, batch)) for name, fn in calls.items()}
    t = await time_interleaved(plan, repeats_for(quick))
    return HotResult(CASE, label, t["ours"], t["floor"])


# -- PostgreSQL -------------------------------------------------------------------------------


async def _postgres(url: str, quick: bool) -> HotResult:
    import psycopg

    vault = AsyncVault(make_settings(url, new_secret_key(), new_encryption_key()))
    try:
        seeded = await seed(vault)
        sealer = vault.sealer
        key = seeded.key
        params = key.parts()
        aad = key.aad()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:

            async def floor() -> object:
                cur = await conn.execute(PG_SELECT, params)
                row = await cur.fetchone()
                assert row is not None
                return TokenSet.from_bytes(sealer.unseal(row[0], aad))

            result = await _time(seeded, floor, quick, "postgresql")
        await seeded.service.close()
    finally:
        await vault.aclose()
    return result


def run_postgres(quick: bool) -> HotResult | Skipped:
    logging.getLogger("oauth_vault_mw").setLevel(logging.ERROR)
    missing = _missing("psycopg", "pytest")
    if missing is not None:
        return Skipped(CASE, "postgresql", f"skipped: {missing}")
    _test_support()
    from tests.support.postgres_server import PostgresServer, find_pg_bin

    if find_pg_bin() is None:
        return Skipped(CASE, "postgresql", "skipped: no PostgreSQL server binaries (initdb)")
    with _helper_failures():
        server = PostgresServer.start_new()
    try:
        return asyncio.run(_postgres(server.url(), quick))
    finally:
        server.destroy()


# -- Redis ------------------------------------------------------------------------------------


async def _redis(url: str, quick: bool) -> HotResult:
    import redis.asyncio

    from oauth_vault_mw.storage.redis import AsyncRedisStorage

    vault = AsyncVault(make_settings(url, new_secret_key(), new_encryption_key()))
    client = redis.asyncio.Redis.from_url(url)
    try:
        seeded = await seed(vault)
        storage = vault.storage
        if not isinstance(storage, AsyncRedisStorage):
            raise RuntimeError(f"expected AsyncRedisStorage, got {storage!r}")
        sealer = vault.sealer
        record_key = storage._ops.record(seeded.key)  # the credential's hash
        aad = seeded.key.aad()

        async def floor() -> object:
            fields = await cast(Awaitable[dict[bytes, bytes]], client.hgetall(record_key))
            return TokenSet.from_bytes(sealer.unseal(fields[b"sealed"].decode(), aad))

        result = await _time(seeded, floor, quick, "redis")
        await seeded.service.close()
    finally:
        await client.aclose()
        await vault.aclose()
    return result


def run_redis(quick: bool) -> HotResult | Skipped:
    logging.getLogger("oauth_vault_mw").setLevel(logging.ERROR)
    missing = _missing("redis", "pytest")
    if missing is not None:
        return Skipped(CASE, "redis", f"skipped: {missing}")
    if not _redis_server_found():
        return Skipped(CASE, "redis", "skipped: redis-server not found")
    _test_support()
    from tests.support.redis_server import RedisServer

    with tempfile.TemporaryDirectory(prefix="oauth-vault-bench-redis-") as tmp:
        server = RedisServer(Path(tmp))
        with _helper_failures():
            server.start()
        try:
            return asyncio.run(_redis(server.url, quick))
        finally:
            server.stop()
