"""Hot path on the shared backends: PostgreSQL (``AsyncSQLStorage``) and Redis
(``AsyncRedisStorage``), each next to a bare driver read + unseal on a held connection.

Throwaway servers from the test helpers (:class:`tests.support.postgres_server.PostgresServer`:
``initdb`` in a temp dir, fsync off; :class:`tests.support.redis_server.RedisServer`: no
persistence), both on 127.0.0.1, stopped in ``finally``. One credential is seeded through
the vault (with the service layer attached, as the middleware attaches it: every read also
goes to the audit trail, aggregated and written once a second). Per call:

* ours: ``await vault.get_connection_credentials("demo", user)`` on an ``AsyncVault`` whose
  storage URL is ``postgresql://...`` or ``redis://...``;
* PostgreSQL floor: on one held ``psycopg.AsyncConnection`` (autocommit, prepared after five
  runs as psycopg does by default), ``SELECT sealed FROM oauth_vault_credentials WHERE
  connection_id = %s AND user_id = %s AND account = %s`` + unseal (AES-GCM open + JSON
  decode: ``open_record``'s work);
* Redis floor: on one held ``redis.asyncio.Redis`` client, ``HGETALL`` of the credential's
  hash + the same unseal.

The same throwaway servers (:func:`throwaway`) also back the endpoint rows on PostgreSQL and
Redis (:func:`benchmarks.endpoint.run_storage_endpoint`). A backend whose server binaries or
driver are missing yields "skipped: <reason>" rows.
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
    batch_seconds,
    calibrate,
    make_settings,
    new_encryption_key,
    new_secret_key,
    repeats_for,
    seed,
    time_interleaved,
)

__all__ = ["BACKENDS", "CASE", "Unavailable", "run_postgres", "run_redis", "throwaway"]

ROOT = Path(__file__).resolve().parent.parent
CASE = "hot path: vault.get_connection_credentials()"
BACKENDS = ("postgresql", "redis")
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


def run_postgres(quick: bool, url: str) -> HotResult:
    """The PostgreSQL hot-path row on the throwaway server at ``url``."""
    logging.getLogger("oauth_vault_mw").setLevel(logging.ERROR)
    return asyncio.run(_postgres(url, quick))


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


def run_redis(quick: bool, url: str) -> HotResult:
    """The Redis hot-path row on the throwaway server at ``url``."""
    logging.getLogger("oauth_vault_mw").setLevel(logging.ERROR)
    return asyncio.run(_redis(url, quick))


# -- throwaway servers ------------------------------------------------------------------------


class Unavailable(Exception):
    """A backend cannot be measured here (its driver or server binaries are missing)."""


@contextlib.contextmanager
def throwaway(label: str) -> Iterator[str]:
    """A throwaway ``postgresql`` or ``redis`` server on 127.0.0.1 for the whole block (the
    hot path and the endpoint both use it); yields its URL; stops that server on the way
    out. :class:`Unavailable` names what is missing."""
    driver = {"postgresql": "psycopg", "redis": "redis"}[label]
    missing = _missing(driver, "pytest")
    if missing is not None:
        raise Unavailable(f"skipped: {missing}")
    _test_support()
    if label == "postgresql":
        from tests.support.postgres_server import PostgresServer, find_pg_bin

        if find_pg_bin() is None:
            raise Unavailable("skipped: no PostgreSQL server binaries (initdb)")
        with _helper_failures():
            server = PostgresServer.start_new()
        try:
            yield server.url()
        finally:
            server.destroy()
        return
    if not _redis_server_found():
        raise Unavailable("skipped: redis-server not found")
    from tests.support.redis_server import RedisServer

    with tempfile.TemporaryDirectory(prefix="oauth-vault-bench-redis-") as tmp:
        redis_server = RedisServer(Path(tmp))
        with _helper_failures():
            redis_server.start()
        try:
            yield redis_server.url
        finally:
            redis_server.stop()
