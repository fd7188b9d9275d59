"""``oauth-vault db prune``: expired sessions and login states go, in batches, live ones stay.

SQLite always; PostgreSQL and Redis (which expires its keys itself) on the suite's throwaway
servers (``integration``).
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest

from oauth_vault_mw.core.cookies import hash_id
from oauth_vault_mw.storage import storage_from_url

from .conftest import cli_env, run_cli
from .test_keys_rotate import CONNECTIONS

KEY = base64.b64encode(os.urandom(32)).decode()
EXPIRED, LIVE, OLD_STATES = 23, 4, 5


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres_store_url", id="postgresql", marks=pytest.mark.integration),
    ]
)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vault.db'}"
    return str(request.getfixturevalue(request.param))


def seed(url: str) -> float:
    """Expired and live sessions, and login states a previous release left behind."""
    storage = storage_from_url(url)
    storage.setup()
    now = time.time()
    try:
        for i in range(EXPIRED):
            storage.create_session(hash_id(f"old-{i}"), f"user-{i}", now - 60 - i)
        for i in range(LIVE):
            storage.create_session(hash_id(f"live-{i}"), f"user-{i}", now + 3600)
        for i in range(OLD_STATES):
            storage.put_login_state(hash_id(f"state-{i}"), b"sealed", now - 1)
    finally:
        storage.close()
    return now


def test_db_prune_removes_expired_sessions(sql_url: str) -> None:
    now = seed(sql_url)
    env = cli_env(sql_url, [KEY], CONNECTIONS)
    done = run_cli(env, "db", "prune", "--batch", "7")
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        == f"pruned {EXPIRED} expired sessions, {OLD_STATES} expired login states"
    )
    storage = storage_from_url(sql_url)
    try:
        for i in range(LIVE):
            assert storage.get_session(hash_id(f"live-{i}"), now) == f"user-{i}"
        # Nothing expired is left: a second run prunes nothing.
        again = run_cli(env, "db", "prune")
        assert again.stdout.strip() == "pruned 0 expired sessions, 0 expired login states"
        assert storage.get_session(hash_id("old-0"), now - 3600) is None
    finally:
        storage.close()


@pytest.mark.integration
def test_db_prune_on_redis_has_nothing_to_do(redis_store_url: str) -> None:
    done = run_cli(cli_env(redis_store_url, [KEY], CONNECTIONS), "db", "prune")
    assert done.returncode == 0, done.stderr
    assert "expires sessions and login states itself" in done.stdout


def test_db_prune_batch_is_bounded() -> None:
    done = run_cli(cli_env("memory://", [KEY], CONNECTIONS), "db", "prune", "--batch", "0")
    assert done.returncode == 1
    assert "--batch" in done.stderr
