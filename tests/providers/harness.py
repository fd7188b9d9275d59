"""An app under test for one preset, in either framework, and a login through it.

:func:`site` builds the preset's connection with every URL the preset sets pointed at the
fake (the connection's own fields win over the preset's), a vault on ``memory://`` running on
the test's clock, and the host app: Starlette with ``OAuthVaultMiddleware`` (driven through
``httpx.ASGITransport`` on an anyio portal, so that one synchronous scenario drives both) or
Flask with ``OAuthVault`` (through ``httpx.WSGITransport``).
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from flask import Flask
from starlette.applications import Starlette

from oauth_vault_mw import AsyncVault, Settings, Vault
from oauth_vault_mw.core.connections import parse_connection
from oauth_vault_mw.flask import OAuthVault
from oauth_vault_mw.starlette import OAuthVaultMiddleware
from tests.support.asgi import lifespan
from tests.support.suite import new_key

from .fake_provider import APPLE_KEY_ID, APPLE_TEAM_ID, FakeClock, FakeProvider
from .fixtures.spec import BASE, ProviderFixture, client_id, client_secret

__all__ = ["FRAMEWORKS", "Site", "connection_for", "login", "site"]

FRAMEWORKS = ("starlette", "flask")
URL_FIELDS = ("issuer", "authorize_url", "token_url", "refresh_url", "userinfo_url", "extra_url")
YEAR = 365 * 24 * 3600
_INPUT = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')
_ACTION = re.compile(r'<form method="post" action="([^"]*)">')


Requester = Callable[..., httpx.Response]
"""``request(method, url, **kwargs)`` of an httpx client on the app."""


class _PortalClient:
    """An ``httpx.AsyncClient`` called from synchronous code through an anyio portal."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self._portal = portal
        self._client = client

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        call = functools.partial(self._client.request, method, url, **kwargs)
        return self._portal.call(call)


@dataclass
class Site:
    """The host app under test, and who its store links a provider account to."""

    framework: str
    fixture: ProviderFixture
    request: Requester
    linked: Callable[[str], str | None]
    clock: FakeClock

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


def connection_for(fake: FakeProvider, fx: ProviderFixture) -> dict[str, Any]:
    """The preset's connection with every URL it sets on the fake: the OIDC issuer (then
    discovery names the rest), and any URL the preset sets itself, each to the fake's
    endpoint for that role (an identity URL keeps its path: the fake answers by it)."""
    raw: dict[str, Any] = {"id": fx.name, "preset": fx.name, "client_id": client_id(fx.name)}
    if "apple_jwt" in fx.client_auth:  # the vault signs the client secret with the .p8 key
        raw.update(
            client_private_key=fake.apple_private_key(),
            client_key_id=APPLE_KEY_ID,
            team_id=APPLE_TEAM_ID,
        )
    else:
        raw["client_secret"] = client_secret(fx.name)
    if fx.params:
        raw["params"] = dict(fx.params)
    preset = parse_connection(0, raw)
    root = fake.root(fx.name)
    roles = {
        "issuer": fx.issuer_setting.replace("$root", root),
        "authorize_url": f"{root}/authorize",
        "token_url": f"{root}/token",
        "refresh_url": f"{root}/refresh",
        "revocation_url": f"{root}/revoke",
    }
    for name in (*URL_FIELDS, "revocation_url"):
        value = getattr(preset, name, None)
        if not value:
            continue
        if name in ("userinfo_url", "extra_url"):  # documents the fake serves by their path
            parts = urlsplit(value)
            query = f"?{parts.query}" if parts.query else ""
            raw[name] = f"{root}/userinfo{parts.path}{query}"
        else:
            raw[name] = roles[name]
    return raw


def _settings(fake: FakeProvider, fx: ProviderFixture) -> Settings:
    return Settings.from_mapping(
        {
            "secret_key": "s" * 48,
            "encryption_keys": [new_key()],
            "base_url": BASE,
            "storage_url": "memory://",
            "provider_timeout": 2,
            "refresh_attempts": 1,
            "session_max_age": 20 * YEAR,  # the clock moves by months in some scenarios
            "connections": [connection_for(fake, fx)],
        }
    )


@contextmanager
def site(framework: str, fake: FakeProvider, fx: ProviderFixture) -> Iterator[Site]:
    """The app for ``fx``'s preset in ``framework``, on the fake's clock."""
    settings = _settings(fake, fx)
    clock = fake.clock
    if framework == "flask":
        vault = Vault(settings, clock=clock)
        app = Flask(f"presets_{fx.name}")
        OAuthVault(app, vault=vault)
        client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE)
        try:
            yield Site(
                framework,
                fx,
                client.request,
                lambda s: vault.storage.get_identity(fx.name, s),
                clock,
            )
        finally:
            client.close()
            OAuthVault().get_service(app).close()
            vault.close()
        return
    avault = AsyncVault(settings, clock=clock)
    sapp = Starlette()
    sapp.add_middleware(OAuthVaultMiddleware, vault=avault)
    with start_blocking_portal() as portal:
        aclient = httpx.AsyncClient(transport=httpx.ASGITransport(app=sapp), base_url=BASE)
        try:
            with portal.wrap_async_context_manager(lifespan(sapp)):
                yield Site(
                    framework,
                    fx,
                    _PortalClient(portal, aclient).request,
                    lambda s: portal.call(avault.storage.get_identity, fx.name, s),
                    clock,
                )
        finally:
            portal.call(aclient.aclose)
            portal.call(avault.aclose)


def _app_path(url: str) -> str:
    assert url.startswith(BASE + "/"), f"the provider sent the browser to {url!r}, not the app"
    return url[len(BASE) :]


def login(app: Site, fake: FakeProvider) -> str:
    """A whole login: the app's ``/auth/login/{id}``, the fake's authorize, the app's
    callback (a GET, or the POST a ``form_post`` page makes). Returns the user id."""
    name = app.fixture.name
    start = app.get(f"/auth/login/{name}", params={"return_to": "/done"})
    assert start.status_code == 302, start.text
    authorize = start.headers["location"]
    assert authorize.startswith(fake.root(name) + "/authorize?"), authorize
    with httpx.Client() as browser:
        answer = browser.get(authorize)
    if answer.status_code == 200 and "<form" in answer.text:
        action = _ACTION.search(answer.text)
        assert action is not None, answer.text
        fields = {html.unescape(k): html.unescape(v) for k, v in _INPUT.findall(answer.text)}
        done = app.post(_app_path(html.unescape(action.group(1))), data=fields)
    else:
        assert answer.status_code == 302, f"{answer.status_code}: {answer.text}"
        back = answer.headers["location"]
        query = dict(parse_qsl(urlsplit(back).query))
        assert "error" not in query, f"the fake refused the login: {query}"
        done = app.get(_app_path(back))
    assert done.status_code == 303, f"callback answered {done.status_code}: {done.text}"
    assert done.headers["location"] == "/done"
    me = app.get("/auth/me")
    assert me.status_code == 200, me.text
    return str(me.json()["user_id"])
