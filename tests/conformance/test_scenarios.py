"""Conformance: every scenario runs against Starlette and Flask, with the same assertions."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import httpx
import jwt
import pytest

from oauth_vault_mw import ReauthenticationRequired
from oauth_vault_mw.core.app_tokens import AppTokens
from oauth_vault_mw.core.grants import READ_CREDENTIALS
from tests.support.suite import TOKEN_TTL

from .conftest import Site, error

pytestmark = pytest.mark.integration


def test_login_me_credentials(site: Site, unique_user: Callable[[], str]) -> None:
    done = site.login(user=unique_user(), return_to="/profile/demo")
    assert done.status_code == 303
    assert done.headers["location"] == "/profile/demo"
    assert done.headers["cache-control"] == "no-store"
    cookie = next(v for v in done.headers.get_list("set-cookie") if "oauth_vault_session=" in v)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    me = site.client.get("/auth/me")
    assert me.status_code == 200
    body = me.json()
    assert set(body) == {"user_id", "profile", "connections"}
    assert set(body["profile"]) == {"name", "email", "email_verified", "preferred_username"}
    assert [c["connection_id"] for c in body["connections"]] == ["demo"]
    assert set(body["connections"][0]) == {
        "connection_id",
        "status",
        "expires_at",
        "scope",
        "granted_scopes",
        "declined_scopes",
        "reauthenticate_at",
        "profile",
        "login_at",
        "refresh_count",
        "refreshed_at",
        "account_id",
        "accounts",
    }
    assert body["connections"][0]["profile"] == body["profile"]
    (account,) = body["connections"][0]["accounts"]
    assert account["default"] is True
    assert account["account_id"] == body["connections"][0]["account_id"]
    creds = site.client.get("/auth/connections/demo/credentials")
    assert creds.status_code == 200
    assert creds.headers["cache-control"] == "no-store"
    assert creds.headers["pragma"] == "no-cache"
    data = creds.json()
    assert set(data) == CREDENTIAL_FIELDS
    assert data["extra"] == {}  # the dev provider's connection keeps no response fields
    assert data["user_id"] == body["user_id"]
    assert isinstance(data["expires_at"], int)
    profile = site.client.get("/profile/demo")
    assert profile.json() == {"access_token": data["access_token"], "user_id": data["user_id"]}


def test_connect_second_and_disconnect(site: Site, unique_user: Callable[[], str]) -> None:
    site.login(user=unique_user())
    user_id = site.client.get("/auth/me").json()["user_id"]
    done = site.login("second", unique_user(), path="connect", return_to="/after")
    assert done.status_code == 303
    assert done.headers["location"] == "/after"
    assert "oauth_vault_session=" not in done.headers.get("set-cookie", "")  # same session
    me = site.client.get("/auth/me").json()
    assert me["user_id"] == user_id  # connect links to the logged-in user
    assert sorted(c["connection_id"] for c in me["connections"]) == ["demo", "second"]
    assert all(c["status"] == "active" for c in me["connections"])
    assert "access_token" not in str(me)
    assert "refresh_token" not in str(me)
    for connection_id in ("demo", "second"):
        stored = site.stored(connection_id, user_id)
        assert stored.refresh_token
        assert stored.refresh_token not in str(me)
        assert stored.access_token not in str(me)
    before = site.provider.stats()["revocations"]
    answer = site.client.delete("/auth/connections/second", headers={"Origin": site.base})
    assert answer.status_code == 200
    assert answer.json() == {"connection_id": "second", "revoked": True}
    assert site.provider.stats()["revocations"] == before + 1
    error(site.client.get("/auth/connections/second/credentials"), 404, "credential_not_found")
    error(site.client.delete("/auth/connections/second"), 404, "credential_not_found")
    me = site.client.get("/auth/me").json()
    assert [c["connection_id"] for c in me["connections"]] == ["demo"]


def test_refresh_rotation_and_single_flight(site: Site, unique_user: Callable[[], str]) -> None:
    site.login(user=unique_user())
    user_id = site.client.get("/auth/me").json()["user_id"]
    first = site.client.get("/profile/demo").json()["access_token"]
    rt_before = site.stored("demo", user_id).refresh_token
    time.sleep(TOKEN_TTL + 0.2)
    before = site.provider.stats()
    cookies = dict(site.client.cookies)

    def read(_: int) -> httpx.Response:
        with httpx.Client(base_url=site.base, cookies=cookies, timeout=30) as c:
            return c.get("/profile/demo")

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(read, range(50)))
    assert {a.status_code for a in answers} == {200}
    tokens = {a.json()["access_token"] for a in answers}
    assert len(tokens) == 1
    assert first not in tokens
    after = site.provider.stats()
    assert after["refresh_grants"] - before["refresh_grants"] == 1
    assert after["refresh_errors"] == before["refresh_errors"]  # no invalid_grant
    rt_after = site.stored("demo", user_id).refresh_token
    assert rt_after
    assert rt_after != rt_before


def test_refused_refresh_is_409_with_login_url(site: Site, unique_user: Callable[[], str]) -> None:
    login = unique_user()
    site.login(user=login)
    user_id = site.client.get("/auth/me").json()["user_id"]
    site.provider.revoke_grants(login)
    before = site.provider.stats()["refresh_errors"].get("invalid_grant", 0)
    time.sleep(TOKEN_TTL + 0.2)
    for path in ("/auth/connections/demo/credentials", "/profile/demo", "/fn/demo"):
        body = error(site.client.get(path), 409, "reauthentication_required")
        assert body == {
            "error": "reauthentication_required",
            "error_description": ReauthenticationRequired.default_description,
            "login_url": f"{site.base}/auth/login/demo",
        }
    # Marked once: no retry loop against the provider.
    assert site.provider.stats()["refresh_errors"].get("invalid_grant", 0) == before + 1
    me = site.client.get("/auth/me").json()
    assert me["connections"][0]["status"] == "reauthentication_required"
    # Logging in again heals the credential.
    site.login(user=login)
    assert site.client.get("/auth/me").json()["user_id"] == user_id
    assert site.client.get("/auth/connections/demo/credentials").status_code == 200


def test_provider_down_is_503_with_retry_after(site: Site, unique_user: Callable[[], str]) -> None:
    site.login(user=unique_user())
    time.sleep(TOKEN_TTL + 0.2)
    site.provider.fail(status=503, count=50)
    try:
        answer = site.client.get("/auth/connections/demo/credentials")
    finally:
        site.provider.clear_failures()
    error(answer, 503, "provider_unavailable")
    assert int(answer.headers["retry-after"]) >= 1


# -- service clients, app tokens, token exchange ---------------------------------------------

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE = "urn:ietf:params:oauth:token-type:"
JWT_TYPE = f"{TOKEN_TYPE}jwt"
FORM = "application/x-www-form-urlencoded"
CREDENTIAL_FIELDS = {"connection_id", "user_id", "access_token", "token_type", "expires_at",
                     "scope", "extra"}  # fmt: skip


def grant(pattern: str, action: str = READ_CREDENTIALS) -> str:
    return f"{pattern}:{action}"


def client_name(label: str) -> str:
    """Clients live in the served app's store for the whole session: names are unique."""
    return f"{label}-{uuid.uuid4().hex[:10]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def two_users(site: Site, unique_user: Callable[[], str]) -> tuple[str, str]:
    """alice (demo and second) and bob (demo only); leaves no session on the client."""
    site.login(user=unique_user())
    alice = site.client.get("/auth/me").json()["user_id"]
    site.login("second", unique_user(), path="connect")
    site.client.cookies.clear()
    site.browser.cookies.clear()
    site.login(user=unique_user())
    bob = site.client.get("/auth/me").json()["user_id"]
    site.client.cookies.clear()
    site.browser.cookies.clear()
    return alice, bob


