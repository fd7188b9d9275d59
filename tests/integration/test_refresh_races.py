"""What happens to a refresh when something else happens at the same moment.

Against the real development provider (refresh-token rotation with reuse detection: a
rotated-out refresh token is refused with ``invalid_grant``):

- a new login stores a new credential while a refresh of the old one is at the provider,
  and the old grant is refused: the caller gets the newer credential, not a 409;
- the store goes down between the provider's reply and the write of the rotated tokens
  (a real PostgreSQL server, stopped at that moment and started again): the write is
  retried while the lease is held, so the user is not asked to log in again;
- a disconnect arrives while a refresh is at the provider: it waits for the refresh, and
  revokes the refresh token the refresh rotated in, not the one it replaced.

The provider's ``fail(status=0, delay_ms=...)`` holds the next token request for a while, so
the other event lands while the refresh is in flight. A :class:`Clock` moves the vault past
the token's expiry instead of sleeping.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from oauth_vault_mw import AsyncVault, CredentialKey
from oauth_vault_mw.core.errors import StorageUnavailable
from tests.integration.test_leases import Clock
from tests.support.oidc_provider import DevProvider
from tests.support.postgres_server import PostgresServer
from tests.support.suite import settings_for, vault_login

pytestmark = pytest.mark.integration

HOLD_MS = 1500  # how long the provider holds the refresh


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture(scope="module")
def private_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this module's own, so stopping it disturbs no other test."""
    with PostgresServer.start_new() as server:
        yield server


async def test_invalid_grant_after_a_concurrent_login_serves_the_newer_credential(
    provider: DevProvider, browser: httpx.AsyncClient, unique_user: object
) -> None:
    login = unique_user()  # type: ignore[operator]
    clock = Clock()
    vault = AsyncVault(settings_for(provider), clock=clock)
    await vault.startup()
    try:
        user_id = await vault_login(vault, browser, login)
        clock.expire()
        before = provider.stats()
        provider.fail(status=0, count=1, delay_ms=HOLD_MS)  # holds the refresh below
        reading = asyncio.create_task(vault.get_connection_credentials("demo", user_id))
        await asyncio.sleep(0.4)  # the refresh is at the provider now
        # The user logs in again meanwhile; the provider ends the old grant.
        provider.revoke_grants(login)
        assert await vault_login(vault, browser, login) == user_id
        relogged = await vault.get_connection_credentials("demo", user_id)
        creds = await reading
        after = provider.stats()
        assert sum(after["refresh_errors"].values()) == sum(before["refresh_errors"].values()) + 1
        # Served the credential of the new login, not "log in again".
        assert creds.access_token == relogged.access_token
        record = await vault.storage.get_credential(CredentialKey("demo", user_id))
        assert record is not None
        assert record.status == "active"
    finally:
        provider.clear_failures()
        await vault.aclose()


class StopStoreAfterRefresh(httpx.AsyncBaseTransport):
    """The real network, but the store goes down as the provider's refresh reply arrives,
    and comes back ``down_for`` seconds later."""

    def __init__(self, server: PostgresServer, token_url: str, down_for: float) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.server = server
        self.token_url = token_url
        self.down_for = down_for
        self.restarted = threading.Event()
        self.armed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        is_refresh = b"grant_type=refresh_token" in request.content
        if self.armed and is_refresh and str(request.url) == self.token_url:
            self.armed = False
            await response.aread()
            await asyncio.to_thread(self.server.stop)
            threading.Timer(self.down_for, self._restart).start()
        return response

    def _restart(self) -> None:
        self.server.start()
        self.restarted.set()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_rotated_refresh_token_survives_a_storage_outage(
    provider: DevProvider,
    browser: httpx.AsyncClient,
    unique_user: object,
    private_server: PostgresServer,
) -> None:
    login = unique_user()  # type: ignore[operator]
    clock = Clock()
    url = private_server.create_database()
    transport = StopStoreAfterRefresh(private_server, provider.token_endpoint, down_for=2.0)
    vault = AsyncVault(
        settings_for(provider, storage_url=url), clock=clock, http_transport=transport
    )
    await vault.startup()
    try:
        user_id = await vault_login(vault, browser, login)
        first = await vault.get_connection_credentials("demo", user_id)
        before = provider.stats()
        clock.expire()
        transport.armed = True
        creds = await vault.get_connection_credentials("demo", user_id)  # store down meanwhile
        assert transport.restarted.is_set()
        assert creds.access_token != first.access_token
        key = CredentialKey("demo", user_id)
        record = await vault.storage.get_credential(key)
        assert record is not None
        assert record.version == 2  # the login's, then the refresh's: the write landed
        assert record.status == "active"
        # The next expiry refreshes with the token that was rotated in: the provider,
        # which refuses a rotated-out one, accepts it; nobody is asked to log in again.
        clock.expire()
        again = await vault.get_connection_credentials("demo", user_id)
        assert again.access_token != creds.access_token
        after = provider.stats()
        assert after["refresh_grants"] - before["refresh_grants"] == 2
        assert after["refresh_errors"] == before["refresh_errors"]
    finally:
        if not private_server.running:
            transport.restarted.wait(10)
        await vault.aclose()


async def test_storage_outage_longer_than_the_lease_is_a_503(
    provider: DevProvider,
    browser: httpx.AsyncClient,
    unique_user: object,
    private_server: PostgresServer,
) -> None:
    """The write is retried only while the lease keeps others from refreshing."""
    login = unique_user()  # type: ignore[operator]
    clock = Clock()
    url = private_server.create_database()
    transport = StopStoreAfterRefresh(private_server, provider.token_endpoint, down_for=8.0)
    settings = settings_for(provider, storage_url=url, provider_timeout=1, lease_ttl=4)
    vault = AsyncVault(settings, clock=clock, http_transport=transport)
    await vault.startup()
    try:
        user_id = await vault_login(vault, browser, login)
        clock.expire()
        transport.armed = True
        with pytest.raises(StorageUnavailable):
            await vault.get_connection_credentials("demo", user_id)
        assert not transport.restarted.is_set()  # gave up before the store was back
    finally:
        transport.restarted.wait(15)
        await vault.aclose()


async def test_disconnect_during_a_refresh_revokes_the_rotated_refresh_token(
    provider: DevProvider, browser: httpx.AsyncClient, unique_user: object
) -> None:
    login = unique_user()  # type: ignore[operator]
    clock = Clock()
    vault = AsyncVault(settings_for(provider), clock=clock)
    await vault.startup()
    try:
        user_id = await vault_login(vault, browser, login)
        clock.expire()
        before = provider.stats()
        provider.fail(status=0, count=1, delay_ms=HOLD_MS)
        reading = asyncio.create_task(vault.get_connection_credentials("demo", user_id))
        await asyncio.sleep(0.4)  # the refresh is at the provider now
        revoked = await vault.disconnect("demo", user_id)
        creds = await reading
        after = provider.stats()
        assert revoked
        # The refresh finished first (no rotated-out token was revoked and then refused)...
        assert after["refresh_grants"] - before["refresh_grants"] == 1
        assert after["refresh_errors"] == before["refresh_errors"]
        assert after["revocations"] - before["revocations"] == 1
        # ...then the token it rotated in was revoked: the grant is gone at the provider,
        # and the refreshed access token with it; nothing is left in the store.
        userinfo = await browser.get(
            provider.userinfo_endpoint, headers={"Authorization": f"Bearer {creds.access_token}"}
        )
        assert userinfo.status_code == 401
        assert await vault.storage.get_credential(CredentialKey("demo", user_id)) is None
    finally:
        provider.clear_failures()
        await vault.aclose()
