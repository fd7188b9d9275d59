"""Bad input and misuse: a clear JSON error with the same status as the Starlette shell."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from flask import Flask, redirect, url_for

from oauth_vault_mw import MiddlewareNotInstalled, NotAuthenticated, ReauthenticationRequired
from oauth_vault_mw.flask import connection_credentials, current_user_id
from oauth_vault_mw.storage import MemoryStorage

from .conftest import BASE, Harness

pytestmark = pytest.mark.integration


def _error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    assert body["error"] == code
    assert body["error_description"]
    return body


def _nothing_stored(h: Harness) -> None:
    storage = h.vault.storage
    assert isinstance(storage, MemoryStorage)
    assert storage.all_credentials() == []
    assert storage._sessions == {}
    assert storage._identities == {}


def _with_param(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{parts.path}?{urlencode(query)}"


def _callback(h: Harness, user: str) -> str:
    start = h.client.get("/auth/login/demo")
    return h.authorize(start.headers["location"], user)


def test_forged_state(harness: Harness, unique_user: Callable[[], str]) -> None:
    callback = _callback(harness, unique_user())
    _error(harness.client.get(_with_param(callback, state="forged")), 400, "invalid_state")
    _nothing_stored(harness)


def test_state_without_its_cookie(harness: Harness, unique_user: Callable[[], str]) -> None:
    callback = _callback(harness, unique_user())
    harness.client.cookies.clear()
    _error(harness.client.get(callback), 400, "invalid_state")
    _nothing_stored(harness)


def test_replayed_callback(harness: Harness, unique_user: Callable[[], str]) -> None:
    h = harness
    start = h.client.get("/auth/login/demo")
    state_cookie = h.client.cookies["oauth_vault_state"]
    callback = h.authorize(start.headers["location"], unique_user())
    assert h.client.get(callback).status_code == 303
    h.client.cookies.set("oauth_vault_state", state_cookie, path="/auth")
    _error(h.client.get(callback), 400, "invalid_state")


def test_malformed_callbacks(harness: Harness, unique_user: Callable[[], str]) -> None:
    h = harness
    callback = _callback(h, unique_user())
    _error(h.client.get("/auth/callback/demo"), 400, "invalid_state")
    _error(h.client.get(callback + "&state=again"), 400, "invalid_request")  # duplicate
    _error(h.client.get(_with_param(callback, code="x" * 5000)), 400, "invalid_request")
    _error(h.client.get("/auth/callback/demo?" + "a=b&" * 3000), 400, "invalid_request")
    _error(h.client.get(_with_param(callback, code="")), 400, "invalid_callback")
    _nothing_stored(h)


def test_oversized_query_and_cookie_header(harness: Harness) -> None:
    h = harness
    body = _error(h.client.get("/auth/login/demo?x=" + "a" * 8200), 400, "invalid_request")
    assert body["error_description"] == "query string too long"
    _error(h.client.get("/auth/login/demo?a=1&a=2"), 400, "invalid_request")
    big = {"Cookie": "other=" + "c" * 9000}
    body = _error(h.client.get("/auth/me", headers=big), 400, "invalid_request")
    assert body["error_description"] == "cookie header too large"
    _error(h.client.get("/profile/demo", headers=big), 400, "invalid_request")  # host's view


def test_tampered_session_cookie(harness: Harness, unique_user: Callable[[], str]) -> None:
    h = harness
    h.login(user=unique_user())
    value = h.client.cookies["oauth_vault_session"]
    h.client.cookies.clear()
    for forged in (value[:-3] + "abc", "x" * 5000, "", "garbage.value.sig"):
        h.client.cookies.set("oauth_vault_session", forged)
        _error(h.client.get("/auth/me"), 401, "not_authenticated")
        _error(h.client.get("/auth/connections/demo/credentials"), 401, "not_authenticated")
        _error(h.client.get("/profile/demo"), 401, "not_authenticated")
        _error(h.client.get("/fn/demo"), 401, "not_authenticated")
        h.client.cookies.clear()


def test_other_cookies_do_not_hide_the_session(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    """A host's JSON-valued or unquoted cookie must not make the user look logged out."""
    h = harness
    h.login(user=unique_user())
    session = h.client.cookies["oauth_vault_session"]
    h.client.cookies.clear()
    header = f'prefs={{"theme":"dark"}}; note=a b; oauth_vault_session={session}'
    assert h.client.get("/auth/me", headers={"Cookie": header}).status_code == 200


@pytest.mark.parametrize(
    "return_to",
    ["//evil.example", "/\\evil.example", "https://evil.example/", "javascript:alert(1)",
     "/ok\r\nSet-Cookie:x", "/" + "a" * 600],
)  # fmt: skip
def test_open_redirects_refused(harness: Harness, return_to: str) -> None:
    answer = harness.client.get("/auth/login/demo", params={"return_to": return_to})
    _error(answer, 400, "invalid_request")
    assert "oauth_vault_state" not in answer.headers.get("set-cookie", "")