def app_token(site: Site, unique_user: Callable[[], str]) -> tuple[str, str]:
    """(user id, app token) of a fresh login; leaves no session on the client."""
    site.login(user=unique_user())
    user_id = site.client.get("/auth/me").json()["user_id"]
    token = site.client.get("/auth/app-token").json()["access_token"]
    site.client.cookies.clear()
    site.browser.cookies.clear()
    return user_id, token


def test_service_route_permission_matrix(site: Site, unique_user: Callable[[], str]) -> None:
    alice, bob = two_users(site, unique_user)
    since = time.time() - 1
    names = {label: client_name(label) for label in
             ("all", "demo-only", "alice-only", "nothing", "revoked-key", "deleted")}  # fmt: skip
    with site.service() as service:
        everything = service.create_client(
            names["all"], [grant("Connections/*/Users/*/Credentials")]
        ).value
        demo_only = service.create_client(
            names["demo-only"], [grant("Connections/demo/Users/*/Credentials")]
        ).value
        alice_only = service.create_client(
            names["alice-only"],
            [grant(f"Connections/*/Users/{alice}/Credentials", "UserCredentialsViewer")],
        ).value
        nothing = service.create_client(names["nothing"], []).value
        revoked = service.create_client(
            names["revoked-key"], [grant("Connections/*/Users/*/Credentials")]
        )
        service.revoke_access_key(names["revoked-key"], revoked.key_id)
        deleted = service.create_client(
            names["deleted"], [grant("Connections/*/Users/*/Credentials")]
        ).value
        service.revoke_client(names["deleted"])
        second_key = service.add_access_key(names["all"]).value

    def ask(cid: str, uid: str, headers: dict[str, str]) -> httpx.Response:
        return site.client.get(f"/auth/connections/{cid}/users/{uid}/credentials",
                               headers=headers)  # fmt: skip

    def check(key: str | None, cid: str, uid: str, expected: int, code: str = "") -> None:
        answer = ask(cid, uid, bearer(key) if key else {})
        if expected != 200:
            error(answer, expected, code)
            return
        assert answer.status_code == 200, (cid, uid, answer.text)
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["pragma"] == "no-cache"
        body = answer.json()
        assert set(body) == CREDENTIAL_FIELDS
        assert (body["connection_id"], body["user_id"]) == (cid, uid)
        assert body["access_token"] == site.stored(cid, uid).access_token

    cases = [
        (everything, "demo", alice, 200, ""),
        (everything, "second", alice, 200, ""),
        (everything, "demo", bob, 200, ""),
        (second_key, "demo", bob, 200, ""),
        (everything, "second", bob, 404, "credential_not_found"),  # granted, none stored
        (everything, "nope", bob, 404, "unknown_connection"),
        (demo_only, "demo", alice, 200, ""),
        (demo_only, "demo", bob, 200, ""),
        (demo_only, "second", alice, 403, "forbidden"),
        (alice_only, "demo", alice, 200, ""),
        (alice_only, "second", alice, 200, ""),
        (alice_only, "demo", bob, 403, "forbidden"),
        (nothing, "demo", alice, 403, "forbidden"),
        (nothing, "nope", alice, 403, "forbidden"),  # the grant first: no id is revealed
        (demo_only, "nope", alice, 403, "forbidden"),
        (revoked.value, "demo", alice, 401, "not_authenticated"),
        (deleted, "demo", alice, 401, "not_authenticated"),
        (None, "demo", alice, 401, "not_authenticated"),
    ]
    for key, cid, uid, expected, code in cases:
        check(key, cid, uid, expected, code)
    for raw in ("Bearer", "Basic abc", f"Bearer {everything}x", "Bearer ovsk_123",
                f"bearer  {everything} extra", "Bearer " + "a" * 5000):  # fmt: skip
        error(ask("demo", alice, {"Authorization": raw}), 401, "not_authenticated")
    assert site.client.head(f"/auth/connections/demo/users/{alice}/credentials",
                            headers=bearer(everything)).status_code == 200  # fmt: skip
    answer = site.client.post(f"/auth/connections/demo/users/{alice}/credentials",
                              headers=bearer(everything))  # fmt: skip
    error(answer, 405, "method_not_allowed")
    error(site.client.get(f"/auth/connections/demo/users/{alice}/credentials/x"), 404,
          "not_found")  # fmt: skip
    # Denials are written at once; rejected keys are batched (a flood of bad keys must not
    # become a flood of writes): a batch is written when an event finds it a second old.
    time.sleep(1.1)
    error(ask("demo", alice, bearer(revoked.value)), 401, "not_authenticated")
    with site.service() as service:
        events = service.audit.read(since)
    reads = [(e.actor.split("/")[0], e.outcome, e.connection_id, e.user_id)
             for e in events if e.action == "credentials.read"]  # fmt: skip
    for label, cid, uid in (("nothing", "demo", alice), ("demo-only", "second", alice),
                            ("alice-only", "demo", bob)):  # fmt: skip
        assert (f"client:{names[label]}", "forbidden", cid, uid) in reads
    assert any(e.actor == f"key:{revoked.key_id}" and (e.action, e.outcome) ==
               ("key.used", "rejected") for e in events)  # fmt: skip
    text = str(events)
    assert not any(key in text for key in (everything, demo_only, revoked.value, second_key))
    # the secret part (43 characters, which may hold "_" themselves) is never in the trail
    assert not any(key.split("_", 2)[2] in text for key in (everything, revoked.value))


