"""``request.connection_client`` / ``connection_client`` and ``Vault.client`` in Flask,
against the development provider: its userinfo endpoint (``/me``) is the API.

A stored access token the provider does not know (still valid by its expiry) is the API's
401: the client refreshes once (the provider counts the refresh grant) and retries once.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify

from oauth_vault_mw import Vault
from oauth_vault_mw.core.model import CredentialKey
from oauth_vault_mw.core.records import open_record
from oauth_vault_mw.flask import ConnectionClient, OAuthVault, connection_client
from oauth_vault_mw.flask import vault_request as request
from tests.support.oidc_provider import DevProvider
from tests.support.ports import free_port

from .conftest import Harness, config_for, harness_for

STALE = "stale-access-token"
sent_headers: list[str | None] = []
"""The Authorization header of every request the app's clients sent (their event hook)."""


def record(sent: httpx.Request) -> None:
    sent_headers.append(sent.headers.get("authorization"))


def make_app(provider: DevProvider) -> Flask:
    conn = {
        "id": "demo",
        "issuer": provider.issuer,
        "client_id": "demo",
        "client_secret": "demo-secret",
        "scopes": ["openid", "profile", "email", "offline_access"],
        "min_validity": 0,
        "api_base_url": provider.issuer,
    }
    app = Flask(__name__)
    app.config.update(config_for(provider, connections=[conn]))
    OAuthVault().init_app(app)

    @app.get("/token")
    def token() -> Any:
        return jsonify(access_token=request.connection_credentials("demo").access_token)

    @app.get("/userinfo")
    def userinfo() -> Any:
        url = request.args.get("url", "/me")
        with request.connection_client("demo", event_hooks={"request": [record]}) as api:
            resp = api.get(url)
        return jsonify(status=resp.status_code, body=resp.json())

    @app.get("/streamed")
    def streamed() -> Any:
        def body() -> Iterator[bytes]:
            yield b"claims="
            yield b"none"

        api = connection_client("demo", event_hooks={"request": [record]})  # left open
        resp = api.post(
            "/me", content=body(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        return jsonify(status=resp.status_code)

    @app.get("/failing")
    def failing() -> Any:
        texts: list[str] = []
        down = f"http://127.0.0.1:{free_port()}"
        with connection_client("demo", base_url=down) as api:
            texts.append(repr(api))
            try:
                api.get("/me")
            except httpx.ConnectError as exc:
                texts += [str(exc), repr(exc), str(exc.request.headers)]
                texts.append("".join(traceback.format_exception(exc)))
        with connection_client("demo") as api:
            resp = api.get("/me")  # 401, a refresh, 200
            texts += [repr(resp), str(resp.request.headers), repr(resp.history)]
            missing = api.get("/no-such-api")
            try:
                missing.raise_for_status()
            except httpx.HTTPStatusError as exc:
                texts += [str(exc), repr(exc), str(exc.request.headers)]
                texts.append("".join(traceback.format_exception(exc)))
        return jsonify(texts=texts, status=[resp.status_code, missing.status_code])

    return app


@pytest.fixture
def h(provider: DevProvider) -> Iterator[Harness]:
    sent_headers.clear()
    app = make_app(provider)
    h = harness_for(app, provider)
    with h.client, h.browser:
        yield h
    OAuthVault().get_service(app).close()
    h.vault.close()


def spoil(vault: Vault, user_id: str) -> None:
    """The stored access token becomes one the provider does not know; the refresh token
    stays good (revoking the token at the dev provider would revoke the whole grant)."""
    key = CredentialKey("demo", user_id)
    record = vault.storage.get_credential(key)
    assert record is not None
    vault.put_tokens(key, replace(open_record(vault.sealer, record), access_token=STALE))


def log_in(h: Harness, user: str) -> str:
    assert h.login(user=user).status_code in (302, 303)
    return h.user_id()


def token(h: Harness) -> str:
    return str(h.client.get("/token").json()["access_token"])


def test_the_client_sends_the_token_to_the_api(h: Harness, unique_user: Any) -> None:
    user = unique_user()
    log_in(h, user)
    before = h.provider.stats()
    resp = h.client.get("/userinfo").json()
    assert resp["status"] == 200
    assert resp["body"]["sub"] == user
    after = h.provider.stats()
    assert after["refresh_grants"] == before["refresh_grants"]
    assert after["userinfo_calls"] == before["userinfo_calls"] + 1
    assert sent_headers == [f"Bearer {token(h)}"]


def test_a_401_brings_exactly_one_refresh_and_one_retry(h: Harness, unique_user: Any) -> None:
    spoil(h.vault, log_in(h, unique_user()))
    before = h.provider.stats()
    assert h.client.get("/userinfo").json()["status"] == 200
    after = h.provider.stats()
    assert after["refresh_grants"] == before["refresh_grants"] + 1
    assert after["userinfo_calls"] == before["userinfo_calls"] + 2
    assert sent_headers == [f"Bearer {STALE}", f"Bearer {token(h)}"]


def test_a_streamed_body_is_never_replayed(h: Harness, unique_user: Any) -> None:
    spoil(h.vault, log_in(h, unique_user()))
    before = h.provider.stats()
    assert h.client.get("/streamed").json() == {"status": 401}
    after = h.provider.stats()
    assert after["refresh_grants"] == before["refresh_grants"], "no refresh"
    assert after["userinfo_calls"] == before["userinfo_calls"] + 1, "sent once"
    assert sent_headers == [f"Bearer {STALE}"]


def test_another_origin_gets_no_token(h: Harness, unique_user: Any) -> None:
    log_in(h, unique_user())
    other = h.provider.userinfo_endpoint.replace("127.0.0.1", "localhost")
    before = h.provider.stats()
    assert h.client.get("/userinfo", params={"url": other}).json()["status"] == 401
    assert sent_headers == [None]
    assert h.provider.stats()["refresh_grants"] == before["refresh_grants"]


def test_no_token_in_reprs_or_errors(h: Harness, unique_user: Any) -> None:
    user_id = log_in(h, unique_user())
    first = token(h)
    spoil(h.vault, user_id)
    resp = h.client.get("/failing").json()
    assert resp["status"] == [200, 404]
    text = "\n".join(resp["texts"])
    assert "ConnectError" in text
    assert "404" in text
    tokens = {first, STALE, token(h)}
    assert len(tokens) == 3
    for value in tokens:
        assert value not in text


def test_a_background_client_retries_after_one_refresh(h: Harness, unique_user: Any) -> None:
    user_id = log_in(h, unique_user())
    spoil(h.vault, user_id)
    before = h.provider.stats()
    with h.vault.client("demo", user_id) as api:
        assert isinstance(api, ConnectionClient)
        assert (
            repr(api) == f"ConnectionClient(connection_id='demo', base_url='{h.provider.issuer}')"
        )
        assert api.get("/me").status_code == 200
    assert not h.vault.provider.client.is_closed, "closing the client leaves the pool open"
    after = h.provider.stats()
    assert after["refresh_grants"] == before["refresh_grants"] + 1
    assert after["userinfo_calls"] == before["userinfo_calls"] + 2
    assert h.vault.client("demo", user_id).get("/me").status_code == 200, "pool still serves"
