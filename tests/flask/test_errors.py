"""Errors in a Flask app's own views, and misuse only the Flask shell can meet. The 4xx JSON
errors both shells answer alike (bad callbacks, sessions, origins, routes, methods) are
conformance scenarios: ``tests/conformance/test_errors.py``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from flask import Flask, redirect, url_for

from oauth_vault_mw import MiddlewareNotInstalled, NotAuthenticated, ReauthenticationRequired
from oauth_vault_mw.flask import connection_credentials, current_user_id
from tests.support.suite import BASE

from .conftest import Harness

pytestmark = pytest.mark.integration


def _error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    assert body["error"] == code
    assert body["error_description"]
    return body


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