def test_app_token_on_user_routes_and_jwks(site: Site, unique_user: Callable[[], str]) -> None:
    site.login(user=unique_user())
    user_id = site.client.get("/auth/me").json()["user_id"]
    issued = site.client.get("/auth/app-token")
    assert issued.status_code == 200
    assert issued.headers["cache-control"] == "no-store"
    assert issued.headers["pragma"] == "no-cache"
    body = issued.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 300)
    token = body["access_token"]
    cookie = site.client.cookies["oauth_vault_session"]
    site.client.cookies.clear()
    site.browser.cookies.clear()
    error(site.client.get("/auth/app-token"), 401, "not_authenticated")

    # Without a cookie, the app token is the user: on the vault's routes and in app views.
    auth = bearer(token)
    me = site.client.get("/auth/me", headers=auth)
    assert me.status_code == 200
    assert me.json()["user_id"] == user_id
    creds = site.client.get("/auth/connections/demo/credentials", headers=auth)
    assert creds.status_code == 200
    assert creds.json()["user_id"] == user_id
    assert site.client.get("/profile/demo", headers=auth).json()["user_id"] == user_id
    # An app token cannot renew itself: only a session gets one (logout ends the chain).
    error(site.client.get("/auth/app-token", headers=auth), 401, "not_authenticated")
    # The token wins over another user's cookie; an invalid one is refused, cookie or not;
    # another scheme is no app token (the cookie decides).
    site.login(user=unique_user())
    other = site.client.get("/auth/me").json()["user_id"]
    assert other != user_id
    assert site.client.get("/auth/me", headers=auth).json()["user_id"] == user_id
    for bad in ("Bearer x.y.z", f"Bearer {token[:-4]}AAAA", f"Bearer {token} {token}"):
        if bad.count(" ") > 1:  # two words after Bearer: no bearer token at all
            assert site.client.get("/auth/me", headers={"Authorization": bad}).status_code == 200
            continue
        error(site.client.get("/auth/me", headers={"Authorization": bad}), 401,
              "not_authenticated")  # fmt: skip
        error(site.client.get("/profile/demo", headers={"Authorization": bad}), 401,
              "not_authenticated")  # fmt: skip
    basic = site.client.get("/auth/me", headers={"Authorization": "Basic abc"})
    assert basic.json()["user_id"] == other
    site.client.cookies.clear()
    site.client.cookies.set("oauth_vault_session", cookie)
    assert site.client.get("/auth/me").json()["user_id"] == user_id
    site.client.cookies.clear()

    # Another service verifies the token with the published keys alone.
    jwks = site.client.get("/auth/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks.headers["content-type"] == "application/json"
    assert jwks.headers["cache-control"] == "public, max-age=300"
    assert "pragma" not in jwks.headers
    assert site.client.head("/auth/.well-known/jwks.json").status_code == 200
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["typ"]) == ("EdDSA", "at+jwt")
    key = next(jwt.PyJWK(k) for k in jwks.json()["keys"] if k["kid"] == header["kid"])
    issuer = f"{site.base}/auth"
    claims = jwt.decode(token, key.key, algorithms=["EdDSA"], audience=issuer, issuer=issuer)
    assert claims["sub"] == user_id
    assert claims["exp"] - claims["iat"] == 300


