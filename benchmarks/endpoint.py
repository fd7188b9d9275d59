"""Endpoint throughput under uvicorn: the vault's credential route against a bare Starlette app.

(a) ``benchmarks._apps:vault_app``: ``GET /auth/connections/demo/credentials`` with the session
cookie, on sqlite storage seeded here (user, session, valid credential);
(b) ``benchmarks._apps:bare_app``: the same path returning the same JSON from a constant.

Both servers run side by side with the same uvicorn settings (one worker, ``--log-level
warning``, no access log, ``--loop auto --http auto`` so uvloop/httptools when installed,
127.0.0.1, a free port). The load (``wrk`` when on PATH, else a Python keep-alive client; two
connections, one thread) alternates a/b/a/b so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import importlib.util
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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

__all__ = ["EndpointResult", "run_endpoint", "server_description"]

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 2
HOST = "127.0.0.1"


@dataclass(frozen=True)
class EndpointResult:
    ours_rps: list[float]
    bare_rps: list[float]
    loadgen: str
    seconds: int

    @property
    def ours(self) -> float:
        return statistics.median(self.ours_rps)

    @property
    def bare(self) -> float:
        return statistics.median(self.bare_rps)

    @property
    def ratio(self) -> float:
        return self.ours / self.bare


def server_description() -> str:
    import uvicorn

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn {uvicorn.__version__} (loop={loop}, http={http}, 1 worker)"


# -- seeding ----------------------------------------------------------------------------------


async def _seed(env: dict[str, str]) -> tuple[str, bytes]:
    """Seed the sqlite file; return the session cookie value and the expected response body."""
    settings = make_settings(
        env["BENCH_STORAGE_URL"], env["BENCH_SECRET_KEY"], env["BENCH_ENCRYPTION_KEY"]
    )
    vault = AsyncVault(settings)
    try:
        seeded = await seed(vault)
        creds = await vault.get_connection_credentials(CONNECTION_ID, USER_ID)
    finally:
        await vault.aclose()
    return seeded.cookie_value, json.dumps(creds.to_dict()).encode()


# -- servers ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]


def _start(name: str, env: dict[str, str], log: IO[bytes]) -> _Server:
    port = _free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", f"benchmarks._apps:{name}",
        "--host", HOST, "--port", str(port), "--workers", "1",
        "--log-level", "warning", "--no-access-log", "--loop", "auto", "--http", "auto",
        "--lifespan", "on",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return _Server(name, port, proc, log)


def _stop(server: _Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


def _get(port: int, cookie: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", CREDENTIALS_PATH, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _wait_ready(server: _Server, cookie: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited ({server.proc.returncode}):\n"
                               f"{server.output()}")  # fmt: skip
        with contextlib.suppress(OSError):
            _get(server.port, cookie)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not answer in {timeout:.0f} s:\n"
                               f"{server.output()}")  # fmt: skip
        time.sleep(0.1)


def _check_same(ours: _Server, bare: _Server, cookie: str, expected: bytes) -> None:
    """Both answer 200 with the seeded credential and the same caching headers."""
    results = {s.name: _get(s.port, cookie) for s in (ours, bare)}
    for name, (status, _, body) in results.items():
        if status != 200 or json.loads(body) != json.loads(expected):
            raise RuntimeError(f"{name} answered {status} {body[:300]!r}")
    wanted = ("content-type", "cache-control", "pragma")
    seen = {name: [h.get(k) for k in wanted] for name, (_, h, _) in results.items()}
    if seen[ours.name] != seen[bare.name]:
        raise RuntimeError(f"headers differ: {seen}")


@contextlib.contextmanager
def _servers(env: dict[str, str], cookie: str, tmp: Path) -> Iterator[tuple[_Server, _Server]]:
    started: list[_Server] = []
    try:
        for name in ("vault_app", "bare_app"):
            log = (tmp / f"{name}.log").open("w+b")
            started.append(_start(name, env, log))
        for server in started:
            _wait_ready(server, cookie)
        yield started[0], started[1]
    finally:
        for server in started:
            _stop(server)
            server.log.close()


# -- load -------------------------------------------------------------------------------------


def _wrk(wrk: str, port: int, cookie: str, seconds: int) -> float:
    cmd = [
        wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s",
        "-H", f"Cookie: {SESSION_COOKIE}={cookie}", f"http://{HOST}:{port}{CREDENTIALS_PATH}",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30)
    text = out.stdout
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if bad is not None and int(bad.group(1)) > 0:
        raise RuntimeError(f"wrk saw error responses:\n{text}")
    found = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if found is None:
        raise RuntimeError(f"cannot read wrk output:\n{text}\n{out.stderr}")
    return float(found.group(1))


async def _client(port: int, request: bytes, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            status_line = await reader.readline()
            parts = status_line.split()
            if len(parts) < 2 or parts[1] != b"200":
                raise RuntimeError(f"unexpected response {status_line!r}")
            length = -1
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length < 0:
                raise RuntimeError("response without content-length")
            await reader.readexactly(length)
            counts[0] += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _python_load(port: int, cookie: str, seconds: int) -> float:
    request = (
        f"GET {CREDENTIALS_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Cookie: {SESSION_COOKIE}={cookie}\r\nUser-Agent: oauth-vault-bench\r\n\r\n"
    ).encode("latin-1")
    counts = [0]
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_client(port, request, deadline, counts) for _ in range(CONNECTIONS)))
    return counts[0] / (time.perf_counter() - start)


def _load(wrk: str | None, port: int, cookie: str, seconds: int) -> float:
    if wrk is not None:
        return _wrk(wrk, port, cookie, seconds)
    return asyncio.run(_python_load(port, cookie, seconds))


# -- the benchmark ----------------------------------------------------------------------------


def run_endpoint(*, quick: bool, loadgen: str = "auto") -> EndpointResult:
    seconds = 1 if quick else 5
    rounds = 2
    wrk = shutil.which("wrk") if loadgen in ("auto", "wrk") else None
    if loadgen == "wrk" and wrk is None:
        raise RuntimeError("--loadgen wrk: wrk is not on PATH (Debian: apt-get install wrk)")
    described = (
        f"wrk -t1 -c{CONNECTIONS}" if wrk else f"python asyncio keep-alive, {CONNECTIONS} conns"
    )
    with tempfile.TemporaryDirectory(prefix="oauth-vault-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env = dict(os.environ)
        env.update(
            BENCH_STORAGE_URL=f"sqlite:///{tmp / 'endpoint.db'}",
            BENCH_SECRET_KEY=new_secret_key(),
            BENCH_ENCRYPTION_KEY=new_encryption_key(),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        )
        cookie, expected = asyncio.run(_seed(env))
        env["BENCH_PAYLOAD"] = expected.decode()
        with _servers(env, cookie, tmp) as (ours, bare):
            _check_same(ours, bare, cookie, expected)
            for server in (ours, bare):  # warm-up: imports, pools, statement caches
                _load(wrk, server.port, cookie, 1)
            ours_rps: list[float] = []
            bare_rps: list[float] = []
            for _ in range(rounds):
                ours_rps.append(_load(wrk, ours.port, cookie, seconds))
                bare_rps.append(_load(wrk, bare.port, cookie, seconds))
            for server in (ours, bare):
                if server.proc.poll() is not None:
                    raise RuntimeError(f"{server.name} died:\n{server.output()}")
    return EndpointResult(ours_rps, bare_rps, described, seconds)
