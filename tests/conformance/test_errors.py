"""Conformance: bad input and misuse get the same 4xx JSON error from both shells.

Every scenario runs against the Starlette app and the Flask app, each on a real server
(``site``). A refused login also leaves nothing behind: no account linked, no session. What
only one framework has (its missing-middleware or missing-extension message, Flask's error
handlers in host views) stays in ``tests/starlette/test_errors.py`` and
``tests/flask/test_errors.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from oauth_vault_mw.core.records import open_transaction, seal_transaction

from .conftest import Site, error, with_param

pytestmark = pytest.mark.integration

USER_VIEWS = ("/auth/me", "/auth/connections/demo/credentials", "/profile/demo", "/fn/demo")
"""What needs a logged-in user: the vault's routes and the host's two views."""


def state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


def without_param(url: str, name: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items() if k != name}
    return f"{parts.path}?{urlencode(query)}"


def callback_for(site: Site, login: str) -> str:
    """Start a login and pass the provider's pages as ``login``: the callback, not sent."""
    start = site.client.get("/auth/login/demo")
    assert start.status_code == 302, start.text
    return site.authorize(start.headers["location"], login)


def state_cookie(site: Site) -> tuple[str, str]:
    """The one login in flight of ``site.client``: its state cookie's name and value."""
    (found,) = [c for c in site.client.cookies.jar if c.name.startswith("oauth_vault_state_")]
    assert found.value
    return found.name, found.value


def session_rows(site: Site) -> int:
    with site.storage() as storage, storage.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT COUNT(*) FROM oauth_vault_sessions").scalar_one())


def nothing_stored(site: Site, login: str) -> None:
    """A refused login linked no account (so stored no credential) and opened no session."""
    assert site.linked(login) is None
    assert "oauth_vault_session" not in site.client.cookies
    assert site.client.get("/auth/me").status_code == 401


# -- the callback ----------------------------------------------------------------------------


def _tampered_state_cookie(site: Site, callback: str) -> httpx.Response:
    name, value = state_cookie(site)
    site.client.cookies.clear()
    site.client.cookies.set(name, value[:-2] + "xx", path="/auth")
    return site.client.get(callback)


def _without_state_cookie(site: Site, callback: str) -> httpx.Response:
    site.client.cookies.clear()
    return site.client.get(callback)


CallbackCase = Callable[[Site, str], httpx.Response]
BAD_CALLBACKS: dict[str, tuple[CallbackCase, str]] = {
    "forged-state": (lambda s, cb: s.client.get(with_param(cb, state="forged")), "invalid_state"),
    "state-without-its-cookie": (_without_state_cookie, "invalid_state"),
    "tampered-state-cookie": (_tampered_state_cookie, "invalid_state"),
    "no-parameters": (lambda s, cb: s.client.get("/auth/callback/demo"), "invalid_state"),
    "state-twice": (lambda s, cb: s.client.get(cb + "&state=again"), "invalid_request"),
    "code-too-long": (
        lambda s, cb: s.client.get(with_param(cb, code="x" * 5000)),
        "invalid_request",
    ),
    "empty-code": (lambda s, cb: s.client.get(with_param(cb, code="")), "invalid_callback"),
    "issuer-mix-up": (
        lambda s, cb: s.client.get(with_param(cb, iss="http://127.0.0.1:1")),
        "invalid_callback",
    ),
    # The provider announces RFC 9207 support: a callback without iss is refused.
    "iss-missing": (lambda s, cb: s.client.get(without_param(cb, "iss")), "invalid_callback"),
}


@pytest.mark.parametrize("case", BAD_CALLBACKS)
def test_bad_callback_is_400_and_stores_nothing(
    site: Site, unique_user: Callable[[], str], case: str
) -> None:
    send, code = BAD_CALLBACKS[case]
    login = unique_user()
    error(send(site, callback_for(site, login)), 400, code)
    nothing_stored(site, login)


