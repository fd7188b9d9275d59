"""The same scenarios against the Starlette app and the Flask app, each on a real server.

Both apps are built alike: the vault's routes under /auth and two views of the host app,
``/profile/<cid>`` calling ``request.connection_credentials`` and ``/fn/<cid>`` calling the
function ``connection_credentials``. A scenario gets a :class:`Site` and must not know which
framework serves it: what it asserts holds for both, so the two cannot drift.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from oauth_vault_mw import Settings, Vault
from oauth_vault_mw._sync.service import ServiceAccess
from oauth_vault_mw.core.crypto import Sealer
from oauth_vault_mw.core.model import CredentialKey, StoredCredential, TokenSet
from oauth_vault_mw.core.records import open_record
from oauth_vault_mw.storage.sql import SQLStorage
from tests.support.oidc_provider import DevProvider, callback_path, complete_login
from tests.support.suite import settings_for

FRAMEWORKS = ["starlette", "flask"]


@dataclass
class Site:
    framework: str
    base: str
    settings: Settings
    provider: DevProvider
    client: httpx.Client
    browser: httpx.Client

    def login(
        self, connection_id: str = "demo", user: str = "alice", *, path: str = "login",
        return_to: str = "/",
    ) -> httpx.Response:  # fmt: skip
        start = self.client.get(f"/auth/{path}/{connection_id}", params={"return_to": return_to})
        assert start.status_code == 302, start.text
        return self.client.get(self.authorize(start.headers["location"], user))

    def authorize(self, authorize_url: str, user: str) -> str:
        return callback_path(complete_login(self.browser, authorize_url, login=user), self.base)

    @contextmanager
    def storage(self) -> Iterator[SQLStorage]:
        """The served app's store (the same SQLite file), to look at what it wrote."""
        storage = SQLStorage(self.settings.storage_url)
        try:
            yield storage
        finally:
            storage.close()

    def record(self, connection_id: str, user_id: str) -> StoredCredential | None:
        with self.storage() as storage:
            return storage.get_credential(CredentialKey(connection_id, user_id))

    def stored(self, connection_id: str, user_id: str) -> TokenSet:
        record = self.record(connection_id, user_id)
        assert record is not None
        return open_record(Sealer(self.settings.encryption_keys), record)

    def linked(self, login: str, connection_id: str = "demo") -> str | None:
        """The user the provider account ``login`` is linked to, if any."""
        with self.storage() as storage:
            return storage.get_identity(connection_id, login)

    @contextmanager
    def vault(self) -> Iterator[Vault]:
        """A vault over the served app's store, with the app's settings (same keys)."""
        vault = Vault(self.settings)
        try:
            yield vault
        finally:
            vault.close()

    @contextmanager
    def service(self) -> Iterator[ServiceAccess]:
        """Service access over the served app's store (same SQLite file, same settings):
        clients made here are the app's, tokens issued here verify there, and the events
        the app wrote are read here."""
        with self.vault() as vault:
            service = ServiceAccess(vault)
            try:
                yield service
            finally:
                service.close()


def error(answer: httpx.Response, status: int, code: str) -> dict[str, object]:
    """The vault's JSON error: ``status``, ``{"error": code, "error_description": ...}``."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body: dict[str, object] = answer.json()
    assert body["error"] == code
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    return body


def with_param(url: str, **changes: str) -> str:
    """``url`` (a path and query) with query parameters replaced or added."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    query.update(changes)
    return f"{parts.path}?{urlencode(query)}"


def _starlette_server(settings: Settings, port: int) -> Callable[[], None]:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from oauth_vault_mw.starlette import (
        OAuthVaultMiddleware,
        VaultRequest,
        VaultRoute,
        connection_credentials,
    )

    async def profile(request: VaultRequest) -> JSONResponse:
        creds = await request.connection_credentials(request.path_params["cid"])
        return JSONResponse({"access_token": creds.access_token, "user_id": creds.user_id})

    async def by_function(request: Request) -> JSONResponse:
        creds = await connection_credentials(request, request.path_params["cid"])
        return JSONResponse({"access_token": creds.access_token, "user_id": creds.user_id})

    app = Starlette(routes=[VaultRoute("/profile/{cid}", profile), Route("/fn/{cid}", by_function)])
    app.add_middleware(OAuthVaultMiddleware, settings=settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return stop


def _flask_server(settings: Settings, port: int) -> Callable[[], None]:
    from flask import Flask, jsonify
    from werkzeug.serving import make_server

    from oauth_vault_mw.flask import OAuthVault, connection_credentials, vault_request

    app = Flask("conformance")
    OAuthVault(app, settings=settings)

    @app.get("/profile/<cid>")
    def profile(cid: str) -> Any:
        creds = vault_request.connection_credentials(cid)
        return jsonify(access_token=creds.access_token, user_id=creds.user_id)

    @app.get("/fn/<cid>")
    def by_function(cid: str) -> Any:
        creds = connection_credentials(cid)
        return jsonify(access_token=creds.access_token, user_id=creds.user_id)

    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(10)

    return stop


@pytest.fixture(scope="session", params=FRAMEWORKS)
def served(
    request: pytest.FixtureRequest,
    provider: DevProvider,
    conformance_ports: dict[str, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str, Settings]]:
    framework: str = request.param
    port = conformance_ports[framework]
    base = f"http://127.0.0.1:{port}"
    db = tmp_path_factory.mktemp(framework) / "vault.db"
    settings = settings_for(provider, base=base, storage_url=f"sqlite:///{db}")
    start = _starlette_server if framework == "starlette" else _flask_server
    stop = start(settings, port)
    try:
        yield framework, base, settings
    finally:
        stop()


@pytest.fixture
def site(served: tuple[str, str, Settings], provider: DevProvider) -> Iterator[Site]:
    framework, base, settings = served
    with httpx.Client(base_url=base, timeout=30) as client, httpx.Client(timeout=30) as browser:
        yield Site(framework, base, settings, provider, client, browser)
