"""Endpoint throughput under uvicorn[standard]: the vault's credential routes against a bare
Starlette app, at 2 and at 50 keep-alive connections, on SQLite, PostgreSQL and Redis.

(a) ``benchmarks._apps:vault_app``: ``GET /auth/connections/demo/credentials`` with the session
cookie, on storage seeded here (user, session, valid credential, one service client);
(b) ``benchmarks._apps:bare_app``: the same path returning the same JSON from a constant;
(c) the service route on the very server of (a): ``GET /auth/connections/demo/users/<user>/
credentials`` with ``Authorization: Bearer <access key>`` of a client granted
``Connections/*/Users/*/Credentials:connections:credentials:read``.

Both servers run side by side with the same uvicorn settings (one worker, ``--log-level
warning``, no access log, ``--loop uvloop --http httptools`` as ``uvicorn[standard]`` runs,
127.0.0.1, a free port). The load (``wrk -t1``, else a Python keep-alive client with a loud
note) alternates a/b/c/a/b/c so drift on a shared machine hits all alike, first at 2
connections, then at 50. Reported: (a) / (b) at each (target >= 0.6) and (c) / (a) at 50
(target >= 0.8), medians of the rounds.

:func:`run_storage_endpoint`: (a) on a throwaway PostgreSQL or Redis server against (b) at 50
connections (target >= 0.5: the network round trip is included), with :data:`USERS` users
(each a session and a credential) taking turns, request by request: concurrent requests are
mostly of different users, so reads that go to the server together (the storages batch the
reads waiting for a connection) are of different rows, as in an app with many users.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.core.cookies import SESSION_COOKIE, hash_id
from oauth_vault_mw.core.model import CredentialKey

from ._common import (
    CONNECTION_ID,
    CREDENTIALS_PATH,
    USER_ID,
    make_settings,
    new_encryption_key,
    new_secret_key,
    new_tokens,
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

__all__ = [
    "FEW",
    "MANY",
    "SERVICE_GRANT",
    "SERVICE_PATH",
    "SeededServer",
    "StarletteEndpoints",
    "rounds_for",
    "run_endpoint",
    "run_storage_endpoint",
    "seconds_for",
    "seeded_env",
]

FEW = 2
MANY = 50
USERS = 500  # users taking turns on the PostgreSQL and Redis rows
SERVICE_GRANT = "Connections/*/Users/*/Credentials:connections:credentials:read"
SERVICE_PATH = f"/auth/connections/{CONNECTION_ID}/users/{USER_ID}/credentials"


def seconds_for(quick: bool) -> int:
    """Seconds of load per target and round (every endpoint row)."""
    return 1 if quick else 2


def rounds_for(quick: bool) -> int:
    """Alternated rounds per endpoint row (the median of these is reported): many short
    rounds, so a burst of load from elsewhere on the machine moves one round, not the row."""
    return 2 if quick else 5


@dataclass(frozen=True)
class StarletteEndpoints:
    """(a) vs (b) at each number of connections; (c) vs (a) at :data:`MANY`."""

    endpoint: dict[int, EndpointResult]
    service: EndpointResult


@dataclass(frozen=True)
class SeededServer:
    """What a served vault app needs: its environment and a seeded session and key."""

    env: dict[str, str]
    cookie: str
    access_key: str
    body: bytes
    others: tuple[str, ...] = ()  # the cookie values of more users, each with a credential

    @property
    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={self.cookie}"}


async def _seed(env: dict[str, str], users: int) -> tuple[str, str, bytes, tuple[str, ...]]:
    """Seed the store: session, credential, a service client and its key; and ``users``
    more users, each with a session and a credential (their cookie values)."""
    settings = make_settings(
        env["BENCH_STORAGE_URL"], env["BENCH_SECRET_KEY"], env["BENCH_ENCRYPTION_KEY"]
    )
    vault = AsyncVault(settings)
    try:
        seeded = await seed(vault)
        # a name of its own: a second run may seed the same throwaway server
        name = f"bench-{secrets.token_hex(4)}"
        key = await seeded.service.create_client(name, [SERVICE_GRANT])
        creds = await vault.get_connection_credentials(CONNECTION_ID, USER_ID)
        await seeded.service.close()
        others = []
        now = time.time()
        for n in range(users):
            user = f"bench-user-{n}"
            await vault.put_tokens(CredentialKey(CONNECTION_ID, user), new_tokens(now))
            session_id = secrets.token_urlsafe(32)
            await vault.storage.create_session(hash_id(session_id), user, now + 3600)
            others.append(vault.cookies.session_cookie(session_id).value)
    finally:
        await vault.aclose()
    body = json.dumps(creds.to_dict()).encode()
    return seeded.cookie_value, key.value, body, tuple(others)


def seeded_env(storage_url: str, users: int = 0) -> SeededServer:
    """Fresh keys, the store at ``storage_url`` seeded (``users`` more users too), the
    served apps' environment."""
    env = subprocess_env(
        BENCH_STORAGE_URL=storage_url,
        BENCH_SECRET_KEY=new_secret_key(),
        BENCH_ENCRYPTION_KEY=new_encryption_key(),
    )
    cookie, access_key, body, others = asyncio.run(_seed(env, users))
    env["BENCH_PAYLOAD"] = body.decode()
    return SeededServer(env, cookie, access_key, body, others)


