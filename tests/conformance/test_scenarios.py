"""Conformance: every scenario runs against Starlette and Flask, with the same assertions."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.integration.conftest import TOKEN_TTL

from .conftest import Site

pytestmark = pytest.mark.integration


def error(answer: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body: dict[str, object] = answer.json()
    assert body["error"] == code
    assert isinstance(body["error_description"], str)
    return body


def with_param(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{parts.path}?{urlencode(query)}"


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
    assert set(body) == {"user_id", "connections"}
    assert [c["connection_id"] for c in body["connections"]] == ["demo"]
    assert set(body["connections"][0]) == {"connection_id", "status", "expires_at", "scope"}
    creds = site.client.get("/auth/connections/demo/credentials")
    assert creds.status_code == 200
    assert creds.headers["cache-control"] == "no-store"
    assert creds.headers["pragma"] == "no-cache"
    data = creds.json()
    assert set(data) == {"connection_id", "user_id", "access_token", "token_type", "expires_at",
                         "scope"}  # fmt: skip
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
    me = site.client.get("/auth/me").json()
    assert me["user_id"] == user_id
    assert sorted(c["connection_id"] for c in me["connections"]) == ["demo", "second"]
    before = site.provider.stats()["revocations"]
    answer = site.client.delete("/auth/connections/second", headers={"Origin": site.base})
    assert answer.status_code == 200
    assert answer.json() == {"connection_id": "second", "revoked": True}
    assert site.provider.stats()["revocations"] == before + 1
    error(site.client.get("/auth/connections/second/credentials"), 404, "credential_not_found")
    error(site.client.delete("/auth/connections/second"), 404, "credential_not_found")


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
    site.provider.revoke_grants(login)
    time.sleep(TOKEN_TTL + 0.2)
    body = error(site.client.get("/auth/connections/demo/credentials"), 409,
                 "reauthentication_required")  # fmt: skip
    assert body["login_url"] == f"{site.base}/auth/login/demo"
    error(site.client.get("/profile/demo"), 409, "reauthentication_required")
    me = site.client.get("/auth/me").json()
    assert me["connections"][0]["status"] == "reauthentication_required"


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


def test_logout(site: Site, unique_user: Callable[[], str]) -> None:
    site.login(user=unique_user())
    cookie = site.client.cookies["oauth_vault_session"]
    error(site.client.post("/auth/logout", headers={"Origin": "https://evil.example"}), 403,
          "forbidden_origin")  # fmt: skip
    answer = site.client.post("/auth/logout", headers={"Origin": site.base})
    assert answer.status_code == 200
    assert answer.json() == {"logged_out": True}
    site.client.cookies.set("oauth_vault_session", cookie)
    error(site.client.get("/auth/me"), 401, "not_authenticated")


def test_login_errors(site: Site, unique_user: Callable[[], str]) -> None:
    start = site.client.get("/auth/login/demo")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    callback = site.authorize(start.headers["location"], unique_user())
    error(site.client.get(with_param(callback, state="forged")), 400, "invalid_state")
    error(site.client.get(with_param(callback, iss="http://127.0.0.1:1")), 400,
          "invalid_callback")  # fmt: skip
    # Both consumed the state: the genuine callback is now a replay.
    error(site.client.get(callback), 400, "invalid_state")
    error(site.client.get(callback + "&state=again"), 400, "invalid_request")
    error(site.client.get("/auth/callback/demo?" + "a=b&" * 3000), 400, "invalid_request")
    start = site.client.get("/auth/login/demo")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    denial = {"error": "access_denied", "state": state, "iss": site.provider.issuer}
    denied = f"/auth/callback/demo?{urlencode(denial)}"
    error(site.client.get(denied), 400, "access_denied")
    error(site.client.get(denied), 400, "invalid_state")
    # RFC 9207: an error response is checked for iss too.
    start = site.client.get("/auth/login/demo")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    forged = urlencode({"error": "access_denied", "state": state})
    error(site.client.get(f"/auth/callback/demo?{forged}"), 400, "invalid_callback")


def test_request_errors(site: Site) -> None:
    for path in ("/auth/login/nope", "/auth/connections/nope/credentials",
                 "/auth/callback/nope?state=x&code=y"):  # fmt: skip
        error(site.client.get(path), 404, "unknown_connection")
    error(site.client.get("/auth/nowhere"), 404, "not_found")
    error(site.client.get("/auth/login/demo", params={"return_to": "//evil.example"}), 400,
          "invalid_request")  # fmt: skip
    error(site.client.get("/auth/me"), 401, "not_authenticated")
    error(site.client.get("/auth/connect/demo"), 401, "not_authenticated")
    error(site.client.get("/profile/demo"), 401, "not_authenticated")
    site.client.cookies.set("oauth_vault_session", "forged.value.signature")
    error(site.client.get("/auth/me"), 401, "not_authenticated")
    site.client.cookies.clear()
    error(site.client.get("/auth/me", headers={"Cookie": "a=" + "b" * 9000}), 400,
          "invalid_request")  # fmt: skip
    answer = site.client.get("/auth/logout")
    error(answer, 405, "method_not_allowed")
    assert answer.headers["allow"] == "POST"
    error(site.client.get("/auth/me/"), 404, "not_found")
    error(site.client.get("/auth//me"), 404, "not_found")
