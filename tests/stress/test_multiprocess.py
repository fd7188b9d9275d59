"""Stress: several app worker processes on one shared store, one refresh per expiry.

Four uvicorn workers serve the example app on one store (SQLite, PostgreSQL, PostgreSQL
behind PgBouncer in transaction pooling mode, Redis, a three-master Redis Cluster) against
the development provider with refresh-token rotation (reuse detection on: a reused refresh
token fails with ``invalid_grant`` and revokes the grant) and 5-second access tokens. 200
users read their credentials concurrently for ``STRESS_SECONDS`` (default 120).

Exactly one refresh per user per expiry is shown by counting: every refresh at the provider
yields a token that some reader was served (distinct tokens seen - users == refresh grants),
and no refresh token was ever used twice (0 ``invalid_grant``), and no caller got an error.

Not part of ``./scripts/test`` (long); run with ``./scripts/stress``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.oidc_provider import DevProvider, callback_path, complete_login_async
from tests.support.ports import free_port
from tests.support.suite import new_key

pytestmark = pytest.mark.stress

USERS = int(os.environ.get("STRESS_USERS", "200"))
SECONDS = float(os.environ.get("STRESS_SECONDS", "120"))
WORKERS = int(os.environ.get("STRESS_WORKERS", "4"))
CONCURRENCY = 64
TTL = 5


SERVERS = {  # the fixture giving each store's URL
    "postgresql": "postgres_url",
    "pgbouncer": "pgbouncer_url",
    "redis": "redis_url",
    "redis-cluster": "redis_cluster_url",
}


@pytest.fixture(params=["sqlite", *SERVERS])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'stress.db'}"
    return str(request.getfixturevalue(SERVERS[request.param]))


@pytest.fixture
def served(store_url: str) -> Iterator[tuple[str, DevProvider]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client = {"client_id": "demo", "client_secret": "demo-secret",
              "redirect_uris": [f"{base}/auth/callback/demo"]}  # fmt: skip
    with DevProvider(clients=[client], access_token_ttl=TTL) as op:
        env = {
            **os.environ,
            "OAUTH_VAULT_SECRET_KEY": "x" * 48,
            "OAUTH_VAULT_ENCRYPTION_KEYS": new_key(),
            "OAUTH_VAULT_BASE_URL": base,
            "OAUTH_VAULT_STORAGE_URL": store_url,
            "OAUTH_VAULT_CONNECTIONS": json.dumps(
                [
                    {
                        "id": "demo",
                        "issuer": op.issuer,
                        "client_id": "demo",
                        "client_secret": "demo-secret",
                        "scopes": ["openid", "profile", "email", "offline_access"],
                    }
                ]
            ),
        }
        # Create the schema once, as an operator would, before the workers start.
        subprocess.run([sys.executable, "-m", "oauth_vault_mw", "db", "init"], env=env,
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.starlette_app.app:app", "--host",
             "127.0.0.1", "--port", str(port), "--workers", str(WORKERS), "--log-level",
             "warning", "--no-access-log"],
            env=env, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the app did not start")
                time.sleep(0.2)
            yield base, op
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)


async def _login(base: str, user: str, limits: asyncio.Semaphore) -> dict[str, str]:
    async with (
        limits,
        httpx.AsyncClient(base_url=base, timeout=30) as app,
        httpx.AsyncClient(timeout=30) as browser,
    ):
        start = await app.get("/auth/login/demo")
        final = await complete_login_async(browser, start.headers["location"], user)
        done = await app.get(callback_path(final, base))
        assert done.status_code == 303, done.text
        first = await app.get("/auth/connections/demo/credentials")  # the login's token
        return {**dict(app.cookies), "first": first.json()["access_token"]}


async def _load(base: str, cookies: list[dict[str, str]]) -> tuple[Counter[int], list[set[str]]]:
    statuses: Counter[int] = Counter()
    seen: list[set[str]] = [set() for _ in cookies]
    stop = time.monotonic() + SECONDS
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def loop(worker: int) -> None:
            rng = random.Random(worker)
            while time.monotonic() < stop:
                i = rng.randrange(len(cookies))
                session = cookies[i]["oauth_vault_session"]
                answer = await client.get(
                    "/auth/connections/demo/credentials",
                    headers={"Cookie": f"oauth_vault_session={session}"},
                )
                statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    seen[i].add(answer.json()["access_token"])

        await asyncio.gather(*(loop(w) for w in range(CONCURRENCY)))
    return statuses, seen


def test_one_refresh_per_expiry_across_workers(served: tuple[str, DevProvider]) -> None:
    base, op = served

    async def run() -> tuple[Counter[int], list[set[str]]]:
        limits = asyncio.Semaphore(16)
        run_id = os.urandom(3).hex()
        cookies = await asyncio.gather(
            *(_login(base, f"stress-{run_id}-{i}", limits) for i in range(USERS))
        )
        op.reset()
        statuses, seen = await _load(base, list(cookies))
        for i, c in enumerate(cookies):
            seen[i].add(c["first"])
        return statuses, seen

    statuses, seen = asyncio.run(run())
    stats = op.stats()
    refreshes = stats["refresh_grants"]
    tokens_seen = sum(len(s) for s in seen)
    per_user = defaultdict(int, {i: len(s) - 1 for i, s in enumerate(seen)})
    low, high = min(per_user.values()), max(per_user.values())
    print(
        f"\nrequests {sum(statuses.values())} {dict(statuses)}; refresh grants {refreshes}; "
        f"tokens seen {tokens_seen}; refresh errors {stats['refresh_errors']}; "
        f"refreshes per user min {low} max {high}"
    )
    assert set(statuses) == {200}, statuses  # 0 errors returned to callers
    assert stats["refresh_errors"] == {}  # 0 invalid_grant: no refresh token used twice
    # Every refresh served a token that readers saw; every token seen came from a refresh
    # (or the login): one refresh per user per expiry, none wasted, none duplicated.
    assert tokens_seen - USERS == refreshes
    assert refreshes >= USERS * (SECONDS // TTL) // 2  # they did expire and refresh
