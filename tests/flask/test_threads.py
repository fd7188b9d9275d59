"""The Flask app under a real threaded WSGI server: one refresh for 100 concurrent requests.

The app is served on a free loopback port (registered at the provider) by waitress with 8
worker threads, as in production, and by werkzeug's thread-per-request server. After the
token expired, 100 requests at once ask for it; the provider must see exactly one refresh
grant and no reuse of a rotated refresh token, and every request must get the same token.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify

from oauth_vault_mw.flask import vault_request as request
from tests.support.oidc_provider import DevProvider
from tests.support.suite import BASE, TOKEN_TTL

from .conftest import Harness, both_storages, config_for, make_app

pytestmark = pytest.mark.integration

CONCURRENT = 100
WAITRESS_THREADS = 8


@pytest.fixture(params=["memory", "sqlite"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return both_storages(request, tmp_path)


@contextlib.contextmanager
def serve(app: Flask, port: int, kind: str) -> Iterator[None]:
    """Serve ``app`` on 127.0.0.1:``port`` in a background thread until the block ends."""
    if kind == "waitress":
        try:
            waitress_server: Any = importlib.import_module("waitress.server")
            wasyncore: Any = importlib.import_module("waitress.wasyncore")
        except ImportError:
            pytest.skip("waitress is not installed (the dev extra brings it)")
        server = waitress_server.create_server(
            app, host="127.0.0.1", port=port, threads=WAITRESS_THREADS,
            connection_limit=CONCURRENT * 2,
        )  # fmt: skip
        stop = threading.Event()

        def run() -> None:  # server.run(), with a stop: its sockets close in its own thread
            while not stop.is_set():
                wasyncore.loop(timeout=0.05, map=server._map, count=1)
            wasyncore.close_all(server._map)

        thread = threading.Thread(target=run, name="waitress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)
            server.task_dispatcher.shutdown()
            assert not thread.is_alive()
        return
    from werkzeug.serving import make_server

    wserver = make_server("127.0.0.1", port, app, threaded=True)
    wthread = threading.Thread(target=wserver.serve_forever, name="werkzeug", daemon=True)
    wthread.start()
    try:
        yield
    finally:
        wserver.shutdown()
        wserver.server_close()
        wthread.join(timeout=10)
        assert not wthread.is_alive()


@pytest.mark.parametrize("kind", ["waitress", "werkzeug"])
def test_one_refresh_for_100_concurrent_requests(
    provider: DevProvider,
    server_port: int,
    storage_url: str,
    kind: str,
    unique_user: Callable[[], str],
) -> None:
    base = f"http://127.0.0.1:{server_port}"
    app = make_app(config_for(provider, base=base, storage_url=storage_url))
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    @app.get("/concurrent/<cid>")
    def concurrent(cid: str) -> Any:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            creds = request.connection_credentials(cid)
            return jsonify(token=creds.access_token, thread=threading.get_ident())
        finally:
            with lock:
                in_flight -= 1

    vault = app.extensions["oauth_vault"]
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    with (
        serve(app, server_port, kind),
        httpx.Client(base_url=base, limits=limits, timeout=30) as client,
        httpx.Client() as browser,
    ):
        h = Harness(app, vault, client, browser, provider, base)
        assert h.login(user=unique_user()).status_code == 303
        first = client.get("/concurrent/demo").json()["token"]

        time.sleep(TOKEN_TTL + 0.2)  # expired: every reader needs the refresh
        before = provider.stats()
        # A slow token endpoint keeps the refresh in flight while the others arrive.
        provider.fail(status=0, delay_ms=500, count=1)
        start = threading.Barrier(CONCURRENT)

        def read(_: int) -> httpx.Response:
            start.wait(timeout=30)
            return client.get("/concurrent/demo")

        try:
            with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
                answers = list(pool.map(read, range(CONCURRENT)))
        finally:
            provider.clear_failures()
        after = provider.stats()

    assert [a.status_code for a in answers] == [200] * CONCURRENT, answers[0].text
    tokens = {a.json()["token"] for a in answers}
    assert len(tokens) == 1
    assert first not in tokens
    assert after["refresh_grants"] - before["refresh_grants"] == 1
    assert after["refresh_errors"].get("invalid_grant", 0) == before["refresh_errors"].get(
        "invalid_grant", 0
    )
    threads = {a.json()["thread"] for a in answers}
    if kind == "waitress":
        assert peak == WAITRESS_THREADS  # every worker thread was busy at once
        assert len(threads) <= WAITRESS_THREADS
    else:
        assert peak > WAITRESS_THREADS
    assert len(threads) > 1
    vault.close()


def test_one_refresh_across_two_vaults_on_one_sqlite_file(
    provider: DevProvider, tmp_path: Path, unique_user: Callable[[], str]
) -> None:
    """Two apps, two vaults, one SQLite file: two processes as far as the vault can tell."""
    config = config_for(provider, storage_url=f"sqlite:///{tmp_path / 'shared.db'}")
    apps = [make_app(config), make_app(config)]
    vaults = [app.extensions["oauth_vault"] for app in apps]
    assert vaults[0] is not vaults[1]
    clients = [httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE)
               for app in apps]  # fmt: skip
    with clients[0], clients[1], httpx.Client() as browser:
        h = Harness(apps[0], vaults[0], clients[0], browser, provider)
        h.login(user=unique_user())
        clients[1].cookies.set("oauth_vault_session", clients[0].cookies["oauth_vault_session"])
        first = clients[1].get("/profile/demo").json()["access_token"]  # any process, any user

        time.sleep(TOKEN_TTL + 0.2)
        before = provider.stats()
        provider.fail(status=0, delay_ms=500, count=1)
        start = threading.Barrier(CONCURRENT)

        def read(i: int) -> httpx.Response:
            start.wait(timeout=30)
            return clients[i % 2].get("/profile/demo")

        try:
            with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
                answers = list(pool.map(read, range(CONCURRENT)))
        finally:
            provider.clear_failures()
        after = provider.stats()

    assert [a.status_code for a in answers] == [200] * CONCURRENT, answers[0].text
    tokens = {a.json()["access_token"] for a in answers}
    assert len(tokens) == 1
    assert first not in tokens
    assert after["refresh_grants"] - before["refresh_grants"] == 1
    assert after["refresh_errors"] == before["refresh_errors"]
    for vault in vaults:
        vault.close()
