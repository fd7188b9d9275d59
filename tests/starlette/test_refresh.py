"""Login, refresh, rotation and single flight against the real provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from oauth_vault_mw import AsyncVault, ReauthenticationRequired
from oauth_vault_mw.core.model import CredentialKey
from oauth_vault_mw.core.records import open_record
from oauth_vault_mw.storage import AsyncStorage, async_storage_from_url
from tests.support.suite import TOKEN_TTL, settings_for

from .conftest import Harness

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncStorage:
    """Every scenario here runs on memory and on the embedded SQLite default."""
    if request.param == "memory":
        return async_storage_from_url("memory://")
    return async_storage_from_url(f"sqlite:///{tmp_path / 'vault.db'}")


async def _stored_refresh_token(h: Harness, user_id: str) -> str | None:
    record = await h.vault.storage.get_credential(CredentialKey("demo", user_id))
    assert record is not None
    return open_record(h.vault.sealer, record).refresh_token


async def test_login_read_refresh_rotation_and_single_flight(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    h = harness
    before = h.provider.stats()
    done = await h.login(user=unique_user(), return_to="/profile/demo")
    assert done.status_code == 303
    assert done.headers["location"] == "/profile/demo"

    me = (await h.client.get("/auth/me")).json()
    user_id = me["user_id"]
    assert [c["connection_id"] for c in me["connections"]] == ["demo"]
    first = (await h.client.get("/auth/connections/demo/credentials")).json()
    assert first["user_id"] == user_id
    assert first["token_type"] == "Bearer"
    rt_before = await _stored_refresh_token(h, user_id)
    assert rt_before

    # Past the refresh point (half of the 4 s lifetime): the next read refreshes.
    await asyncio.sleep(TOKEN_TTL / 2 + 0.5)
    second = (await h.client.get("/profile/demo")).json()
    assert second["access_token"] != first["access_token"]
    rt_after = await _stored_refresh_token(h, user_id)
    assert rt_after
    assert rt_after != rt_before

    # Again past expiry: 200 concurrent readers, one refresh grant at the provider.
    await asyncio.sleep(TOKEN_TTL + 0.2)
    mid = h.provider.stats()
    answers = await asyncio.gather(*(h.client.get("/profile/demo") for _ in range(200)))
    assert {a.status_code for a in answers} == {200}
    tokens = {a.json()["access_token"] for a in answers}
    assert len(tokens) == 1
    assert second["access_token"] not in tokens
    after = h.provider.stats()
    assert after["refresh_grants"] - mid["refresh_grants"] == 1
    assert after["refresh_grants"] - before["refresh_grants"] == 2
    assert after["refresh_errors"].get("invalid_grant", 0) == before["refresh_errors"].get(
        "invalid_grant", 0
    )


async def test_force_refresh_gets_a_new_token(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    h = harness
    await h.login(user=unique_user())
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    old = await h.vault.get_connection_credentials("demo", user_id)
    new = await h.vault.get_connection_credentials("demo", user_id, force_refresh=True)
    assert new.access_token != old.access_token
    again = await h.vault.get_connection_credentials("demo", user_id)
    assert again.access_token == new.access_token


async def test_refused_refresh_token_demands_reauthentication(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    h = harness
    login = unique_user()
    await h.login(user=login)
    h.provider.revoke_grants(login)
    answer = await h.client.get("/auth/connections/demo/credentials?x=1")
    assert answer.status_code == 200  # still valid: no refresh needed yet
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    before = h.provider.stats()["refresh_errors"].get("invalid_grant", 0)
    with pytest.raises(ReauthenticationRequired):
        await h.vault.get_connection_credentials("demo", user_id, force_refresh=True)
    # Marked: no retry loop against the provider, the HTTP route answers 409 with login_url.
    answer = await h.client.get("/auth/connections/demo/credentials")
    assert answer.status_code == 409
    body = answer.json()
    assert body["error"] == "reauthentication_required"
    assert body["login_url"] == "http://127.0.0.1:8000/auth/login/demo"
    me = (await h.client.get("/auth/me")).json()
    assert me["connections"][0]["status"] == "reauthentication_required"
    assert h.provider.stats()["refresh_errors"].get("invalid_grant", 0) == before + 1
    # Logging in again heals the credential.
    await h.login(user=login)
    assert (await h.client.get("/auth/connections/demo/credentials")).status_code == 200


async def test_provider_down_serves_valid_token_or_503(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    h = harness
    await h.login(user=unique_user())
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    current = await h.vault.get_connection_credentials("demo", user_id)
    h.provider.fail(status=503, count=20)
    try:
        # The stored token is still valid: a failed refresh serves it.
        served = await h.vault.get_connection_credentials("demo", user_id, force_refresh=True)
        assert served.access_token == current.access_token
        await asyncio.sleep(TOKEN_TTL + 0.2)
        answer = await h.client.get("/auth/connections/demo/credentials")
        assert answer.status_code == 503
        assert answer.json()["error"] == "provider_unavailable"
        assert int(answer.headers["retry-after"]) >= 1
    finally:
        h.provider.clear_failures()


async def test_garbage_from_provider_is_retried(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    h = harness
    await h.login(user=unique_user())
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    await asyncio.sleep(TOKEN_TTL / 2 + 0.5)
    h.provider.fail(status=200, count=1, body="<html>oops</html>")
    try:
        fresh = await h.vault.get_connection_credentials("demo", user_id)
    finally:
        h.provider.clear_failures()
    assert fresh.expires_at is not None


async def test_hanging_provider_is_bounded_and_not_hammered(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    h = harness
    await h.login(user=unique_user())
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    # A vault on the same storage that gives the provider 0.5 s per call.
    impatient = AsyncVault(
        settings_for(
            h.provider, provider_timeout=0.5,
            encryption_keys=list(h.vault.settings.encryption_keys),
        ),
        storage=h.vault.storage,
    )  # fmt: skip
    current = await impatient.get_connection_credentials("demo", user_id)
    h.provider.fail(status=0, delay_ms=6000, count=10)  # hang far past the timeout
    try:
        started = time.monotonic()
        served = await impatient.get_connection_credentials("demo", user_id, force_refresh=True)
        elapsed = time.monotonic() - started
        assert served.access_token == current.access_token  # still valid: served
        assert elapsed < 2 * 0.5 + 0.5  # the whole refresh is bounded, retries included
        asked = h.provider.stats()["token_requests"]
        again = await impatient.get_connection_credentials("demo", user_id, force_refresh=True)
        assert again.access_token == current.access_token
        assert h.provider.stats()["token_requests"] == asked  # backoff: not asked again
    finally:
        h.provider.clear_failures()
        await impatient.aclose()