def test_callback_errors_consume_the_state(site: Site, unique_user: Callable[[], str]) -> None:
    start = site.client.get("/auth/login/demo")
    callback = site.authorize(start.headers["location"], unique_user())
    error(site.client.get(with_param(callback, state="forged")), 400, "invalid_state")
    error(site.client.get(with_param(callback, iss="http://127.0.0.1:1")), 400, "invalid_callback")
    # Both consumed the state: the genuine callback is now a replay.
    error(site.client.get(callback), 400, "invalid_state")
    error(site.client.get("/auth/callback/demo?" + "a=b&" * 3000), 400, "invalid_request")
    # The provider's error answer consumes it too.
    start = site.client.get("/auth/login/demo")
    denial = {
        "error": "access_denied",
        "state": state_of(start.headers["location"]),
        "iss": site.provider.issuer,
    }
    denied = f"/auth/callback/demo?{urlencode(denial)}"
    error(site.client.get(denied), 400, "access_denied")
    error(site.client.get(denied), 400, "invalid_state")
    # RFC 9207: an error response is checked for iss too.
    start = site.client.get("/auth/login/demo")
    forged = urlencode({"error": "access_denied", "state": state_of(start.headers["location"])})
    error(site.client.get(f"/auth/callback/demo?{forged}"), 400, "invalid_callback")


def test_replayed_callback_writes_nothing(site: Site, unique_user: Callable[[], str]) -> None:
    """The callback clears its state cookie; a replay with that cookie put back (a copy
    kept by an attacker) still opens the login, but its code is spent at the provider:
    a 400, and nothing stored changes (no session, no credential write)."""
    login = unique_user()
    start = site.client.get("/auth/login/demo")
    name, value = state_cookie(site)
    callback = site.authorize(start.headers["location"], login)
    done = site.client.get(callback)
    assert done.status_code == 303
    assert f"{name}=; Path=/auth; Max-Age=0" in done.headers.get_list("set-cookie")[0]
    user_id = site.client.get("/auth/me").json()["user_id"]
    assert site.linked(login) == user_id
    before = site.record("demo", user_id)
    assert before is not None
    sessions = session_rows(site)
    # Without its cookie (cleared by the first callback): the state is unknown here.
    error(site.client.get(callback), 400, "invalid_state")
    # With a copy of the cookie: the provider refuses the spent code.
    site.client.cookies.set(name, value, path="/auth")
    replay = site.client.get(callback)
    error(replay, 400, "invalid_grant")
    assert f"{name}=; Path=/auth; Max-Age=0" in replay.headers["set-cookie"]
    after = site.record("demo", user_id)
    assert after is not None
    assert after.version == before.version
    assert session_rows(site) == sessions


def test_code_of_another_login_fails_pkce(site: Site, unique_user: Callable[[], str]) -> None:
    """A code obtained by another login (code injection) fails PKCE at the provider."""
    site.client.get("/auth/login/demo")  # our login: state and verifier A
    _, ours = state_cookie(site)
    login = unique_user()
    with httpx.Client(base_url=site.base, timeout=30) as other:
        theirs = other.get("/auth/login/demo")  # another login: verifier B
        stolen = site.authorize(theirs.headers["location"], login)
    with site.vault() as vault:
        sealed = vault.cookies.read_state(ours)
        assert sealed is not None
        our_state = open_transaction(vault.sealer, sealed).state
    assert our_state != state_of(stolen)
    # Their code with our state: the state matches our cookie, but verifier A is not B.
    error(site.client.get(with_param(stolen, state=our_state)), 400, "invalid_grant")
    nothing_stored(site, login)


def test_id_token_with_another_nonce(site: Site, unique_user: Callable[[], str]) -> None:
    start = site.client.get("/auth/login/demo")
    name, value = state_cookie(site)
    # The login's cookie remembers another nonce than the one sent to the provider.
    with site.vault() as vault:
        sealed = vault.cookies.read_state(value)
        assert sealed is not None
        tx = open_transaction(vault.sealer, sealed)
        forged = dataclasses.replace(tx, nonce="not-the-nonce")
        cookie = vault.cookies.state_cookie(tx.state, seal_transaction(vault.sealer, forged))
    assert cookie.name == name
    site.client.cookies.clear()
    site.client.cookies.set(name, cookie.value, path="/auth")
    login = unique_user()
    callback = site.authorize(start.headers["location"], login)
    error(site.client.get(callback), 400, "invalid_id_token")
    nothing_stored(site, login)


