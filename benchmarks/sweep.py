"""The refresh sweep's rate: how fast ``oauth-vault credentials refresh`` renews credentials.

10,000 (``--quick``: 1,000) credentials expiring within the window are sealed and written
straight into a temporary SQLite store, with refresh tokens ``rt-<i>``, in :data:`ROUNDS`
connections of equal size. A local fake token
endpoint (``benchmarks.sweep:token_app``, Starlette under uvicorn in a subprocess on a free
127.0.0.1 port) answers every ``refresh_token`` grant with a fresh token response (a new
access token and a rotated refresh token). The sweep runs in this process, as the CLI runs
it (``AsyncVault`` with the audit trail attached + :func:`oauth_vault_mw.jobs.sweep`,
concurrency 16), for at most 60 s.

Reported: credentials refreshed per second and the projected time for 10,000 (target: under
60 s). The floor is the same endpoint driven by bare ``httpx`` POSTs at the same concurrency:
what the sweep would reach if the vault (storage reads, lease, sealing, writes) cost nothing.

Floor and sweep alternate, in :data:`ROUNDS` rounds: a floor round (as many POSTs as the round
has credentials), then the sweep of one connection (``--connection``, as the CLI takes it). A
burst elsewhere on a shared machine then moves one round, not the ratio, which is the median
of the rounds' ratios (a floor measured once before a 30 s sweep was measured in other
conditions than the sweep: on 2 shared cores it moved 300-550 req/s from minute to minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from oauth_vault_mw import AsyncVault, CredentialKey, Settings
from oauth_vault_mw._async.audit import AsyncAuditTrail
from oauth_vault_mw.core.model import TokenSet
from oauth_vault_mw.core.records import open_record, seal_record
from oauth_vault_mw.jobs import sweep
from oauth_vault_mw.storage.sql import SQLStorage, credentials

from ._common import new_encryption_key, new_secret_key
from ._http import HOST, free_port

__all__ = ["SWEEP_TARGET_SECONDS", "SweepResult", "run_sweep", "token_app"]

ROOT = Path(__file__).resolve().parent.parent
CONNECTION_ID = "bench"
ROUNDS = 5
CONCURRENCY = 16
WINDOW = 600.0
TIME_LIMIT = 60.0
PROJECTED_FOR = 10_000
SWEEP_TARGET_SECONDS = 60.0

# -- the fake token endpoint (runs in the uvicorn subprocess) ---------------------------------

_issued = itertools.count(1)


async def _token(request: Request) -> Response:
    form = parse_qs((await request.body()).decode())
    if form.get("grant_type") != ["refresh_token"] or not form.get("refresh_token"):
        return JSONResponse({"error": "invalid_grant"}, status_code=400)
    n = next(_issued)
    return JSONResponse(
        {
            "access_token": f"at-fresh-{n}",
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": f"rt-fresh-{n}",
            "scope": "openid",
        },
        headers={"Cache-Control": "no-store"},
    )


async def _ready(request: Request) -> Response:
    return PlainTextResponse("ok")


token_app = Starlette(routes=[Route("/token", _token, methods=["POST"]), Route("/ready", _ready)])


# -- the runner -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    credentials: int
    refreshed: int
    failed: int
    seconds: float
    floor_rps: float  # the median floor round
    concurrency: int
    ratios: tuple[float, ...] = ()  # each round's sweep rate / floor

    @property
    def rate(self) -> float:
        return self.refreshed / self.seconds if self.seconds > 0 else 0.0

    @property
    def projected(self) -> float:
        """Seconds to refresh 10,000 credentials at this rate."""
        return PROJECTED_FOR / self.rate if self.rate > 0 else float("inf")

    @property
    def ratio(self) -> float:
        """The median of the rounds' ratios (without rounds: rate / floor)."""
        if self.ratios:
            return statistics.median(self.ratios)
        return self.rate / self.floor_rps if self.floor_rps > 0 else 0.0


@contextlib.contextmanager
def _token_server(tmp: Path) -> Iterator[str]:
    """Serve :data:`token_app`; yield its base URL; stop that process (by its pid)."""
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [
        sys.executable, "-m", "uvicorn", "benchmarks.sweep:token_app", "--host", HOST,
        "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log",
        "--loop", "auto", "--http", "auto",
    ]  # fmt: skip
    with (tmp / "token_endpoint.log").open("w+b") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://{HOST}:{port}"
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"token endpoint exited: {log.read()[-2000:]!r}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("token endpoint did not start in 30 s")
                time.sleep(0.1)
            yield base
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _connection_id(round_: int) -> str:
    return f"{CONNECTION_ID}-{round_}"