def test_service_key_and_app_token_are_not_interchangeable(
    site: Site, unique_user: Callable[[], str]
) -> None:
    user_id, token = app_token(site, unique_user)
    with site.service() as service:
        key = service.create_client(
            client_name("backend"), [grant("Connections/*/Users/*/Credentials")]
        ).value
    # A service key is no user credential, on the vault's routes or in the app's views.
    for path in ("/auth/me", "/auth/connections/demo/credentials", "/profile/demo",
                 "/auth/app-token", "/auth/connect/demo"):  # fmt: skip
        error(site.client.get(path, headers=bearer(key)), 401, "not_authenticated")
    # An app token is no service key: not on the service route, not at the token endpoint.
    error(site.client.get(f"/auth/connections/demo/users/{user_id}/credentials",
                          headers=bearer(token)), 401, "not_authenticated")  # fmt: skip
    form = {"grant_type": EXCHANGE, "subject_token": token, "subject_token_type": JWT_TYPE,
            "resource": "connection:demo"}  # fmt: skip
    error(site.client.post("/auth/token", data=form, headers=bearer(token)), 401,
          "invalid_client")  # fmt: skip
    # The key still works where it belongs.
    answer = site.client.get(f"/auth/connections/demo/users/{user_id}/credentials",
                             headers=bearer(key))  # fmt: skip
    assert answer.status_code == 200


