"""Endpoint throughput under uvicorn: the vault's credential routes against a bare Starlette app.

(a) ``benchmarks._apps:vault_app``: ``GET /auth/connections/demo/credentials`` with the session
cookie, on sqlite storage seeded here (user, session, valid credential, one service client);
(b) ``benchmarks._apps:bare_app``: the same path returning the same JSON from a constant;
(c) the service route on the very server of (a): ``GET /auth/connections/demo/users/<user>/
credentials`` with ``Authorization: Bearer <access key>`` of a client granted
``Connections/*/Users/*/Credentials:connections:credentials:read``.

Both servers run side by side with the same uvicorn settings (one worker, ``--log-level
warning``, no access log, ``--loop auto --http auto`` so uvloop/httptools when installed,
127.0.0.1, a free port). The load (``wrk`` when on PATH, else a Python keep-alive client; two
connections, one thread) alternates a/b/c/a/b/c so drift on a shared machine hits all alike.
Reported: (a) / (b) (target >= 0.6) and (c) / (a) (target >= 0.8), medians of the rounds.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.core.cookies import SESSION_COOKIE

from ._common import (
    CONNECTION_ID,
    CREDENTIALS_PATH,
    USER_ID,
    make_settings,
    new_encryption_key,
    new_secret_key,
    seed,
)
from ._http import (
    EndpointResult,
    Load,
    Target,
    alternate,
    check_same,
    serve,
    subprocess_env,
    uvicorn_command,
)

__all__ = ["SERVICE_GRANT", "SERVICE_PATH", "StarletteEndpoints", "run_endpoint"]

CONNECTIONS = 2
SERVICE_GRANT = "Connections/*/Users/*/Credentials:connections:credentials:read"
SERVICE_PATH = f"/auth/connections/{CONNECTION_ID}/users/{USER_ID}/credentials"


@dataclass(frozen=True)
class StarletteEndpoints:
    """(a) vs (b), and (c) vs (a) measured in the same rounds."""

    endpoint: EndpointResult
    service: EndpointResult


@dataclass(frozen=True)
class _Seed:
    cookie: str
    access_key: str
    body: bytes


async def _seed(env: dict[str, str]) -> _Seed:
    """Seed the sqlite file: session, credential, a service client and its key."""
    settings = make_settings(
        env["BENCH_STORAGE_URL"], env["BENCH_SECRET_KEY"], env["BENCH_ENCRYPTION_KEY"]
    )
    vault = AsyncVault(settings)
    try:
        seeded = await seed(vault)
        key = await seeded.service.create_client("bench", [SERVICE_GRANT])
        creds = await vault.get_connection_credentials(CONNECTION_ID, USER_ID)
        await seeded.service.close()
    finally:
        await vault.aclose()
    return _Seed(seeded.cookie_value, key.value, json.dumps(creds.to_dict()).encode())


def run_endpoint(*, quick: bool, loadgen: str = "auto") -> StarletteEndpoints:
    seconds = 1 if quick else 5
    rounds = 2
    load = Load.choose(loadgen, CONNECTIONS)
    with tempfile.TemporaryDirectory(prefix="oauth-vault-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env = subprocess_env(
            BENCH_STORAGE_URL=f"sqlite:///{tmp / 'endpoint.db'}",
            BENCH_SECRET_KEY=new_secret_key(),
            BENCH_ENCRYPTION_KEY=new_encryption_key(),
        )
        seeded = asyncio.run(_seed(env))
        env["BENCH_PAYLOAD"] = seeded.body.decode()
        cookie = {"Cookie": f"{SESSION_COOKIE}={seeded.cookie}"}
        commands = {name: uvicorn_command(f"benchmarks._apps:{name}")
                    for name in ("vault_app", "bare_app")}  # fmt: skip
        with serve(commands, env, tmp, CREDENTIALS_PATH, cookie) as servers:
            ours = Target("ours", servers["vault_app"], CREDENTIALS_PATH, cookie)
            bare = Target("bare", servers["bare_app"], CREDENTIALS_PATH, cookie)
            service = Target("service", servers["vault_app"], SERVICE_PATH,
                             {"Authorization": f"Bearer {seeded.access_key}"})  # fmt: skip
            check_same([ours, bare], seeded.body)
            check_same([ours, service], seeded.body)
            rps = alternate(load, [ours, bare, service], seconds, rounds)
    return StarletteEndpoints(
        EndpointResult(rps["ours"], rps["bare"], load.describe(), seconds),
        EndpointResult(rps["service"], rps["ours"], load.describe(), seconds),
    )
