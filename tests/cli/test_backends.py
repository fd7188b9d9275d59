"""Rotation and the sweep page through every backend's ``scan_credentials`` alike.

SQLite always; Redis and PostgreSQL on the suite's throwaway servers (``integration``).
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import httpx
import pytest

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.core.crypto import Sealer, key_id
from oauth_vault_mw.core.model import CredentialKey, TokenSet
from oauth_vault_mw.core.records import open_record, seal_record
from oauth_vault_mw.jobs import sweep
from oauth_vault_mw.storage import async_storage_from_url, storage_from_url

from .conftest import cli_env, run_cli
from .test_keys_rotate import CONNECTIONS
from .test_ops import Provider, settings

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis_store_url", id="redis", marks=pytest.mark.integration),
    pytest.param("postgres_store_url", id="postgresql", marks=pytest.mark.integration),
]
COUNT = 12


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vault.db'}"
    return str(request.getfixturevalue(request.param))


def seed(url: str, key: bytes, expires_in: float) -> list[CredentialKey]:
    storage = storage_from_url(url)
    storage.setup()
    now = time.time()
    keys = [CredentialKey("demo", f"user-{i:02d}") for i in range(COUNT)]
    try:
        for i, k in enumerate(keys):
            t = TokenSet(f"at-{i}", f"rt-{i}", expires_at=now + expires_in, obtained_at=now - 60)
            assert storage.save_credential(seal_record(Sealer([key]), k, t, now=now), 0)
    finally:
        storage.close()
    return keys


def test_rotation(store_url: str) -> None:
    old, new = os.urandom(32), os.urandom(32)
    keys = seed(store_url, old, 600)
    env = cli_env(store_url, [base64.b64encode(k).decode() for k in (new, old)], CONNECTIONS)
    done = run_cli(env, "keys", "rotate", "--batch", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"resealed {COUNT}, already current 0, unreadable 0\n"
    again = run_cli(env, "keys", "rotate", "--batch", "5", "-q")
    assert again.stdout == f"resealed 0, already current {COUNT}, unreadable 0\n"
    storage = storage_from_url(store_url)
    try:
        for i, k in enumerate(keys):
            record = storage.get_credential(k)
            assert record is not None
            assert Sealer([new]).kid_of(record.sealed) == key_id(new)
            assert open_record(Sealer([new]), record).refresh_token == f"rt-{i}"
    finally:
        storage.close()


async def test_sweep(store_url: str) -> None:
    s = settings(storage_url=store_url)
    keys = seed(store_url, s.encryption_keys[0], 120)
    provider = Provider()
    vault = AsyncVault(s, storage=async_storage_from_url(store_url),
                       http_transport=httpx.MockTransport(provider))  # fmt: skip
    try:
        report = await sweep(vault, within=600, concurrency=4, batch=5)
        assert (report.refreshed, report.failed, provider.grants) == (COUNT, 0, COUNT)
        rotated = set()
        for k in keys:
            record = await vault.storage.get_credential(k)
            assert record is not None
            rotated.add(open_record(vault.sealer, record).refresh_token)
        assert rotated == {f"rt-new-{i}" for i in range(1, COUNT + 1)}
        again = await sweep(vault, within=600, concurrency=4, batch=5)
        assert (again.refreshed, provider.grants) == (0, COUNT)  # valid for an hour now
    finally:
        await vault.aclose()
