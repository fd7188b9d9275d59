"""Hot path: the per-call cost of a valid stored token, next to the floor measured alongside.

Floors (the bare work, done directly, nothing remembered between calls):

* credentials: ``storage.get_credential(key)`` + ``open_record(sealer, record)``
  (one storage read, one AES-GCM open, one JSON decode);
* request: the same plus a session check: verify the signed cookie value (one HMAC,
  ``CookieJar.verify_session``), hash the session id, ``storage.get_session(hash, now)``
  (one more read). Ours remembers, per process, the cookie values whose HMAC it checked
  (a browser sends the same cookie on every request), so a repeat cookie skips the HMAC;
  its age and the session row are still checked on every call. On SQLite and memory ours
  reads the session and the credential in one step (``get_session_credential``), where the
  floor makes the two reads.

Ours: ``vault.get_connection_credentials("demo", user)``, and ``connection_credentials(request,
"demo")`` on a fresh Starlette ``Request`` whose scope holds a fresh ``RequestContext`` (what
the middleware builds per request) and the signed session cookie. The vault carries the
service layer as the middleware attaches it, so every read also goes to the audit trail
(aggregated per user and written once a second).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.core.cookies import SESSION_COOKIE, hash_id
from oauth_vault_mw.core.records import open_record
from oauth_vault_mw.starlette import connection_credentials
from oauth_vault_mw.starlette._context import SCOPE_KEY, RequestContext

from ._common import (
    CONNECTION_ID,
    USER_ID,
    Call,
    HotResult,
    Seeded,
    batch_seconds,
    calibrate,
    make_settings,
    new_encryption_key,
    new_secret_key,
    repeats_for,
    seed,
    time_interleaved,
)

__all__ = ["run_hotpath"]


def _scope_template(cookie_value: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/profile",
        "raw_path": b"/profile",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"bench"),
            (b"accept", b"*/*"),
            (b"cookie", f"{SESSION_COOKIE}={cookie_value}".encode("latin-1")),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def _calls(s: Seeded) -> dict[str, Call]:
    vault = s.vault
    storage = vault.storage
    sealer = vault.sealer
    key = s.key
    template = _scope_template(s.cookie_value)
    service = s.service

    async def floor_credentials() -> object:
        record = await storage.get_credential(key)
        assert record is not None
        return open_record(sealer, record)

    async def ours_credentials() -> object:
        return await vault.get_connection_credentials(CONNECTION_ID, USER_ID)

    cookie_value = s.cookie_value
    jar = vault.cookies

    async def floor_request() -> object:
        session_id = jar.verify_session(cookie_value)  # the HMAC, every call
        assert session_id is not None
        user = await storage.get_session(hash_id(session_id), time.time())
        assert user is not None
        record = await storage.get_credential(key)
        assert record is not None
        return open_record(sealer, record)

    async def ours_request() -> object:
        scope = dict(template)
        scope[SCOPE_KEY] = RequestContext(vault, scope, service)
        return await connection_credentials(Request(scope), CONNECTION_ID)

    return {
        "floor_credentials": floor_credentials,
        "ours_credentials": ours_credentials,
        "floor_request": floor_request,
        "ours_request": ours_request,
    }


async def _check(s: Seeded, calls: dict[str, Call]) -> None:
    """Every call must succeed and return the seeded token before it is timed."""
    creds = await s.vault.get_connection_credentials(CONNECTION_ID, USER_ID)
    got = await calls["ours_request"]()
    if got != creds or creds.user_id != USER_ID:
        raise RuntimeError(f"request path returned {got!r}, expected {creds!r}")
    for fn in calls.values():
        await fn()


async def _bench_storage(
    label: str, vault: AsyncVault, batch: float, repeats: int
) -> list[HotResult]:
    seeded = await seed(vault)
    try:
        calls = _calls(seeded)
        await _check(seeded, calls)
        plan = {name: (fn, await calibrate(fn, batch)) for name, fn in calls.items()}
        t = await time_interleaved(plan, repeats)
    finally:
        await seeded.service.close()
        await vault.aclose()
    return [
        HotResult(
            "hot path: vault.get_connection_credentials()",
            label,
            t["ours_credentials"],
            t["floor_credentials"],
        ),
        HotResult(
            "hot path: connection_credentials(request)",
            label,
            t["ours_request"],
            t["floor_request"],
        ),
    ]


async def run_hotpath(*, quick: bool) -> list[HotResult]:
    # The vault warns once that memory:// is single-process: true, and noise here.
    logging.getLogger("oauth_vault_mw").setLevel(logging.ERROR)
    batch = batch_seconds(quick)
    repeats = repeats_for(quick)
    secret, enc = new_secret_key(), new_encryption_key()
    results = await _bench_storage(
        "memory", AsyncVault(make_settings("memory://", secret, enc)), batch, repeats
    )
    with tempfile.TemporaryDirectory(prefix="oauth-vault-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'hotpath.db'}"
        results += await _bench_storage(
            "sqlite", AsyncVault(make_settings(url, secret, enc)), batch, repeats
        )
    return results