def run_endpoint(*, quick: bool, loadgen: str = "auto") -> StarletteEndpoints:
    """SQLite (the default storage): (a), (b), (c) alternated at 2, then at 50 connections."""
    seconds, rounds = seconds_for(quick), rounds_for(quick)
    load = Load.choose(loadgen, FEW)
    with tempfile.TemporaryDirectory(prefix="oauth-vault-bench-") as tmp_name:
        tmp = Path(tmp_name)
        seeded = seeded_env(f"sqlite:///{tmp / 'endpoint.db'}")
        cookie = seeded.cookie_header
        commands = {
            name: uvicorn_command(f"benchmarks._apps:{name}") for name in ("vault_app", "bare_app")
        }
        with serve(commands, seeded.env, tmp, CREDENTIALS_PATH, cookie) as servers:
            ours = Target("ours", servers["vault_app"], CREDENTIALS_PATH, cookie)
            bare = Target("bare", servers["bare_app"], CREDENTIALS_PATH, cookie)
            service = Target(
                "service",
                servers["vault_app"],
                SERVICE_PATH,
                {"Authorization": f"Bearer {seeded.access_key}"},
            )
            check_same([ours, bare], seeded.body)
            check_same([ours, service], seeded.body)
            by_conns = {
                conns: alternate(load.at(conns), [ours, bare, service], seconds, rounds)
                for conns in (FEW, MANY)
            }
    endpoint = {
        conns: EndpointResult(rps["ours"], rps["bare"], load.at(conns).describe(), seconds)
        for conns, rps in by_conns.items()
    }
    many = by_conns[MANY]
    service_result = EndpointResult(
        many["service"], many["ours"], load.at(MANY).describe(), seconds
    )
    return StarletteEndpoints(endpoint, service_result)


def run_storage_endpoint(
    url: str, *, quick: bool, loadgen: str = "auto", gc_freeze: bool = False
) -> EndpointResult:
    """(a) on the storage at ``url`` (a throwaway PostgreSQL or Redis) vs (b), at 50;
    ``gc_freeze``: both apps call ``gc.freeze()`` once started (``BENCH_GC_FREEZE``)."""
    seconds, rounds = seconds_for(quick), rounds_for(quick)
    load = Load.choose(loadgen, MANY)
    with tempfile.TemporaryDirectory(prefix="oauth-vault-bench-") as tmp_name:
        seeded = seeded_env(url, USERS)
        if gc_freeze:
            seeded.env["BENCH_GC_FREEZE"] = "1"
        cookie = seeded.cookie_header
        commands = {
            name: uvicorn_command(f"benchmarks._apps:{name}") for name in ("vault_app", "bare_app")
        }
        turns = tuple(f"{SESSION_COOKIE}={value}" for value in seeded.others)
        with serve(commands, seeded.env, Path(tmp_name), CREDENTIALS_PATH, cookie) as servers:
            ours = Target("ours", servers["vault_app"], CREDENTIALS_PATH, cookie)
            bare = Target("bare", servers["bare_app"], CREDENTIALS_PATH, cookie)
            check_same([ours, bare], seeded.body)
            ours = Target("ours", servers["vault_app"], CREDENTIALS_PATH, {}, turns)
            bare = Target("bare", servers["bare_app"], CREDENTIALS_PATH, {}, turns)
            rps = alternate(load, [ours, bare], seconds, rounds)
    return EndpointResult(rps["ours"], rps["bare"], load.describe(), seconds)
