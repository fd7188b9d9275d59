"""Cookies and what a login leaves behind, through the Starlette shell (Flask: the twin in
tests/flask/test_cookies.py): an anonymous login stores nothing, ``__Host-`` names on https,
logins in several tabs, and the batched purge of expired sessions after logins."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.core.cookies import MAX_LOGINS_IN_FLIGHT, hash_id
from oauth_vault_mw.core.purge import PurgeSchedule
from oauth_vault_mw.storage import async_storage_from_url
from tests.support.oidc_provider import DevProvider, callback_path, complete_login_async
from tests.support.suite import BASE, HTTPS_BASE, settings_for

from .conftest import Harness, make_app

pytestmark = pytest.mark.integration


def stored_rows(db: Path) -> dict[str, int]:
    """Rows in every table of the vault's SQLite file (the schema's version aside)."""
    with sqlite3.connect(db) as conn:
        tables = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.endswith("alembic_version")
        ]
        return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}


async def harness_for(
    provider: DevProvider, base: str = BASE, storage_url: str = "memory://"
) -> Harness:
    vault = AsyncVault(
        settings_for(provider, base=base), storage=async_storage_from_url(storage_url)
    )
    app = make_app(vault)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)
    return Harness(app, vault, client, httpx.AsyncClient(), provider)


@pytest.fixture
async def https(provider: DevProvider) -> AsyncIterator[Harness]:
    h = await harness_for(provider, HTTPS_BASE)
    async with h.client, h.browser:
        yield h
    await h.vault.aclose()


async def test_anonymous_login_requests_store_nothing(
    provider: DevProvider, tmp_path: Path
) -> None:
    db = tmp_path / "vault.db"
    h = await harness_for(provider, storage_url=f"sqlite:///{db}")
    async with h.client, h.browser:
        for i in range(1000):
            if i % 2:
                h.client.cookies.clear()  # half without cookies, half with the last ones
            start = await h.client.get("/auth/login/demo", params={"return_to": f"/p/{i}"})
            assert start.status_code == 302, start.text
            assert start.headers["set-cookie"].count("oauth_vault_state_") >= 1
        assert sum(stored_rows(db).values()) == 0, stored_rows(db)
        # ... and the browser holds a bounded number of logins in flight.
        held = [c for c in h.client.cookies.jar if c.value and "oauth_vault_state_" in c.name]
        assert len(held) <= MAX_LOGINS_IN_FLIGHT
    await h.vault.aclose()


def _cookie_attributes(header: str) -> tuple[str, set[str]]:
    first, *rest = header.split("; ")
    return first.split("=", 1)[0], set(rest)


async def test_host_prefix_cookies_on_https(https: Harness, unique_user: Callable[[], str]) -> None:
    h = https
    start = await h.client.get("/auth/login/demo", params={"return_to": "/profile/demo"})
    assert start.status_code == 302, start.text
    (state,) = start.headers.get_list("set-cookie")
    name, attrs = _cookie_attributes(state)
    assert name.startswith("__Host-oauth_vault_state_")
    assert {"Path=/", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age=600"} <= attrs
    assert not any(a.lower().startswith("domain") for a in attrs)

    final = await complete_login_async(h.browser, start.headers["location"], unique_user())
    done = await h.client.get(callback_path(final, HTTPS_BASE))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/profile/demo"
    cookies = dict(_cookie_attributes(c) for c in done.headers.get_list("set-cookie"))
    assert cookies[name] >= {"Path=/", "Max-Age=0", "Secure"}  # the login is over
    session = cookies["__Host-oauth_vault_session"]
    assert {"Path=/", "Secure", "HttpOnly", "SameSite=Lax"} <= session
    assert not any(a.lower().startswith("domain") for a in session)
    assert not any(n.startswith("oauth_vault") for n in cookies)  # no unprefixed name

    me = await h.client.get("/auth/me")
    assert me.status_code == 200, me.text
    assert (await h.client.get("/profile/demo")).status_code == 200
    # An unprefixed copy of the session cookie is not read on https.
    value = h.client.cookies["__Host-oauth_vault_session"]
    h.client.cookies.clear()
    h.client.cookies.set("oauth_vault_session", value)
    assert (await h.client.get("/auth/me")).status_code == 401
    h.client.cookies.clear()
    h.client.cookies.set("__Host-oauth_vault_session", value)
    out = await h.client.post("/auth/logout")
    assert out.headers["set-cookie"].startswith("__Host-oauth_vault_session=; Path=/; Max-Age=0")


async def test_no_cookie_prefix_on_http(harness: Harness, unique_user: Callable[[], str]) -> None:
    done = await harness.login(user=unique_user())
    assert done.status_code == 303
    names = [c.split("=", 1)[0] for c in done.headers.get_list("set-cookie")]
    assert "oauth_vault_session" in names
    assert not any(n.startswith("__Host-") for n in names)


async def test_logins_in_several_tabs_each_complete(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    """Each login in flight has its own state cookie: a login started in another tab does
    not break this one, whichever finishes first. The oldest goes past the bound."""
    h = harness
    login = unique_user()
    tab_a = await h.client.get("/auth/login/demo", params={"return_to": "/a"})
    tab_b = await h.client.get("/auth/login/demo", params={"return_to": "/b"})
    back_a = await h.authorize(tab_a.headers["location"], login)
    back_b = await h.authorize(tab_b.headers["location"], login)
    done_a = await h.client.get(back_a)  # the older login completes after a newer one began
    assert (done_a.status_code, done_a.headers["location"]) == (303, "/a"), done_a.text
    session_a = h.client.cookies["oauth_vault_session"]
    done_b = await h.client.get(back_b)
    assert (done_b.status_code, done_b.headers["location"]) == (303, "/b"), done_b.text
    assert h.client.cookies["oauth_vault_session"] != session_a  # a new session each time
    assert (await h.client.get("/auth/me")).status_code == 200

    # Past MAX_LOGINS_IN_FLIGHT, starting one more evicts the oldest.
    starts = [await h.client.get("/auth/login/demo") for _ in range(MAX_LOGINS_IN_FLIGHT + 1)]
    evicted = starts[-1].headers.get_list("set-cookie")
    assert any("Max-Age=0" in c for c in evicted)
    oldest = await h.authorize(starts[0].headers["location"], unique_user())
    answer = await h.client.get(oldest)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_state")
    newest = await h.authorize(starts[-1].headers["location"], unique_user())
    assert (await h.client.get(newest)).status_code == 303


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgresql"])
async def test_logins_purge_expired_sessions_in_batches(
    provider: DevProvider,
    unique_user: Callable[[], str],
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    url = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp_path / 'vault.db'}",
    }.get(backend) or str(request.getfixturevalue("postgres_store_url"))
    h = await harness_for(provider, storage_url=url)
    async with h.client, h.browser:
        await h.vault.startup()
        now = time.time()
        for i in range(12):
            await h.vault.storage.create_session(hash_id(f"gone-{i}"), "someone", now - 1 - i)
        await h.vault.storage.create_session(hash_id("live"), "someone", now + 3600)
        h.vault.purge_schedule = PurgeSchedule(every=1, batch=5)
        remaining = []
        for _ in range(3):
            assert (await h.login(user=unique_user())).status_code == 303
            remaining.append(
                sum(
                    [
                        await h.vault.storage.get_session(hash_id(f"gone-{i}"), now - 3600)
                        is not None
                        for i in range(12)
                    ]
                )
            )
        assert remaining == [7, 2, 0]  # at most one batch of 5 per login
        assert await h.vault.storage.get_session(hash_id("live"), now) == "someone"
    await h.vault.aclose()