# -- the login request -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "return_to",
    [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/ok\r\nSet-Cookie:x",
        "/" + "a" * 600,
    ],
)
def test_open_redirects_refused(site: Site, return_to: str) -> None:
    answer = site.client.get("/auth/login/demo", params={"return_to": return_to})
    error(answer, 400, "invalid_request")
    assert "oauth_vault_state" not in answer.headers.get("set-cookie", "")
    assert not [c for c in site.client.cookies.jar if c.name.startswith("oauth_vault_state")]


def test_return_to_with_unicode_is_kept_and_quoted(
    site: Site, unique_user: Callable[[], str]
) -> None:
    done = site.login(user=unique_user(), return_to="/café?tab=a%20b")
    assert done.status_code == 303
    assert done.headers["location"] == "/caf%C3%A9?tab=a%20b"


def test_oversized_query_and_cookie_header(site: Site) -> None:
    body = error(site.client.get("/auth/login/demo?x=" + "a" * 8200), 400, "invalid_request")
    assert body["error_description"] == "query string too long"
    error(site.client.get("/auth/login/demo?a=1&a=2"), 400, "invalid_request")
    big = {"Cookie": "other=" + "c" * 9000}
    body = error(site.client.get("/auth/me", headers=big), 400, "invalid_request")
    assert body["error_description"] == "cookie header too large"
    error(site.client.get("/profile/demo", headers=big), 400, "invalid_request")  # host's view


# -- routes, methods ---------------------------------------------------------------------------


def test_unknown_connection_and_routes(site: Site) -> None:
    for path in (
        "/auth/login/nope",
        "/auth/connect/nope",
        "/auth/callback/nope?state=x&code=y",
        "/auth/connections/nope/credentials",
        "/auth/login/" + "n" * 300,
    ):
        error(site.client.get(path), 404, "unknown_connection")
    error(site.client.delete("/auth/connections/nope"), 404, "unknown_connection")
    for path in (
        "/auth",
        "/auth/",
        "/auth/nowhere",
        "/auth/me/",
        "/auth//me",
        "/auth/login/",
        "/auth/login/demo/extra",
        "/auth/login/demo%2Fx",
    ):
        error(site.client.get(path), 404, "not_found")
    error(site.client.post("/auth/nowhere"), 404, "not_found")
    outside = site.client.get("/nowhere")  # the host's own 404 is left alone
    assert outside.status_code == 404
    assert not outside.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/auth/logout", "POST"),
        ("POST", "/auth/me", "GET, HEAD"),
        ("PUT", "/auth/connections/demo", "DELETE"),
        ("GET", "/auth/connections/demo", "DELETE"),
        ("POST", "/auth/login/demo", "GET, HEAD"),
        ("DELETE", "/auth/callback/demo", "GET, HEAD"),
        ("OPTIONS", "/auth/me", "GET, HEAD"),
        ("PROPFIND", "/auth/connections/demo/credentials", "GET, HEAD"),
    ],
)
def test_wrong_method_is_405_json(site: Site, method: str, path: str, allow: str) -> None:
    answer = site.client.request(method, path)
    error(answer, 405, "method_not_allowed")
    assert answer.headers["allow"] == allow


def test_head_is_served_like_get(site: Site) -> None:
    answer = site.client.head("/auth/me")
    assert answer.status_code == 401
    assert answer.content == b""


# -- sessions --------------------------------------------------------------------------------


def test_no_session_is_401(site: Site) -> None:
    for path in (*USER_VIEWS, "/auth/connect/demo", "/auth/app-token"):
        error(site.client.get(path), 401, "not_authenticated")