def test_return_to_with_unicode_is_kept_and_quoted(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    done = harness.login(user=unique_user(), return_to="/café?tab=a%20b")
    assert done.status_code == 303
    assert done.headers["location"] == "/caf%C3%A9?tab=a%20b"


def test_unknown_connection_and_routes(harness: Harness) -> None:
    h = harness
    for path in ("/auth/login/nope", "/auth/connect/nope", "/auth/callback/nope?state=x&code=y",
                 "/auth/connections/nope/credentials", "/auth/login/" + "n" * 300):  # fmt: skip
        _error(h.client.get(path), 404, "unknown_connection")
    _error(h.client.delete("/auth/connections/nope"), 404, "unknown_connection")
    for path in ("/auth", "/auth/", "/auth/nowhere", "/auth/me/", "/auth//me",
                 "/auth/login/", "/auth/login/demo/extra", "/auth/login/demo%2Fx"):  # fmt: skip
        _error(h.client.get(path), 404, "not_found")
    _error(h.client.post("/auth/nowhere"), 404, "not_found")
    outside = h.client.get("/nowhere")  # the host's own 404 page is left alone
    assert outside.status_code == 404
    assert outside.headers["content-type"].startswith("text/html")
    _nothing_stored(h)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", "/auth/logout", "POST"), ("POST", "/auth/me", "GET, HEAD"),
     ("PUT", "/auth/connections/demo", "DELETE"), ("GET", "/auth/connections/demo", "DELETE"),
     ("POST", "/auth/login/demo", "GET, HEAD"), ("DELETE", "/auth/callback/demo", "GET, HEAD"),
     ("OPTIONS", "/auth/me", "GET, HEAD"), ("PROPFIND", "/auth/connections/demo/credentials",
                                            "GET, HEAD")],
)  # fmt: skip
def test_wrong_method_is_405_json(harness: Harness, method: str, path: str, allow: str) -> None:
    answer = harness.client.request(method, path)
    _error(answer, 405, "method_not_allowed")
    assert answer.headers["allow"] == allow


def test_head_is_served_like_get(harness: Harness) -> None:
    answer = harness.client.head("/auth/me")
    assert answer.status_code == 401
    assert answer.content == b""


def test_connect_needs_a_session(harness: Harness) -> None:
    _error(harness.client.get("/auth/connect/demo"), 401, "not_authenticated")


def test_cross_site_state_changes_refused(harness: Harness, unique_user: Callable[[], str]) -> None:
    h = harness
    h.login(user=unique_user())
    for origin in (
        "https://evil.example",
        "null",
        "http://127.0.0.1:8001",
        "https://127.0.0.1:8000",
    ):
        evil = {"Origin": origin}
        _error(h.client.post("/auth/logout", headers=evil), 403, "forbidden_origin")
        _error(h.client.delete("/auth/connections/demo", headers=evil), 403, "forbidden_origin")
    assert h.client.get("/auth/me").status_code == 200
    assert h.client.get("/auth/connections/demo/credentials").status_code == 200
    # Same origin, or no Origin at all (not a browser's cross-site request): allowed.
    assert h.client.post("/auth/logout", headers={"Origin": BASE}).status_code == 200


def test_vault_errors_in_host_views_render_as_json(harness: Harness) -> None:
    app = harness.app

    @app.get("/raise/reauth")
    def reauth() -> str:
        raise ReauthenticationRequired(login_url="http://127.0.0.1:8000/auth/login/demo")

    @app.get("/raise/anonymous")
    def anonymous() -> str:
        raise NotAuthenticated()

    body = _error(harness.client.get("/raise/reauth"), 409, "reauthentication_required")
    assert body["login_url"] == "http://127.0.0.1:8000/auth/login/demo"
    _error(harness.client.get("/raise/anonymous"), 401, "not_authenticated")
    assert harness.client.get("/fn/demo").json()["error"] == "not_authenticated"


def test_host_handlers_for_subclasses_win_in_host_views_only(harness: Harness) -> None:
    app = harness.app

    @app.errorhandler(NotAuthenticated)
    def to_login(exc: NotAuthenticated) -> Any:
        return redirect(url_for("oauth_vault.login", connection_id="demo", return_to="/"), 303)

    answer = harness.client.get("/fn/demo")  # a host view: the host's handler
    assert answer.status_code == 303
    assert answer.headers["location"] == "/auth/login/demo?return_to=/"
    _error(harness.client.get("/auth/me"), 401, "not_authenticated")  # the vault's route


def test_missing_extension_fails_loudly() -> None:
    app = Flask(__name__)
    seen: list[str] = []

    @app.get("/p")
    def handler() -> str:
        for call in (lambda: connection_credentials("demo"), current_user_id):
            try:
                call()
            except MiddlewareNotInstalled as exc:
                seen.append(str(exc))
        return "ok"

    @app.get("/q")
    def uncaught() -> str:
        connection_credentials("demo")
        return "unreachable"

    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE) as client:
        assert client.get("/p").text == "ok"
        # Uncaught, it is the host's ordinary 500: no extension, so no JSON handler either.
        assert client.get("/q").status_code == 500
    assert len(seen) == 2
    assert all("OAuthVault(app)" in message for message in seen)


def test_accessors_outside_a_request_say_what_to_use() -> None:
    with pytest.raises(RuntimeError, match=r"Vault\.get_connection_credentials"):
        connection_credentials("demo")
    with pytest.raises(RuntimeError, match="needs a Flask request"):
        current_user_id()