def _settings(storage_url: str, base: str) -> Settings:
    return Settings.from_mapping(
        {
            "secret_key": new_secret_key(),
            "encryption_keys": new_encryption_key(),
            "base_url": "http://127.0.0.1:8000",
            "storage_url": storage_url,
            "connections": [
                {
                    "id": _connection_id(r),
                    "client_id": "bench-client",
                    "client_secret": "bench-secret",
                    "authorize_url": f"{base}/authorize",
                    "token_url": f"{base}/token",
                    "userinfo_url": f"{base}/userinfo",
                }
                for r in range(ROUNDS)
            ],
        }
    )


def _seed(settings: Settings, count: int) -> None:
    """Sealed records straight into the table, in one transaction; all expire in 5 minutes.
    Credential ``i`` belongs to connection ``i % ROUNDS``."""
    vault = AsyncVault(settings)  # only for its sealer
    storage = SQLStorage(settings.storage_url)
    storage.setup()
    now = time.time()
    rows = []
    for i in range(count):
        key = CredentialKey(_connection_id(i % ROUNDS), f"user-{i:06d}")
        tokens = TokenSet(f"at-{i}", f"rt-{i}", expires_at=now + 300, obtained_at=now - 3300,
                          scope="openid")  # fmt: skip
        record = seal_record(vault.sealer, key, tokens, now=now)
        rows.append(
            {
                "connection_id": key.connection_id, "user_id": key.user_id,
                "account": key.account, "version": 1, "status": record.status,
                "expires_at": record.expires_at, "scope": record.scope,
                "sealed": record.sealed, "updated_at": now,
            }
        )  # fmt: skip
    try:
        with storage.engine.begin() as conn:
            conn.execute(credentials.insert(), rows)
    finally:
        storage.close()


async def _floor(base: str, requests: int) -> float:
    """Bare POSTs to the fake endpoint, ``CONCURRENCY`` at a time: requests per second (after
    a warm-up of ``requests`` POSTs, 5 at a time)."""
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            resp = await client.post(
                f"{base}/token", data={"grant_type": "refresh_token", "refresh_token": f"f-{i}"}
            )
            resp.raise_for_status()

    async with httpx.AsyncClient(limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(5)))  # warm-up
        counter = iter(range(requests))
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        return requests / (time.perf_counter() - start)


async def _sweep(settings: Settings, connection_id: str) -> tuple[int, float]:
    """The CLI's sweep of one connection: (credentials refreshed, seconds)."""
    vault = AsyncVault(settings)
    audit = AsyncAuditTrail(vault.storage)
    vault.audit = audit  # as the CLI does: every refresh goes to the audit trail
    try:
        start = time.perf_counter()
        report = await sweep(
            vault, within=WINDOW, concurrency=CONCURRENCY, connection_id=connection_id,
            deadline=time.monotonic() + TIME_LIMIT / ROUNDS,
        )  # fmt: skip
        await audit.flush()  # the trail's last window, written before the CLI returns
        seconds = time.perf_counter() - start
        sample = await vault.storage.get_credential(CredentialKey(connection_id, "user-000000"))
        if sample is None:  # user-000000 is in round 0's connection; the others start later
            page = await vault.storage.scan_credentials(after=None, limit=ROUNDS)
            sample = next((r for r in page if r.key.connection_id == connection_id), None)
        if report.refreshed and sample is not None:
            rotated = open_record(vault.sealer, sample).refresh_token
            if rotated is None or not rotated.startswith("rt-fresh-"):
                raise RuntimeError("the sweep did not store the rotated refresh token")
    finally:
        await vault.aclose()
    if report.failed or report.reauthentication_required:
        raise RuntimeError(f"sweep: {report}")
    return report.refreshed, seconds


def run_sweep(*, quick: bool) -> SweepResult:
    count = 1_000 if quick else 10_000
    per_round = count // ROUNDS
    floors: list[float] = []
    ratios: list[float] = []
    refreshed = 0
    seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="oauth-vault-sweep-") as tmp_name:
        tmp = Path(tmp_name)
        with _token_server(tmp) as base:
            settings = _settings(f"sqlite:///{tmp / 'sweep.db'}", base)
            _seed(settings, per_round * ROUNDS)
            for round_ in range(ROUNDS):
                floor = asyncio.run(_floor(base, per_round))
                done, took = asyncio.run(_sweep(settings, _connection_id(round_)))
                floors.append(floor)
                ratios.append(done / took / floor)
                refreshed += done
                seconds += took
    return SweepResult(
        per_round * ROUNDS, refreshed, 0, seconds, statistics.median(floors), CONCURRENCY,
        tuple(ratios),
    )  # fmt: skip


if __name__ == "__main__":
    result = run_sweep(quick="--quick" in sys.argv)
    print(result, f"rate={result.rate:.0f}/s projected={result.projected:.1f}s")
    rounds = " ".join(f"{r:.2f}" for r in result.ratios)
    print(f"ratio (median of {ROUNDS} rounds) {result.ratio:.2f}x; per round: {rounds}")
