"""Service clients, access keys, app tokens and token exchange, through the HTTP routes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import httpx
import jwt
import pytest

from oauth_vault_mw._async.audit import AsyncAuditTrail
from oauth_vault_mw._async.service import AsyncServiceAccess
from oauth_vault_mw.core.app_tokens import AppTokens
from oauth_vault_mw.core.grants import READ_CREDENTIALS

from .conftest import Harness

pytestmark = pytest.mark.integration

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


def grant(pattern: str, action: str = READ_CREDENTIALS) -> str:
    return f"{pattern}:{action}"


async def _two_users(h: Harness, unique_user: Callable[[], str]) -> tuple[str, str]:
    await h.login(user=unique_user())
    alice = (await h.client.get("/auth/me")).json()["user_id"]
    await h.login("second", unique_user(), path="connect")
    h.client.cookies.clear()
    h.browser.cookies.clear()
    await h.login(user=unique_user())
    bob = (await h.client.get("/auth/me")).json()["user_id"]
    h.client.cookies.clear()
    return alice, bob


async def test_permission_matrix(harness: Harness, unique_user: Callable[[], str]) -> None:
    h = harness
    alice, bob = await _two_users(h, unique_user)
    service = AsyncServiceAccess(h.vault)
    everything = (
        await service.create_client("all", [grant("Connections/*/Users/*/Credentials")])
    ).value
    demo_only = (
        await service.create_client("demo-only", [grant("Connections/demo/Users/*/Credentials")])
    ).value
    alice_only = (
        await service.create_client(
            "alice-only",
            [grant(f"Connections/*/Users/{alice}/Credentials", "UserCredentialsViewer")],
        )
    ).value
    nothing = (await service.create_client("nothing", [])).value
    revoked_key = (
        await service.create_client("revoked-key", [grant("Connections/*/Users/*/Credentials")])
    ).value
    await service.revoke_access_key("revoked-key", revoked_key.split("_")[1])
    deleted = (
        await service.create_client("deleted", [grant("Connections/*/Users/*/Credentials")])
    ).value
    await service.revoke_client("deleted")
    second_key = (await service.add_access_key("all")).value

    def path(cid: str, uid: str) -> str:
        return f"/auth/connections/{cid}/users/{uid}/credentials"

    async def status(key: str | None, cid: str, uid: str, raw: str | None = None) -> int:
        headers = (
            {"Authorization": raw if raw is not None else f"Bearer {key}"} if (key or raw) else {}
        )
        answer = await h.client.get(path(cid, uid), headers=headers)
        assert answer.headers["content-type"].startswith("application/json")
        if answer.status_code == 200:
            assert answer.headers["cache-control"] == "no-store"
            assert set(answer.json()) == {
                "connection_id",
                "user_id",
                "access_token",
                "token_type",
                "expires_at",
                "scope",
            }
            assert answer.json()["user_id"] == uid
        return answer.status_code

    cases = [
        (everything, "demo", alice, 200),
        (everything, "second", alice, 200),
        (everything, "demo", bob, 200),
        (second_key, "demo", bob, 200),
        (everything, "second", bob, 404),  # granted, but bob has no 'second' credential
        (everything, "nope", bob, 404),  # unknown connection
        (demo_only, "demo", alice, 200),
        (demo_only, "demo", bob, 200),
        (demo_only, "second", alice, 403),
        (alice_only, "demo", alice, 200),
        (alice_only, "second", alice, 200),
        (alice_only, "demo", bob, 403),
        (nothing, "demo", alice, 403),
        (revoked_key, "demo", alice, 401),
        (deleted, "demo", alice, 401),
        (None, "demo", alice, 401),
    ]
    for key, cid, uid, expected in cases:
        assert await status(key, cid, uid) == expected, (key and key[:20], cid, uid)
    for raw in (
        "Bearer",
        "Basic abc",
        f"Bearer {everything}x",
        "Bearer ovsk_123",
        f"bearer  {everything} extra",
        "Bearer " + "a" * 5000,
    ):
        assert await status(None, "demo", alice, raw=raw) == 401, raw[:30]
    # A user's app token is not a service key, and a service key is not a user credential.
    h.client.cookies.clear()
    await h.login(user=unique_user())
    app_token = (await h.client.get("/auth/app-token")).json()["access_token"]
    h.client.cookies.clear()
    assert await status(app_token, "demo", alice) == 401
    on_user_route = await h.client.get(
        "/auth/connections/demo/credentials", headers={"Authorization": f"Bearer {everything}"}
    )
    assert on_user_route.status_code == 401
    # Audit: who, what, outcome; never a token.
    trail = h.vault.audit  # the middleware's trail: flush what it batched
    assert isinstance(trail, AsyncAuditTrail)
    await trail.flush()
    events = await service.audit.read(0)
    assert any(e.action == "credentials.read" and e.outcome == "forbidden" for e in events)
    assert any(e.action == "key.used" and e.outcome == "rejected" for e in events)
    assert everything not in str(events)


async def test_app_token_on_user_routes_and_jwks(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    h = harness
    await h.login(user=unique_user())
    issued = (await h.client.get("/auth/app-token")).json()
    assert issued["token_type"] == "Bearer"
    assert issued["expires_in"] == 300
    token = issued["access_token"]
    h.client.cookies.clear()
    bearer = {"Authorization": f"Bearer {token}"}
    me = await h.client.get("/auth/me", headers=bearer)
    assert me.status_code == 200
    creds = await h.client.get("/auth/connections/demo/credentials", headers=bearer)
    assert creds.status_code == 200
    assert (
        await h.client.get("/auth/me", headers={"Authorization": "Bearer x.y.z"})
    ).status_code == 401
    # Another service verifies the token with the published keys alone.
    jwks = (await h.client.get("/auth/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(token)
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(token, key.key, algorithms=["EdDSA"], audience="http://127.0.0.1:8000/auth")
    assert claims["sub"] == me.json()["user_id"]


async def test_token_exchange(harness: Harness, unique_user: Callable[[], str]) -> None:
    h = harness
    await h.login(user=unique_user())
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    app_token = (await h.client.get("/auth/app-token")).json()["access_token"]
    h.client.cookies.clear()
    service = AsyncServiceAccess(h.vault)
    key = (
        await service.create_client("backend", [grant("Connections/demo/Users/*/Credentials")])
    ).value
    stranger = (
        await service.create_client("stranger", [grant("Connections/second/Users/*/Credentials")])
    ).value

    async def exchange(form: dict[str, str], key: str | None = key) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return await h.client.post("/auth/token", data=form, headers=headers)

    good = {
        "grant_type": EXCHANGE,
        "subject_token": app_token,
        "subject_token_type": JWT_TYPE,
        "resource": "connection:demo",
    }
    answer = await exchange(good)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 4
    stored = await h.vault.get_connection_credentials("demo", user_id)
    assert body["access_token"] == stored.access_token
    assert answer.headers["cache-control"] == "no-store"

    expired = AppTokens([h.vault.settings.secret_key.encode()[:32]], issuer="x").issue("u", now=0)[
        0
    ]
    foreign = AppTokens([os.urandom(32)], issuer="https://other.example/auth").issue(
        user_id, now=time.time()
    )[0]
    forged = app_token[:-6] + ("AAAAAA" if not app_token.endswith("AAAAAA") else "BBBBBB")
    service_tokens = service.app_tokens
    old = service_tokens.issue(user_id, now=time.time() - 3600)[0]
    before = h.provider.stats()["refresh_grants"]
    cases = [
        ({**good, "subject_token": old}, key, 400, "invalid_grant"),
        ({**good, "subject_token": forged}, key, 400, "invalid_grant"),
        ({**good, "subject_token": foreign}, key, 400, "invalid_grant"),
        ({**good, "subject_token": expired}, key, 400, "invalid_grant"),
        ({**good, "resource": "connection:nope"}, key, 400, "invalid_target"),
        ({**good, "audience": "second"}, key, 400, "invalid_target"),
        (good, stranger, 403, "unauthorized_client"),
        (good, None, 401, "invalid_client"),
        (good, key + "x", 401, "invalid_client"),
        ({**good, "grant_type": "client_credentials"}, key, 400, "invalid_request"),
        ({k: v for k, v in good.items() if k != "subject_token"}, key, 400, "invalid_request"),
        ({**good, "subject_token_type": "urn:x"}, key, 400, "invalid_request"),
    ]
    for form, client_key, status, error in cases:
        answer = await exchange(form, client_key)
        assert answer.status_code == status, (form, answer.text)
        assert answer.json()["error"] == error
    assert h.provider.stats()["refresh_grants"] == before  # nothing refreshed for them
    raw = await h.client.post(
        "/auth/token",
        content=b"x" * 20000,
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert raw.status_code == 400
