"""Bad input on the login path: a clear 4xx JSON error, and nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from oauth_vault_mw import MiddlewareNotInstalled
from oauth_vault_mw.core.cookies import hash_id
from oauth_vault_mw.core.records import open_transaction, seal_transaction
from oauth_vault_mw.starlette import connection_credentials
from oauth_vault_mw.storage import AsyncStorageAdapter, MemoryStorage

from .conftest import BASE, Harness

pytestmark = pytest.mark.integration


def _nothing_stored(h: Harness) -> None:
    storage = h.vault.storage
    assert isinstance(storage, AsyncStorageAdapter)
    sync = storage.sync
    assert isinstance(sync, MemoryStorage)
    assert sync.all_credentials() == []
    assert sync._sessions == {}
    assert sync._identities == {}


def _with_param(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{parts.path}?{urlencode(query)}"


async def _start(h: Harness, user: str) -> str:
    start = await h.client.get("/auth/login/demo")
    return await h.authorize(start.headers["location"], user)


def _error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"] == code


async def test_forged_state(harness: Harness, unique_user: Callable[[], str]) -> None:
    callback = await _start(harness, unique_user())
    _error(await harness.client.get(_with_param(callback, state="forged")), 400, "invalid_state")
    _nothing_stored(harness)


async def test_state_without_its_cookie(harness: Harness, unique_user: Callable[[], str]) -> None:
    callback = await _start(harness, unique_user())
    harness.client.cookies.clear()
    _error(await harness.client.get(callback), 400, "invalid_state")
    _nothing_stored(harness)


async def test_tampered_state_cookie(harness: Harness, unique_user: Callable[[], str]) -> None:
    callback = await _start(harness, unique_user())
    value = harness.client.cookies["oauth_vault_state"]
    harness.client.cookies.clear()
    harness.client.cookies.set("oauth_vault_state", value[:-2] + "xx", path="/auth")
    _error(await harness.client.get(callback), 400, "invalid_state")
    _nothing_stored(harness)


async def test_replayed_state(harness: Harness, unique_user: Callable[[], str]) -> None:
    h = harness
    start = await h.client.get("/auth/login/demo")
    state_cookie = h.client.cookies["oauth_vault_state"]
    callback = await h.authorize(start.headers["location"], unique_user())
    assert (await h.client.get(callback)).status_code == 303
    stored = await h.vault.storage.list_credentials(
        (await h.client.get("/auth/me")).json()["user_id"]
    )
    h.client.cookies.set("oauth_vault_state", state_cookie, path="/auth")
    _error(await h.client.get(callback), 400, "invalid_state")
    again = await h.vault.storage.list_credentials(stored[0].key.user_id)
    assert [r.version for r in again] == [r.version for r in stored]  # nothing written


async def test_wrong_pkce_verifier(harness: Harness, unique_user: Callable[[], str]) -> None:
    """A code obtained by another login (code injection) fails PKCE at the provider."""
    h = harness
    await h.client.get("/auth/login/demo")  # our login: state + verifier A
    ours = h.client.cookies["oauth_vault_state"]
    async with httpx.AsyncClient(transport=h.client._transport, base_url=BASE) as other:
        theirs = await other.get("/auth/login/demo")  # another login: verifier B
        stolen = await h.authorize(theirs.headers["location"], unique_user())
    state = parse_qs(urlsplit(stolen).query)["state"][0]
    h.client.cookies.set("oauth_vault_state", ours, path="/auth")
    # Present their code with our state: state matches our cookie, verifier A != B.
    our_state = h.vault.cookies.read_state(ours)
    assert our_state is not None
    assert our_state != state
    answer = await h.client.get(_with_param(stolen, state=our_state))
    _error(answer, 400, "invalid_grant")
    _nothing_stored(h)


async def test_id_token_with_bad_nonce(harness: Harness, unique_user: Callable[[], str]) -> None:
    h = harness
    start = await h.client.get("/auth/login/demo")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    # The stored transaction remembers another nonce than the one sent to the provider.
    storage = h.vault.storage
    assert isinstance(storage, AsyncStorageAdapter)
    assert isinstance(storage.sync, MemoryStorage)
    data, expires = storage.sync._states[hash_id(state)]
    tx = open_transaction(h.vault.sealer, hash_id(state), data)
    forged = type(tx)(**{**tx.__dict__, "nonce": "not-the-nonce"})
    storage.sync._states[hash_id(state)] = (
        seal_transaction(h.vault.sealer, hash_id(state), forged), expires,
    )  # fmt: skip
    callback = await h.authorize(start.headers["location"], unique_user())
    _error(await h.client.get(callback), 400, "invalid_id_token")
    _nothing_stored(h)


async def test_issuer_mix_up(harness: Harness, unique_user: Callable[[], str]) -> None:
    callback = await _start(harness, unique_user())
    answer = await harness.client.get(_with_param(callback, iss="http://127.0.0.1:1"))
    _error(answer, 400, "invalid_callback")
    _nothing_stored(harness)


async def test_missing_iss_when_the_issuer_promises_it(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    callback = await _start(harness, unique_user())
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items() if k != "iss"}
    _error(await harness.client.get(f"{parts.path}?{urlencode(query)}"), 400, "invalid_callback")
    _nothing_stored(harness)


async def test_provider_error_consumes_state(harness: Harness) -> None:
    h = harness
    start = await h.client.get("/auth/login/demo")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    denial = {"error": "access_denied", "state": state, "iss": h.provider.issuer}
    error_cb = f"/auth/callback/demo?{urlencode(denial)}"
    _error(await h.client.get(error_cb), 400, "access_denied")
    _error(await h.client.get(error_cb), 400, "invalid_state")  # consumed
    _nothing_stored(h)


async def test_malformed_callbacks(harness: Harness, unique_user: Callable[[], str]) -> None:
    h = harness
    callback = await _start(h, unique_user())
    _error(await h.client.get("/auth/callback/demo"), 400, "invalid_state")
    _error(await h.client.get(callback + "&state=again"), 400, "invalid_request")
    _error(await h.client.get(_with_param(callback, code="x" * 5000)), 400, "invalid_request")
    _error(await h.client.get("/auth/callback/demo?" + "a=b&" * 3000), 400, "invalid_request")
    _error(await h.client.get(_with_param(callback, code="")), 400, "invalid_callback")
    _nothing_stored(h)


async def test_tampered_session_cookie(harness: Harness, unique_user: Callable[[], str]) -> None:
    h = harness
    await h.login(user=unique_user())
    value = h.client.cookies["oauth_vault_session"]
    h.client.cookies.clear()
    for forged in (value[:-3] + "abc", "x" * 5000, "", "garbage.value.sig"):
        h.client.cookies.set("oauth_vault_session", forged)
        _error(await h.client.get("/auth/me"), 401, "not_authenticated")
        _error(await h.client.get("/auth/connections/demo/credentials"), 401, "not_authenticated")
        _error(await h.client.get("/profile/demo"), 401, "not_authenticated")
        h.client.cookies.clear()


@pytest.mark.parametrize(
    "return_to",
    ["//evil.example", "/\\evil.example", "https://evil.example/", "javascript:alert(1)",
     "/ok\r\nSet-Cookie:x", "/" + "a" * 600],
)  # fmt: skip
async def test_open_redirects_refused(harness: Harness, return_to: str) -> None:
    answer = await harness.client.get("/auth/login/demo", params={"return_to": return_to})
    _error(answer, 400, "invalid_request")
    assert "oauth_vault_state" not in answer.headers.get("set-cookie", "")


async def test_unknown_connection(harness: Harness) -> None:
    for path in ("/auth/login/nope", "/auth/callback/nope?state=x&code=y",
                 "/auth/connections/nope/credentials", "/auth/login/" + "n" * 300):  # fmt: skip
        _error(await harness.client.get(path), 404, "unknown_connection")
    _error(await harness.client.delete("/auth/connections/nope"), 404, "unknown_connection")
    _error(await harness.client.get("/auth/nowhere"), 404, "not_found")
    _nothing_stored(harness)


async def test_connect_needs_a_session(harness: Harness) -> None:
    _error(await harness.client.get("/auth/connect/demo"), 401, "not_authenticated")


async def test_cross_site_state_changes_refused(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    h = harness
    await h.login(user=unique_user())
    evil = {"Origin": "https://evil.example"}
    _error(await h.client.post("/auth/logout", headers=evil), 403, "forbidden_origin")
    _error(await h.client.delete("/auth/connections/demo", headers=evil), 403, "forbidden_origin")
    assert (await h.client.get("/auth/me")).status_code == 200


async def test_logout_ends_the_session_server_side(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    h = harness
    await h.login(user=unique_user())
    cookie = h.client.cookies["oauth_vault_session"]
    answer = await h.client.post("/auth/logout", headers={"Origin": BASE})
    assert answer.status_code == 200
    h.client.cookies.set("oauth_vault_session", cookie)  # a copy kept by an attacker
    _error(await h.client.get("/auth/me"), 401, "not_authenticated")


async def test_new_session_at_every_login(harness: Harness, unique_user: Callable[[], str]) -> None:
    h = harness
    user = unique_user()
    await h.login(user=user)
    first = h.client.cookies["oauth_vault_session"]
    await h.login(user=user)
    second = h.client.cookies["oauth_vault_session"]
    assert first != second
    h.client.cookies.clear()
    h.client.cookies.set("oauth_vault_session", first)
    _error(await h.client.get("/auth/me"), 401, "not_authenticated")


async def test_missing_middleware_fails_loudly() -> None:
    async def handler(request: Request) -> JSONResponse:
        try:
            await connection_credentials(request, "demo")
        except MiddlewareNotInstalled as exc:
            return JSONResponse({"message": str(exc)}, status_code=500)
        return JSONResponse({})

    app = Starlette(routes=[Route("/p", handler)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        answer = await c.get("/p")
    assert answer.status_code == 500
    assert "OAuthVaultMiddleware" in answer.json()["message"]