def test_token_exchange(site: Site, unique_user: Callable[[], str]) -> None:
    user_id, token = app_token(site, unique_user)
    with site.service() as service:
        key = service.create_client(
            client_name("backend"), [grant("Connections/*/Users/*/Credentials")]
        ).value
        stranger = service.create_client(
            client_name("stranger"), [grant("Connections/second/Users/*/Credentials")]
        ).value
        gone_name = client_name("gone")
        gone = service.create_client(gone_name, [grant("Connections/*/Users/*/Credentials")])
        service.revoke_access_key(gone_name, gone.key_id)
        old = service.app_tokens.issue(user_id, now=time.time() - 3600)[0]
        other_user = service.app_tokens.issue("nobody-" + uuid.uuid4().hex[:8],
                                              now=time.time())[0]  # fmt: skip
    expired = AppTokens([b"k" * 32], issuer="x").issue("u", now=0)[0]
    foreign = AppTokens([os.urandom(32)], issuer=f"{site.base}/auth").issue(
        user_id, now=time.time()
    )[0]
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")

    def exchange(form: dict[str, str], client_key: str | None = key) -> httpx.Response:
        return site.client.post("/auth/token", data=form,
                                headers=bearer(client_key) if client_key else {})  # fmt: skip

    good = {"grant_type": EXCHANGE, "subject_token": token, "subject_token_type": JWT_TYPE,
            "resource": "connection:demo"}  # fmt: skip

    def check_success(answer: httpx.Response) -> None:
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["pragma"] == "no-cache"
        body = answer.json()
        assert set(body) <= {"access_token", "issued_token_type", "token_type", "expires_in",
                             "scope"}  # fmt: skip
        assert body["issued_token_type"] == f"{TOKEN_TYPE}access_token"
        assert body["token_type"] == "Bearer"
        assert 0 < body["expires_in"] <= TOKEN_TTL
        assert body["access_token"] == site.stored("demo", user_id).access_token

    check_success(exchange(good))
    same_target = {"resource": "demo", "audience": "demo"}
    check_success(exchange({**good, **same_target,
                            "requested_token_type": f"{TOKEN_TYPE}access_token"}))  # fmt: skip
    before = site.provider.stats()["refresh_grants"]
    refresh_type = f"{TOKEN_TYPE}refresh_token"
    cases: list[tuple[dict[str, str], str | None, int, str]] = [
        ({**good, "subject_token": old}, key, 400, "invalid_grant"),
        ({**good, "subject_token": forged}, key, 400, "invalid_grant"),
        ({**good, "subject_token": foreign}, key, 400, "invalid_grant"),
        ({**good, "subject_token": expired}, key, 400, "invalid_grant"),
        ({**good, "subject_token": key}, key, 400, "invalid_grant"),
        ({**good, "subject_token": other_user}, key, 400, "invalid_grant"),  # nothing stored
        ({**good, "resource": "connection:second"}, key, 400, "invalid_grant"),  # not linked
        ({**good, "resource": "connection:nope"}, key, 400, "invalid_target"),
        ({**good, "audience": "second"}, key, 400, "invalid_target"),
        ({k: v for k, v in good.items() if k != "resource"}, key, 400, "invalid_target"),
        (good, stranger, 403, "unauthorized_client"),
        (good, None, 401, "invalid_client"),
        (good, key + "x", 401, "invalid_client"),
        (good, gone.value, 401, "invalid_client"),
        ({**good, "grant_type": "client_credentials"}, key, 400, "invalid_request"),
        ({k: v for k, v in good.items() if k != "grant_type"}, key, 400, "invalid_request"),
        ({k: v for k, v in good.items() if k != "subject_token"}, key, 400, "invalid_request"),
        ({**good, "subject_token": ""}, key, 400, "invalid_request"),
        ({**good, "subject_token_type": "urn:x"}, key, 400, "invalid_request"),
        ({**good, "requested_token_type": refresh_type}, key, 400, "invalid_request"),
    ]
    for form, client_key, status, code in cases:
        body = error(exchange(form, client_key), status, code)
        assert set(body) == {"error", "error_description"}
    assert site.provider.stats()["refresh_grants"] == before  # nothing refreshed for them

    # The body: form-encoded, each field once, at most 16384 bytes (chunked or not).
    def raw(content: bytes | Iterator[bytes], kind: str | None = FORM) -> httpx.Response:
        headers = {**bearer(key), **({"Content-Type": kind} if kind else {})}
        return site.client.post("/auth/token", content=content, headers=headers)

    encoded = urlencode(good)
    padded = f"{encoded}&pad=" + "x" * (16384 - len(encoded) - len("&pad="))
    assert len(padded) == 16384
    check_success(raw(padded.encode()))
    check_success(raw(padded.encode(), f"{FORM}; charset=utf-8"))
    check_success(raw(iter([padded[:9000].encode(), padded[9000:].encode()])))  # chunked
    refused = [
        raw((padded + "x").encode()),
        raw(iter([padded.encode(), b"x"])),
        raw(b"x" * 200_000),
        raw(encoded.encode(), "application/json"),
        raw(encoded.encode(), "multipart/form-data; boundary=x"),
        raw(encoded.encode(), None),
        raw(f"{encoded}&resource=connection:demo".encode()),  # a field twice
        site.client.post("/auth/token", json=good, headers=bearer(key)),
    ]
    for answer in refused:
        error(answer, 400, "invalid_request")
    answer = site.client.get("/auth/token")
    error(answer, 405, "method_not_allowed")
    assert answer.headers["allow"] == "POST"


