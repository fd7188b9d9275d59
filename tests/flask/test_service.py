"""The extension's service access: where it lives, when its audit trail is written, how
app tokens resolve the user. The routes' HTTP behaviour, the same as Starlette's, is in
tests/conformance/test_scenarios.py."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from flask import Flask, url_for

from oauth_vault_mw import MiddlewareNotInstalled, NotAuthenticated, Vault
from oauth_vault_mw._sync.service import ServiceAccess
from oauth_vault_mw.core.errors import TokenExchangeError
from oauth_vault_mw.core.service import AuditEvent
from oauth_vault_mw.flask import OAuthVault, current_user_id, settings_from_config
from oauth_vault_mw.storage import MemoryStorage
from tests.support.oidc_provider import DevProvider
from tests.support.suite import BASE

from .conftest import Harness, config_for, harness_for, make_app
from .test_extension import MINIMAL

pytestmark = pytest.mark.integration

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


def _app(config: dict[str, Any], ext: OAuthVault | None = None, **options: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    (ext or OAuthVault()).init_app(app, **options)
    return app


def _event(action: str) -> AuditEvent:
    return AuditEvent(time.time(), "client:reports/0123456789abcdef", action, "ok", "demo", "u")


def test_one_service_per_app_next_to_its_vault() -> None:
    ext = OAuthVault()
    apps = [_app(MINIMAL, ext), _app(MINIMAL, ext)]
    services = [ext.get_service(app) for app in apps]
    for app, service in zip(apps, services, strict=True):
        assert isinstance(service, ServiceAccess)
        assert app.extensions["oauth_vault_service"] is service
        assert service.vault is ext.get_vault(app)
        assert service.vault.audit is service.audit  # the vault's reads join its trail
        with app.app_context():
            assert ext.get_service() is service
    assert services[0] is not services[1]
    with pytest.raises(MiddlewareNotInstalled):
        OAuthVault().get_service(Flask(__name__))


def test_routes_are_registered() -> None:
    app = _app(MINIMAL)
    with app.test_request_context():
        assert url_for("oauth_vault.jwks") == "/auth/.well-known/jwks.json"
        assert url_for("oauth_vault.app_token") == "/auth/app-token"
        assert url_for("oauth_vault.token") == "/auth/token"
        assert (url_for("oauth_vault.service_credentials", connection_id="plain", user_id="u")
                == "/auth/connections/plain/users/u/credentials")  # fmt: skip
    ext_vault = app.extensions["oauth_vault"]
    assert isinstance(ext_vault, Vault)
    ext_vault.close()


def test_audit_trail_is_written_when_the_app_goes() -> None:
    storage = MemoryStorage()
    app = _app(MINIMAL, storage=storage)
    service = OAuthVault().get_service(app)
    vault = service.vault
    service.audit.record(_event("credentials.read"))  # routine: batched, not yet stored
    assert storage.read_events(0, 100) == []
    app_ref = weakref.ref(app)
    del app
    gc.collect()
    assert app_ref() is None
    assert [AuditEvent.from_bytes(d).action for _, d in storage.read_events(0, 100)] == [
        "credentials.read"
    ]
    assert vault.provider.client.is_closed  # flushed first, then the vault it made closed


def test_a_given_vault_gets_its_trail_flushed_and_stays_open() -> None:
    storage = MemoryStorage()
    vault = Vault(settings_from_config(MINIMAL), storage=storage)
    app = _app({}, vault=vault)
    OAuthVault().get_service(app).audit.record(_event("credentials.read"))
    del app
    gc.collect()
    assert len(storage.read_events(0, 100)) == 1
    assert not vault.provider.client.is_closed  # the caller owns it
    vault.close()


def test_token_exchange_errors_render_as_json_in_host_views() -> None:
    app = _app(MINIMAL)

    @app.get("/mine")
    def mine() -> Any:
        raise TokenExchangeError("unauthorized_client", "not for you")

    answer = app.test_client().get("/mine")
    assert answer.status_code == 403
    assert answer.json == {"error": "unauthorized_client", "error_description": "not for you"}
    OAuthVault().get_vault(app).close()


def test_the_form_bound_is_the_vaults_whatever_the_apps_max_content_length() -> None:
    app = _app({**MINIMAL, "MAX_CONTENT_LENGTH": 1000})
    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE)
    form = {"grant_type": EXCHANGE, "subject_token": "x" * 10_000, "subject_token_type": JWT_TYPE,
            "resource": "connection:plain"}  # fmt: skip
    with client:
        # Read whole (10 kB > the app's 1000 bytes), then refused for the missing key.
        answer = client.post("/auth/token", data=form)
        assert answer.status_code == 401
        assert answer.json()["error"] == "invalid_client"
        too_big = client.post(
            "/auth/token", content=urlencode({**form, "pad": "x" * 7000}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert too_big.status_code == 400
        assert too_big.json()["error"] == "invalid_request"
    OAuthVault().get_vault(app).close()


def test_app_token_is_resolved_once_per_request_and_before_the_cookie(
    provider: DevProvider, unique_user: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(config_for(provider))

    @app.get("/twice")
    def twice() -> dict[str, Any]:
        return {"ids": [current_user_id(), current_user_id()]}

    h: Harness = harness_for(app, provider)
    service = OAuthVault().get_service(app)
    by_token: list[str | None] = []
    by_cookie: list[str | None] = []
    token_lookup, cookie_lookup = service.user_for_app_token, h.vault.user_for_session

    def counting_token(header: str | None) -> str | None:
        by_token.append(header)
        return token_lookup(header)

    def counting_cookie(cookie: str | None) -> str | None:
        by_cookie.append(cookie)
        return cookie_lookup(cookie)

    monkeypatch.setattr(service, "user_for_app_token", counting_token)
    monkeypatch.setattr(h.vault, "user_for_session", counting_cookie)
    with h.client, h.browser:
        h.login(user=unique_user())
        user_id = h.user_id()
        token = h.client.get("/auth/app-token").json()["access_token"]
        h.client.cookies.clear()
        by_token.clear()
        by_cookie.clear()
        auth = {"Authorization": f"Bearer {token}"}
        assert h.client.get("/twice", headers=auth).json() == {"ids": [user_id, user_id]}
        assert (len(by_token), by_cookie) == (1, [])  # once; the cookie is not looked at
        assert h.client.get("/twice").json() == {"ids": [None, None]}
        # No Authorization header: no token lookup at all; the cookie, once.
        assert (len(by_token), len(by_cookie)) == (1, 1)
        # A refused token is not cached as "no user": every lookup refuses it.
        answer = h.client.get("/twice", headers={"Authorization": "Bearer x.y.z"})
        assert answer.status_code == 401
        assert answer.json()["error"] == NotAuthenticated.error
    service.close()
    h.vault.close()
