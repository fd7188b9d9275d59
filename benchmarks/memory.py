"""Memory of a served app under many distinct sessions: resident set before and after.

10,000 (``--quick``: 1,000) credentials and 100,000 (``--quick``: 10,000) sessions, ten per
user, all valid for an hour, are sealed, signed and written straight into a temporary SQLite
store (one transaction each). ``benchmarks._apps:vault_app`` serves it under uvicorn[standard]
(as :mod:`benchmarks.endpoint`), and every session asks once for its user's credential
(``GET /auth/connections/demo/credentials`` with its own cookie), 50 keep-alive connections,
``wrk`` with a Lua script that hands each request the next cookie (else a Python client), in
two halves, each bounded in time (1.5x what the warm-up's rate predicts, at most 60 s). The
server's RSS (``/proc/<pid>/status`` VmRSS) is read after start-up, after a 2 s warm-up
cycling over 1,000 of the sessions ("before"), after each half ("after"), and polled for the
peak.

Reported: before, after, peak, growth (after - before); target: growth within
:data:`RSS_GROWTH_BOUND_MIB`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from oauth_vault_mw import AsyncVault, CredentialKey
from oauth_vault_mw.core.cookies import SESSION_COOKIE, hash_id
from oauth_vault_mw.core.records import seal_record
from oauth_vault_mw.storage.sql import SQLStorage, credentials, sessions

from ._common import (
    CONNECTION_ID,
    CREDENTIALS_PATH,
    make_settings,
    new_encryption_key,
    new_secret_key,
    new_tokens,
)
from ._http import HOST, Load, Server, rss_mib, serve, subprocess_env, uvicorn_command

__all__ = ["RSS_GROWTH_BOUND_MIB", "MemoryResult", "run_memory"]

# The resident-set growth a served app may show over 100,000 distinct sessions and 10,000
# credentials: docs/performance.md's bound (every per-process cache is bounded).
RSS_GROWTH_BOUND_MIB = 32.0
CONNECTIONS = 50
WARM_UP_SESSIONS = 1_000
WARM_UP_SECONDS = 2
SESSIONS_PER_USER = 10

LUA = """
local cookies = {}
local n = 0
local i = 0
local seen = 0
function init(args)
  stop_after_all = args[2] == "once"
  for line in io.lines(args[1]) do
    n = n + 1
    cookies[n] = wrk.format(nil, nil, {["Cookie"] = line})
  end
end
function request()
  i = i % n + 1
  return cookies[i]
end
function response(status, headers, body)
  seen = seen + 1
  if seen == n and stop_after_all then wrk.thread:stop() end
end
"""
# wrk runs for its whole -d even when its thread stopped early: each half gets the time its
# requests should take at the warm-up's rate (with a margin), within the limit. The warm-up
# reads 1,000 sessions again and again, the halves each session once (colder): with 1.5, two
# runs of ten served 99,052 and 99,735 of the 100,000 sessions before their time was up.
MARGIN = 2.5


@dataclass(frozen=True)
class MemoryResult:
    sessions: int
    credentials: int
    served: int  # distinct sessions served (fewer than ``sessions`` if a half ran out of time)
    seconds: float
    started_mib: float
    before_mib: float
    half_mib: float
    after_mib: float
    peak_mib: float
    loadgen: str

    @property
    def growth_mib(self) -> float:
        return self.after_mib - self.before_mib


def _seed(url: str, secret: str, enc: str, users: int, per_user: int) -> list[str]:
    """Credentials and sessions straight into the tables; the session cookies' values."""
    vault = AsyncVault(make_settings(url, secret, enc))  # for its sealer and cookie jar
    storage = SQLStorage(url)
    storage.setup()
    now = time.time()
    creds, rows, cookies = [], [], []
    for u in range(users):
        key = CredentialKey(CONNECTION_ID, f"mem-user-{u:05d}")
        record = seal_record(vault.sealer, key, new_tokens(now), now=now)
        creds.append(
            {
                "connection_id": key.connection_id,
                "user_id": key.user_id,
                "account": key.account,
                "version": 1,
                "status": record.status,
                "expires_at": record.expires_at,
                "scope": record.scope,
                "sealed": record.sealed,
                "updated_at": now,
            }
        )
    for s in range(users * per_user):
        session_id = f"mem-session-{s:06d}-" + new_secret_key()[:16]
        user = f"mem-user-{s % users:05d}"
        rows.append(
            {"session_hash": hash_id(session_id), "user_id": user, "expires_at": now + 3600}
        )
        cookies.append(f"{SESSION_COOKIE}={vault.cookies.session_cookie(session_id).value}")
    try:
        with storage.engine.begin() as conn:
            conn.execute(credentials.insert(), creds)
            conn.execute(sessions.insert(), rows)
    finally:
        storage.close()
    return cookies