def test_service_route_does_not_reveal_connection_ids(
    site: Site, unique_user: Callable[[], str]
) -> None:
    """A key without the grant learns nothing: an unknown connection and a configured one
    give the same 403, because the grant is checked before the connection is looked up."""
    alice = unique_user()
    with site.service() as service:
        narrow = service.create_client(
            client_name("narrow"), [grant("Connections/other/Users/*/Credentials")]
        ).value
    answers = [
        site.client.get(
            f"/auth/connections/{cid}/users/{alice}/credentials", headers=bearer(narrow)
        )
        for cid in ("demo", "nope")
    ]
    for answer in answers:
        error(answer, 403, "forbidden")


def test_incremental_authorization(site: Site, unique_user: Callable[[], str]) -> None:
    """A credential read needing a scope not granted: 403 ``insufficient_scope`` with the
    missing scopes and a connect URL; after that consent the read succeeds and the scopes
    granted before stay granted; a narrowed grant shows in ``/auth/me``."""
    user = unique_user()
    site.provider.decline_scopes(user, "email")
    site.login(user=user)
    entry = site.client.get("/auth/me").json()["connections"][0]
    assert entry["declined_scopes"] == ["email"]
    assert "email" not in entry["granted_scopes"]
    route = "/auth/connections/demo/credentials"
    body = error(site.client.get(route, params={"scope": "profile drive.file"}), 403,
                 "insufficient_scope")  # fmt: skip
    assert body["missing_scopes"] == ["drive.file"]
    login_url = str(body["login_url"])
    assert login_url == f"{site.base}/auth/connect/demo?scope=drive.file"
    start = site.client.get(login_url.removeprefix(site.base) + "&return_to=/done")
    assert start.status_code == 302
    done = site.client.get(site.authorize(start.headers["location"], user))
    assert (done.status_code, done.headers["location"]) == (303, "/done")
    granted = site.client.get(route, params={"scope": "drive.file profile email"})
    assert granted.status_code == 200, granted.text
    assert {"drive.file", "profile", "email"} <= set(granted.json()["scope"].split())
    entry = site.client.get("/auth/me").json()["connections"][0]
    assert entry["declined_scopes"] == []
    for bad in ("", "a a", 'x"y'):
        error(site.client.get("/auth/connect/demo", params={"scope": bad}), 400, "invalid_request")
        error(site.client.get(route, params={"scope": bad}), 400, "invalid_request")
    error(site.client.get("/auth/login/demo", params={"scope": "x"}), 400, "invalid_request")
