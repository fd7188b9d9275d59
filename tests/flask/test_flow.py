"""Login, /me, credentials, refresh and rotation through the Flask shell. Disconnecting,
logging out and the 409 of a refused refresh are conformance scenarios (tests/conformance)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from oauth_vault_mw.core.model import CredentialKey
from oauth_vault_mw.core.records import open_record
from tests.support.suite import TOKEN_TTL

from .conftest import Harness, both_storages

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "sqlite"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every scenario here runs on memory and on the embedded SQLite default."""
    return both_storages(request, tmp_path)


def _stored_refresh_token(h: Harness, user_id: str) -> str | None:
    record = h.vault.storage.get_credential(CredentialKey("demo", user_id))
    assert record is not None
    return open_record(h.vault.sealer, record).refresh_token


def test_login_me_and_credentials(harness: Harness, unique_user: Callable[[], str]) -> None:
    h = harness
    start = h.client.get("/auth/login/demo?return_to=/profile/demo")
    assert start.status_code == 302
    assert start.headers["cache-control"] == "no-store"
    assert start.headers["pragma"] == "no-cache"
    assert start.headers["location"].startswith(h.provider.authorization_endpoint)
    state_cookie = start.headers["set-cookie"]
    assert state_cookie.startswith("oauth_vault_state_")  # one per login in flight
    assert "Path=/auth; Max-Age=600; HttpOnly; SameSite=Lax" in state_cookie
    assert "Secure" not in state_cookie  # http on loopback
    state_name = state_cookie.split("=", 1)[0]

    done = h.client.get(h.authorize(start.headers["location"], unique_user()))
    assert done.status_code == 303
    assert done.headers["location"] == "/profile/demo"
    assert done.headers["cache-control"] == "no-store"
    cookies = done.headers.get_list("set-cookie")
    assert any(c.startswith(f"{state_name}=; Path=/auth; Max-Age=0") for c in cookies)
    assert any(c.startswith("oauth_vault_session=") and "Path=/;" in c for c in cookies)

    me = h.client.get("/auth/me")
    assert me.status_code == 200
    assert me.headers["cache-control"] == "no-store"
    body = me.json()
    user_id = body["user_id"]
    assert [(c["connection_id"], c["status"]) for c in body["connections"]] == [("demo", "active")]
    assert "token" not in me.text.replace("access_token", "")  # no refresh token anywhere

    creds = h.client.get("/auth/connections/demo/credentials")
    assert creds.status_code == 200
    assert creds.headers["content-type"] == "application/json"
    assert creds.headers["cache-control"] == "no-store"
    assert creds.headers["pragma"] == "no-cache"
    data = creds.json()
    assert sorted(data) == ["access_token", "connection_id", "expires_at", "extra", "scope",
                            "token_type", "user_id"]  # fmt: skip
    assert data["connection_id"] == "demo"
    assert data["user_id"] == user_id
    assert data["token_type"] == "Bearer"
    assert isinstance(data["expires_at"], int)

    # The host's views: request.connection_credentials and the function form agree.
    by_method = h.client.get("/profile/demo").json()
    by_function = h.client.get("/fn/demo").json()
    assert by_method["access_token"] == by_function["access_token"] == data["access_token"]
    assert by_function["user_id"] == user_id


def test_refresh_after_expiry_stores_the_rotated_token(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    h = harness
    h.login(user=unique_user())
    user_id = h.user_id()
    first = h.client.get("/profile/demo").json()
    rt_before = _stored_refresh_token(h, user_id)
    assert rt_before

    before = h.provider.stats()
    time.sleep(TOKEN_TTL + 0.2)  # expired: the next read refreshes
    second = h.client.get("/profile/demo").json()
    assert second["access_token"] != first["access_token"]
    assert second["expires_at"] > time.time()
    rt_after = _stored_refresh_token(h, user_id)
    assert rt_after
    assert rt_after != rt_before  # the provider rotated it, the vault kept the new one
    after = h.provider.stats()
    assert after["refresh_grants"] - before["refresh_grants"] == 1
    # The HTTP route serves the refreshed token without another grant.
    assert (
        h.client.get("/auth/connections/demo/credentials").json()["access_token"]
        == (second["access_token"])
    )
    assert h.provider.stats()["refresh_grants"] == after["refresh_grants"]


def test_provider_down_serves_valid_token_then_503(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    h = harness
    h.login(user=unique_user())
    current = h.client.get("/profile/demo").json()["access_token"]
    h.provider.fail(status=503, count=50)
    try:
        served = h.vault.get_connection_credentials("demo", h.user_id(), force_refresh=True)
        assert served.access_token == current  # still valid: the failed refresh serves it
        time.sleep(TOKEN_TTL + 0.2)
        for path in ("/auth/connections/demo/credentials", "/profile/demo"):
            answer = h.client.get(path)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "provider_unavailable"
            assert int(answer.headers["retry-after"]) >= 1
    finally:
        h.provider.clear_failures()