def test_tampered_session_cookie(site: Site, unique_user: Callable[[], str]) -> None:
    site.login(user=unique_user())
    value = site.client.cookies["oauth_vault_session"]
    site.client.cookies.clear()
    for forged in (value[:-3] + "abc", "x" * 5000, "", "garbage.value.sig"):
        site.client.cookies.set("oauth_vault_session", forged)
        for path in USER_VIEWS:
            error(site.client.get(path), 401, "not_authenticated")
        site.client.cookies.clear()


def test_other_cookies_do_not_hide_the_session(site: Site, unique_user: Callable[[], str]) -> None:
    """A host's JSON-valued or unquoted cookie must not make the user look logged out."""
    site.login(user=unique_user())
    session = site.client.cookies["oauth_vault_session"]
    site.client.cookies.clear()
    header = f'prefs={{"theme":"dark"}}; note=a b; oauth_vault_session={session}'
    assert site.client.get("/auth/me", headers={"Cookie": header}).status_code == 200


def test_cross_site_state_changes_refused(site: Site, unique_user: Callable[[], str]) -> None:
    site.login(user=unique_user())
    parts = urlsplit(site.base)
    assert parts.port is not None
    for origin in (
        "https://evil.example",
        "null",
        f"http://127.0.0.1:{parts.port + 1}",
        f"https://127.0.0.1:{parts.port}",
    ):
        evil = {"Origin": origin}
        error(site.client.post("/auth/logout", headers=evil), 403, "forbidden_origin")
        error(site.client.delete("/auth/connections/demo", headers=evil), 403, "forbidden_origin")
    assert site.client.get("/auth/me").status_code == 200
    assert site.client.get("/auth/connections/demo/credentials").status_code == 200
    # Same origin, or no Origin at all (not a browser's cross-site request): allowed.
    assert site.client.post("/auth/logout", headers={"Origin": site.base}).status_code == 200


def test_logout_ends_the_session_server_side(site: Site, unique_user: Callable[[], str]) -> None:
    site.login(user=unique_user())
    cookie = site.client.cookies["oauth_vault_session"]
    answer = site.client.post("/auth/logout", headers={"Origin": site.base})
    assert answer.status_code == 200
    assert answer.json() == {"logged_out": True}
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["set-cookie"].startswith("oauth_vault_session=; Path=/; Max-Age=0")
    site.client.cookies.clear()
    site.client.cookies.set("oauth_vault_session", cookie)  # a copy kept by an attacker
    error(site.client.get("/auth/me"), 401, "not_authenticated")


def test_new_session_at_every_login(site: Site, unique_user: Callable[[], str]) -> None:
    user = unique_user()
    site.login(user=user)
    first = site.client.cookies["oauth_vault_session"]
    site.login(user=user)
    second = site.client.cookies["oauth_vault_session"]
    assert first != second
    site.client.cookies.clear()
    site.client.cookies.set("oauth_vault_session", first)
    error(site.client.get("/auth/me"), 401, "not_authenticated")


def test_account_linked_elsewhere_is_refused(site: Site, unique_user: Callable[[], str]) -> None:
    taken = unique_user()
    site.login("second", taken)  # a user who logged in with 'second'
    site.client.cookies.clear()
    site.browser.cookies.clear()
    site.login(user=unique_user())  # another user tries to connect the same account
    site.browser.cookies.clear()  # signs in at the provider as the taken account
    error(site.login("second", taken, path="connect"), 409, "identity_already_linked")


def test_malformed_origin_header_is_403(site: Site, unique_user: Callable[[], str]) -> None:
    """An ``Origin`` that does not even parse (``http://[``) is a cross-site request: 403 JSON,
    never a 500, and the session survives it."""
    site.login(user=unique_user())
    for origin in ("http://[", "https://[::1", "http://]x["):
        evil = {"Origin": origin}
        error(site.client.post("/auth/logout", headers=evil), 403, "forbidden_origin")
        error(site.client.delete("/auth/connections/demo", headers=evil), 403, "forbidden_origin")
    assert site.client.get("/auth/me").status_code == 200