class _Peak:
    """Polls a process's RSS in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(OSError, RuntimeError):
                self.peak = max(self.peak, rss_mib(self.pid))

    @contextlib.contextmanager
    def running(self) -> Iterator[_Peak]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def _wrk(
    wrk: str, server: Server, cookies: Sequence[str], tmp: Path, seconds: float, once: bool
) -> int:
    """Requests with the cookies in turn for ``seconds``; with ``once``, each cookie once
    (wrk's thread stops after as many answers). The number of answers."""
    cookie_file = tmp / "cookies.txt"
    cookie_file.write_text("\n".join(cookies) + "\n")
    script = tmp / "sessions.lua"
    script.write_text(LUA)
    cmd = [
        wrk,
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{math.ceil(seconds)}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://{HOST}:{server.port}{CREDENTIALS_PATH}",
        "--",
        str(cookie_file),
        "once" if once else "loop",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30)
    text = out.stdout
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if bad is not None and int(bad.group(1)) > 0:
        raise RuntimeError(f"wrk saw error responses:\n{text}")
    found = re.search(r"(\d+) requests in", text)
    if found is None:
        raise RuntimeError(f"cannot read wrk output:\n{text}\n{out.stderr}")
    answered = int(found.group(1))
    return min(answered, len(cookies)) if once else answered


async def _python(server: Server, cookies: Sequence[str], seconds: float, once: bool) -> int:
    """The Python fallback of :func:`_wrk` (:data:`CONNECTIONS` keep-alive clients)."""
    pending = iter(cookies) if once else itertools.cycle(cookies)
    deadline = time.monotonic() + seconds
    done = [0]

    async def client() -> None:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        try:
            for cookie in pending:
                if time.monotonic() > deadline:
                    return
                writer.write(
                    f"GET {CREDENTIALS_PATH} HTTP/1.1\r\nHost: {HOST}\r\n"
                    f"Cookie: {cookie}\r\n\r\n".encode()
                )
                status = await reader.readline()
                if b" 200 " not in status:
                    raise RuntimeError(f"unexpected response {status!r}")
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                done[0] += 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(CONNECTIONS)))
    return done[0]


def _load(
    load: Load, server: Server, cookies: Sequence[str], tmp: Path, seconds: float, once: bool
) -> int:
    if load.wrk is not None:
        return _wrk(load.wrk, server, cookies, tmp, seconds, once)
    return asyncio.run(_python(server, cookies, seconds, once))


def run_memory(*, quick: bool, loadgen: str = "auto") -> MemoryResult:
    users = 1_000 if quick else 10_000
    limit = 20.0 if quick else 60.0  # per half
    load = Load.choose(loadgen, CONNECTIONS)
    secret, enc = new_secret_key(), new_encryption_key()
    with tempfile.TemporaryDirectory(prefix="oauth-vault-bench-memory-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'memory.db'}"
        cookies = _seed(url, secret, enc, users, SESSIONS_PER_USER)
        env = subprocess_env(
            BENCH_STORAGE_URL=url, BENCH_SECRET_KEY=secret, BENCH_ENCRYPTION_KEY=enc
        )
        command = {"memory_app": uvicorn_command("benchmarks._apps:vault_app")}
        probe = {"Cookie": cookies[-1]}
        with serve(command, env, tmp, CREDENTIALS_PATH, probe) as servers:
            server = servers["memory_app"]
            pid = server.proc.pid
            started = rss_mib(pid)
            warm = _load(load, server, cookies[:WARM_UP_SESSIONS], tmp, WARM_UP_SECONDS, False)
            before = rss_mib(pid)
            half = len(cookies) // 2
            budget = min(limit, MARGIN * half / (warm / WARM_UP_SECONDS) + 1)
            with _Peak(pid).running() as peak:
                t0 = time.perf_counter()
                served = _load(load, server, cookies[:half], tmp, budget, True)
                half_mib = rss_mib(pid)
                served += _load(load, server, cookies[half:], tmp, budget, True)
                seconds = time.perf_counter() - t0
                after = rss_mib(pid)
            server.check_alive()
    return MemoryResult(
        len(cookies),
        users,
        served,
        seconds,
        started,
        before,
        half_mib,
        after,
        max(peak.peak, after),
        load.describe(),
    )
