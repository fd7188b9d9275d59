"""The development provider the suites share, the settings that point a vault at it, and a
login at the vault level (a pytest plugin, listed in ``tests/conftest.py``).

Fixtures:

- ``provider`` (session): one :class:`DevProvider` for the whole session, started on first
  use, with the clients ``demo`` and ``second`` (access tokens live :data:`TOKEN_TTL`
  seconds) whose redirect URIs cover :data:`BASE` and :data:`HTTPS_BASE` (in-process
  apps), ``server_port`` and the
  ``conformance_ports`` (apps served by a real server);
- ``server_port`` (session): a free port for a test that serves its app with a real server
  (the browser test, the Flask threads tests);
- ``conformance_ports`` (session): one free port per framework for the conformance suite;
- ``unique_user`` (function): a fresh login name at each call (accounts never collide
  across tests that share the provider);
- ``redis_cluster``, ``redis_cluster_url`` (session), ``redis_cluster_store_url`` (function):
  a throwaway three-master Redis Cluster, its ``redis+cluster://`` URL, and that URL after
  ``FLUSHALL`` (see :mod:`tests.support.redis_cluster`);
- ``pgbouncer``, ``pgbouncer_url`` (session), ``pgbouncer_store_url`` (function): PgBouncer in
  transaction pooling mode before the test PostgreSQL server, the storage URL through it, and
  that URL on emptied tables (see :mod:`tests.support.pgbouncer`).

Counters at the provider (``provider.stats()``) are session-wide: compare before and after.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from oauth_vault_mw import AsyncVault, Settings, Vault

from .oidc_provider import DevProvider, complete_login, complete_login_async, redirect_params
from .pgbouncer import pgbouncer, pgbouncer_store_url, pgbouncer_url
from .ports import free_port
from .redis_cluster import redis_cluster, redis_cluster_store_url, redis_cluster_url

__all__ = [
    "BASE",
    "CONNECTIONS",
    "HTTPS_BASE",
    "TOKEN_TTL",
    "conformance_ports",
    "connection_settings",
    "new_key",
    "pgbouncer",
    "pgbouncer_store_url",
    "pgbouncer_url",
    "provider",
    "redis_cluster",
    "redis_cluster_store_url",
    "redis_cluster_url",
    "server_port",
    "settings_for",
    "unique_user",
    "vault_login",
    "vault_login_sync",
]

BASE = "http://127.0.0.1:8000"
"""Where the in-process apps say they are (their ``base_url``)."""
HTTPS_BASE = "https://app.test"
"""An https origin for in-process apps (``__Host-`` cookies), registered at the provider."""
TOKEN_TTL = 4
"""Seconds an access token from the provider lives."""
CONNECTIONS = ("demo", "second")
SCOPES = ["openid", "profile", "email", "offline_access"]


@pytest.fixture(scope="session")
def server_port() -> int:
    """A port for tests that serve the app with a real server."""
    return free_port()


@pytest.fixture(scope="session")
def conformance_ports() -> dict[str, int]:
    """Ports for the conformance suite's real servers, one per framework."""
    return {"starlette": free_port(), "flask": free_port()}


@pytest.fixture(scope="session")
def provider(server_port: int, conformance_ports: dict[str, int]) -> Iterator[DevProvider]:
    ports = [server_port, *conformance_ports.values()]
    bases = [BASE, HTTPS_BASE, *(f"http://127.0.0.1:{port}" for port in ports)]
    clients = [
        {
            "client_id": cid,
            "client_secret": f"{cid}-secret",
            "redirect_uris": [f"{b}/auth/callback/{cid}" for b in bases],
        }
        for cid in CONNECTIONS
    ]
    with DevProvider(clients=clients, access_token_ttl=TOKEN_TTL) as op:
        yield op


@pytest.fixture
def unique_user(request: pytest.FixtureRequest) -> Callable[[], str]:
    counter = iter(range(1000))
    return lambda: f"{request.node.name[:40]}-{next(counter)}-{os.getpid()}"


def new_key() -> str:
    """A fresh encryption key, as the settings take it (base64 of 32 bytes)."""
    return base64.b64encode(os.urandom(32)).decode()


def connection_settings(provider: DevProvider) -> list[dict[str, Any]]:
    """The ``connections`` setting for the provider's clients."""
    return [
        {
            "id": cid,
            "issuer": provider.issuer,
            "client_id": cid,
            "client_secret": f"{cid}-secret",
            "scopes": SCOPES,
        }
        for cid in CONNECTIONS
    ]


def settings_for(provider: DevProvider, base: str = BASE, **overrides: Any) -> Settings:
    """Settings of a vault on ``memory://`` that logs in through ``provider``."""
    data: dict[str, Any] = {
        "secret_key": "s" * 48,
        "encryption_keys": [new_key()],
        "base_url": base,
        "storage_url": "memory://",
        "provider_timeout": 2,
        "connections": connection_settings(provider),
    }
    data.update(overrides)
    return Settings.from_mapping(data)


async def vault_login(
    vault: AsyncVault, browser: httpx.AsyncClient, login: str, connection_id: str = "demo"
) -> str:
    """A whole login with no framework: the vault's ``begin_login``, the provider's pages in
    ``browser``, the vault's ``complete_login`` on the redirect back. Returns the user id."""
    url, state = await vault.begin_login(connection_id, return_to="/")
    back = await complete_login_async(browser, url, login=login)
    done = await vault.complete_login(
        connection_id, redirect_params(back), state_cookie=state.value, session_cookie=None
    )
    return done.user_id


def vault_login_sync(
    vault: Vault, browser: httpx.Client, login: str, connection_id: str = "demo"
) -> str:
    """:func:`vault_login` for the sync vault."""
    url, state = vault.begin_login(connection_id, return_to="/")
    back = complete_login(browser, url, login=login)
    done = vault.complete_login(
        connection_id, redirect_params(back), state_cookie=state.value, session_cookie=None
    )
    return done.user_id
