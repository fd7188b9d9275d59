"""The Flask shell: hot path next to its floor, Flask-Dance as the peer, and throughput under
gunicorn (gthread) and under waitress next to a bare Flask view.

Hot path (``memory://`` and a temp SQLite file, the sync :class:`~oauth_vault_mw.Vault` that
:class:`~oauth_vault_mw.flask.OAuthVault` sets up, its service layer and audit trail attached):

* ``Vault.get_connection_credentials("demo", user)`` next to ``storage.get_credential(key)`` +
  ``open_record(sealer, record)``;
* ``request.connection_credentials("demo")`` (``flask.request``, the app's ``VaultRequest``)
  next to the same + the signed cookie's HMAC checked (``verify_session``), its id hashed,
  ``storage.get_session`` (ours skips the HMAC of a cookie it verified before). An
  app and request context carrying the session cookie stays pushed; before each call the
  request's user cache (in its WSGI environ) is cleared, so every call pays what a new
  request pays: the cookie read and verified, the session looked up. The request object
  itself is Flask's, built for every request whether a view calls the vault or not, so it is
  not timed (the whole-request cost is the peer row's and the endpoint row's subject).

Peer (SQLite, same temp dir): one whole request context per call, pushed and popped (app
context, Flask session, teardown: what a real request pays), on both apps with their own
session cookie: ours ``request.connection_credentials("demo")``, Flask-Dance's
``blueprint.token`` (see :mod:`benchmarks._dance`). Ratio ours / peer, target < 1. Timed with
them: the same request context pushed and popped with nothing inside
(:attr:`FlaskResults.empty_context`), Flask's own share of ours, which no extension removes.

Throughput: ``benchmarks._flask_apps:vault_app`` (the blueprint's ``GET /auth/connections/demo/
credentials``, SQLite) and ``:bare_app`` (a Flask view returning the same dict with the same
no-store headers), each in its own server process, 50 keep-alive connections, load alternated
a/b/a/b: first under gunicorn (gthread, 1 worker, 8 threads), then under waitress (8 threads).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.ctx import RequestContext
from werkzeug.test import EnvironBuilder

from oauth_vault_mw import Vault
from oauth_vault_mw.core.cookies import SESSION_COOKIE, hash_id
from oauth_vault_mw.core.model import Credentials
from oauth_vault_mw.core.records import open_record
from oauth_vault_mw.flask import OAuthVault, vault_request
from oauth_vault_mw.flask._context import USER_CACHE_KEY

from . import _dance
from ._common import (
    CONNECTION_ID,
    CREDENTIALS_PATH,
    USER_ID,
    HotResult,
    Skipped,
    SyncCall,
    SyncSeeded,
    Timing,
    batch_seconds,
    calibrate_sync,
    make_settings,
    new_encryption_key,
    new_secret_key,
    repeats_for,
    seed_sync,
    time_interleaved_sync,
)
from ._http import (
    EndpointResult,
    Load,
    Target,
    alternate,
    check_same,
    gunicorn_command,
    serve,
    subprocess_env,
    waitress_command,
)
from .endpoint import rounds_for, seconds_for

__all__ = [
    "FLASK_CONNECTIONS",
    "PEER_CASE",
    "WSGI_SERVERS",
    "FlaskResults",
    "run_flask_endpoint",
    "run_flask_hot",
]

PEER_CASE = "peer: Flask-Dance blueprint.token (per request)"
FLASK_CONNECTIONS = 50
WSGI_SERVERS = {"gunicorn": gunicorn_command, "waitress": waitress_command}


@dataclass(frozen=True)
class FlaskResults:
    hot: list[HotResult]
    peer: HotResult | Skipped
    # The peer row's setup with nothing inside: our app's request context pushed and
    # popped, the part of "ours" that is Flask's own (None when the peer is skipped).
    empty_context: Timing | None = None


def _environ(path: str, cookie: str, base: dict[str, str] | None = None) -> dict[str, Any]:
    builder = EnvironBuilder(path=path, headers=[("Cookie", cookie)], environ_base=base)
    try:
        return builder.get_environ()
    finally:
        builder.close()


def _profile() -> str:
    return "profile"


@contextmanager
def _flask_vault(url: str, secret: str, enc: str) -> Iterator[tuple[Flask, SyncSeeded]]:
    """A Flask app with OAuthVault on a vault seeded here (closed here, audit flushed)."""
    vault = Vault(make_settings(url, secret, enc))
    ext = OAuthVault()
    try:
        seeded = seed_sync(vault)
        app = Flask("bench_flask_hot")
        # the path the timed requests go to is routed, as a request to a view that reads the
        # token is (an unrouted one builds a NotFound with its traceback: ~5 us per request,
        # in both apps alike, Flask-Dance's included)
        app.add_url_rule("/profile", "profile", _profile)
        ext.init_app(app, vault=vault)
        try:
            yield app, seeded
        finally:
            ext.get_service(app).close()
    finally:
        vault.close()


def _hot_calls(s: SyncSeeded, ctx: RequestContext) -> dict[str, SyncCall]:
    """The four timed calls; ``ours_request`` runs in ``ctx`` (pushed by the caller)."""
    vault = s.vault
    storage = vault.storage
    sealer = vault.sealer
    key = s.key
    jar = vault.cookies
    cookie_value = s.cookie_value
    environ = ctx.request.environ

    def floor_credentials() -> object:
        record = storage.get_credential(key)
        assert record is not None
        return open_record(sealer, record)

    def ours_credentials() -> object:
        return vault.get_connection_credentials(CONNECTION_ID, USER_ID)

    def floor_request() -> object:
        session_id = jar.verify_session(cookie_value)  # the HMAC, every call
        assert session_id is not None
        user = storage.get_session(hash_id(session_id), time.time())
        assert user is not None
        record = storage.get_credential(key)
        assert record is not None
        return open_record(sealer, record)

    def ours_request() -> object:
        environ.pop(USER_CACHE_KEY, None)  # a new request: nothing looked up yet
        return vault_request.connection_credentials(CONNECTION_ID)

    return {
        "floor_credentials": floor_credentials,
        "ours_credentials": ours_credentials,
        "floor_request": floor_request,
        "ours_request": ours_request,
    }


def _check(vault: Vault, calls: dict[str, SyncCall]) -> Credentials:
    creds = vault.get_connection_credentials(CONNECTION_ID, USER_ID)
    got = calls["ours_request"]()
    if got != creds or creds.user_id != USER_ID:
        raise RuntimeError(f"flask request path returned {got!r}, expected {creds!r}")
    for fn in calls.values():
        fn()
    return creds


def _hot(label: str, url: str, secret: str, enc: str, quick: bool) -> list[HotResult]:
    with _flask_vault(url, secret, enc) as (app, seeded):
        environ = _environ("/profile", f"{SESSION_COOKIE}={seeded.cookie_value}")
        with app.request_context(environ) as ctx:
            calls = _hot_calls(seeded, ctx)
            _check(seeded.vault, calls)
            batch = batch_seconds(quick)
            plan = {name: (fn, calibrate_sync(fn, batch)) for name, fn in calls.items()}
            t = time_interleaved_sync(plan, repeats_for(quick))
    vault_case = "flask: Vault.get_connection_credentials()"
    request_case = "flask: request.connection_credentials()"
    return [
        HotResult(vault_case, label, t["ours_credentials"], t["floor_credentials"]),
        HotResult(request_case, label, t["ours_request"], t["floor_request"]),
    ]


def _peer(
    tmp: Path, secret: str, enc: str, quick: bool
) -> tuple[HotResult | Skipped, Timing | None]:
    if _dance.MISSING is not None:
        return Skipped(PEER_CASE, "sqlite", f"skipped: {_dance.MISSING}"), None
    url = f"sqlite:///{tmp / 'flask_ours.db'}"
    with _flask_vault(url, secret, enc) as (app, seeded):
        creds = seeded.vault.get_connection_credentials(CONNECTION_ID, USER_ID)
        peer = _dance.build_peer(tmp, secret, creds.access_token)
        try:
            ours_environ = _environ("/profile", f"{SESSION_COOKIE}={seeded.cookie_value}")
            peer_environ = _environ("/profile", peer.cookie, peer.environ_base)
            peer_app = peer.app
            token = peer.token

            def ours() -> object:
                with app.request_context(dict(ours_environ)):
                    return vault_request.connection_credentials(CONNECTION_ID)

            def flask_dance() -> dict[str, Any] | None:
                with peer_app.request_context(dict(peer_environ)):
                    return token()

            def empty() -> None:
                with app.request_context(dict(ours_environ)):
                    pass

            got = ours()
            found = flask_dance()
            if got != creds:
                raise RuntimeError(f"ours returned {got!r}")
            if not found or found.get("access_token") != peer.access_token:
                raise RuntimeError("flask-dance did not find the stored token")
            calls: dict[str, SyncCall] = {"ours": ours, "peer": flask_dance, "empty": empty}
            batch = batch_seconds(quick)
            plan = {name: (fn, calibrate_sync(fn, batch)) for name, fn in calls.items()}
            t = time_interleaved_sync(plan, repeats_for(quick))
        finally:
            peer.close()
    return HotResult(PEER_CASE, "sqlite", t["ours"], t["peer"]), t["empty"]


def run_flask_hot(*, quick: bool) -> FlaskResults:
    logging.getLogger("oauth_vault_mw").setLevel(logging.ERROR)
    secret, enc = new_secret_key(), new_encryption_key()
    hot = _hot("memory", "memory://", secret, enc, quick)
    with tempfile.TemporaryDirectory(prefix="oauth-vault-bench-") as tmp_name:
        tmp = Path(tmp_name)
        hot += _hot("sqlite", f"sqlite:///{tmp / 'flask_hot.db'}", secret, enc, quick)
        peer, empty_context = _peer(tmp, secret, enc, quick)
    return FlaskResults(hot, peer, empty_context)


# -- throughput under gunicorn gthread and under waitress ---------------------------------------


def _seed_endpoint(url: str, secret: str, enc: str) -> tuple[str, bytes]:
    vault = Vault(make_settings(url, secret, enc))
    try:
        seeded = seed_sync(vault)
        body = vault.get_connection_credentials(CONNECTION_ID, USER_ID).to_dict()
    finally:
        vault.close()
    return seeded.cookie_value, json.dumps(body).encode()


def run_flask_endpoint(*, quick: bool, loadgen: str = "auto") -> dict[str, EndpointResult]:
    """Ours vs bare under each WSGI server (``gunicorn``, ``waitress``), a/b alternated at
    :data:`FLASK_CONNECTIONS` connections; one SQLite file, seeded once."""
    seconds, rounds = seconds_for(quick), rounds_for(quick)
    load = Load.choose(loadgen, FLASK_CONNECTIONS)
    secret, enc = new_secret_key(), new_encryption_key()
    results: dict[str, EndpointResult] = {}
    with tempfile.TemporaryDirectory(prefix="oauth-vault-bench-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'flask_endpoint.db'}"
        cookie_value, expected = _seed_endpoint(url, secret, enc)
        env = subprocess_env(
            BENCH_STORAGE_URL=url,
            BENCH_SECRET_KEY=secret,
            BENCH_ENCRYPTION_KEY=enc,
            BENCH_PAYLOAD=expected.decode(),
        )
        cookie = {"Cookie": f"{SESSION_COOKIE}={cookie_value}"}
        for server_name, command in WSGI_SERVERS.items():
            commands = {
                f"{server_name}_{app}": command(f"benchmarks._flask_apps:{app}")
                for app in ("vault_app", "bare_app")
            }
            with serve(commands, env, tmp, CREDENTIALS_PATH, cookie) as servers:
                ours = Target("ours", servers[f"{server_name}_vault_app"], CREDENTIALS_PATH, cookie)
                bare = Target("bare", servers[f"{server_name}_bare_app"], CREDENTIALS_PATH, cookie)
                check_same([ours, bare], expected)
                rps = alternate(load, [ours, bare], seconds, rounds)
            results[server_name] = EndpointResult(
                rps["ours"], rps["bare"], load.describe(), seconds
            )
    return results
