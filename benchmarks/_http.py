"""What the throughput benchmarks share: servers as subprocesses on free loopback ports, the
same-response check, and the load (``wrk`` when on PATH, else a Python keep-alive client),
alternated between targets round after round so drift on a shared machine hits all alike.

A :class:`Target` is one URL on one server with its request headers (a session cookie or an
``Authorization`` header); two targets may share a server (the user and the service route).
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import IO

__all__ = [
    "GUNICORN_THREADS",
    "HOST",
    "PYTHON_LOADGEN_NOTE",
    "ROOT",
    "WAITRESS_THREADS",
    "EndpointResult",
    "Load",
    "Server",
    "Target",
    "alternate",
    "check_same",
    "free_port",
    "get",
    "gunicorn_command",
    "gunicorn_description",
    "rss_mib",
    "serve",
    "subprocess_env",
    "uvicorn_command",
    "uvicorn_description",
    "waitress_command",
    "waitress_description",
    "wrk_version",
]

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
WAITRESS_THREADS = 8
GUNICORN_THREADS = 8


@dataclass(frozen=True)
class EndpointResult:
    """Requests per second of two targets over the same alternated rounds."""

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

    def rounds(self) -> str:
        return ", ".join(f"{o:.0f}/{b:.0f}" for o, b in zip(self.ours_rps, self.bare_rps,
                                                             strict=True))  # fmt: skip


# -- servers ----------------------------------------------------------------------------------


def subprocess_env(**extra: str) -> dict[str, str]:
    """This environment, with the repository root importable (``benchmarks._apps``)."""
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


Command = Callable[[int], list[str]]


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _uvicorn_stack() -> tuple[str, str]:
    """What users deploy (``uvicorn[standard]``): uvloop and httptools when installed."""
    return ("uvloop" if _installed("uvloop") else "asyncio",
            "httptools" if _installed("httptools") else "h11")  # fmt: skip


def uvicorn_command(app: str) -> Command:
    """One uvicorn worker with uvloop and httptools named explicitly (asyncio/h11 only when
    they are missing, which :func:`uvicorn_description` then says loudly)."""
    loop, http = _uvicorn_stack()

    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port),
            "--workers", "1", "--log-level", "warning", "--no-access-log", "--loop", loop,
            "--http", http, "--lifespan", "on",
        ]  # fmt: skip

    return command


def uvicorn_description() -> str:
    loop, http = _uvicorn_stack()
    parts = [f"loop={loop}" + (f" {version(loop)}" if loop == "uvloop" else ""),
             f"http={http}" + (f" {version(http)}" if http == "httptools" else "")]  # fmt: skip
    text = f"uvicorn {version('uvicorn')} ({', '.join(parts)}, 1 worker)"
    if (loop, http) != ("uvloop", "httptools"):
        text += " -- NOT what users deploy: pip install 'uvicorn[standard]'"
    return text


def gunicorn_command(app: str) -> Command:
    """One gunicorn gthread worker with :data:`GUNICORN_THREADS` threads (its master too)."""

    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "gunicorn", "--bind", f"{HOST}:{port}", "--workers", "1",
            "--worker-class", "gthread", "--threads", str(GUNICORN_THREADS),
            "--log-level", "warning", app,
        ]  # fmt: skip

    return command


def gunicorn_description() -> str:
    return f"gunicorn {version('gunicorn')} (gthread, 1 worker, {GUNICORN_THREADS} threads)"


def waitress_command(app: str) -> Command:
    """One waitress process with :data:`WAITRESS_THREADS` threads."""

    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "waitress", f"--host={HOST}", f"--port={port}",
            f"--threads={WAITRESS_THREADS}", app,
        ]  # fmt: skip

    return command


def waitress_description() -> str:
    return f"waitress {version('waitress')} ({WAITRESS_THREADS} threads, 1 process)"


def rss_mib(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wrk_version(wrk: str) -> str:
    """``wrk 4.1.0`` (its first line of ``wrk -v``)."""
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    found = re.search(r"wrk\s+(\S+)", out.stdout + out.stderr)
    return f"wrk {found.group(1)}" if found else "wrk"


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} died ({self.proc.returncode}):\n{self.output()}")


def _stop(server: Server) -> None:
    """Stop that one process (by its pid)."""
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@dataclass(frozen=True)
class Target:
    """``GET path`` on ``server`` with ``headers``; with ``cookies``, each request carries
    the next of them as its ``Cookie`` header, in turn (many users at once)."""

    name: str
    server: Server
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: tuple[str, ...] = ()


def get(target: Target) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, target.server.port, timeout=5)
    try:
        conn.request("GET", target.path, headers=dict(target.headers))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _wait_ready(target: Target, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        target.server.check_alive()
        with contextlib.suppress(OSError):
            get(target)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target.server.name} did not answer in {timeout:.0f} s:\n"
                               f"{target.server.output()}")  # fmt: skip
        time.sleep(0.1)


@contextlib.contextmanager
def serve(
    commands: Mapping[str, Command],
    env: Mapping[str, str],
    logs: Path,
    path: str,
    headers: Mapping[str, str],
) -> Iterator[dict[str, Server]]:
    """Start one subprocess per command on a free port; wait until each answers a ``GET
    path`` with ``headers``; stop them (by pid) on the way out, whatever happens."""
    started: dict[str, Server] = {}
    try:
        for name, command in commands.items():
            port = free_port()
            log = (logs / f"{name}.log").open("w+b")
            proc = subprocess.Popen(
                command(port), cwd=ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT
            )
            started[name] = Server(name, port, proc, log)
        for server in started.values():
            _wait_ready(Target("probe", server, path, headers))
        yield started
    finally:
        for server in started.values():
            _stop(server)
            server.log.close()


def check_same(targets: Sequence[Target], expected: bytes, same_headers: bool = True) -> None:
    """Each target answers 200 with ``expected`` (as JSON) and, if asked, the same caching
    headers as the first."""
    wanted = ("content-type", "cache-control", "pragma")
    seen: dict[str, list[str | None]] = {}
    for target in targets:
        status, headers, body = get(target)
        if status != 200 or json.loads(body) != json.loads(expected):
            raise RuntimeError(f"{target.name} answered {status} {body[:300]!r}")
        seen[target.name] = [headers.get(k) for k in wanted]
    if same_headers and len({tuple(v) for v in seen.values()}) > 1:
        raise RuntimeError(f"headers differ: {seen}")


# -- load -------------------------------------------------------------------------------------


PYTHON_LOADGEN_NOTE = (
    "NOTE: wrk is not on PATH: the endpoint rows use the Python load generator, which "
    "saturates before a fast server does (ratios read closer to 1 than they are); "
    "./scripts/bench installs wrk when run as root (Debian: apt-get install wrk)"
)


@dataclass(frozen=True)
class Load:
    """How load is generated: ``wrk`` (a path) or the Python client; ``connections`` kept
    alive, one thread."""

    wrk: str | None
    connections: int

    @classmethod
    def choose(cls, loadgen: str, connections: int) -> Load:
        wrk = shutil.which("wrk") if loadgen in ("auto", "wrk") else None
        if loadgen == "wrk" and wrk is None:
            raise RuntimeError("--loadgen wrk: wrk is not on PATH (Debian: apt-get install wrk)")
        return cls(wrk, connections)

    def at(self, connections: int) -> Load:
        """The same generator with another number of connections."""
        return Load(self.wrk, connections)

    def describe(self) -> str:
        if self.wrk:
            return f"{wrk_version(self.wrk)} -t1 -c{self.connections}"
        return f"python asyncio keep-alive, {self.connections} conns (NOT wrk, see the note)"

    def run(self, target: Target, seconds: int) -> float:
        """Requests per second on ``target`` over ``seconds``; any non-200 fails the run."""
        if self.wrk is not None:
            return self._wrk(self.wrk, target, seconds)
        return asyncio.run(self._python(target, seconds))

    def _wrk(self, wrk: str, target: Target, seconds: int) -> float:
        cmd = [wrk, "-t1", f"-c{self.connections}", f"-d{seconds}s", "--timeout", "5s"]
        for name, value in target.headers.items():
            cmd += ["-H", f"{name}: {value}"]
        cmd.append(f"http://{HOST}:{target.server.port}{target.path}")
        with tempfile.TemporaryDirectory(prefix="oauth-vault-wrk-") as tmp:
            if target.cookies:
                script = Path(tmp) / "cookies.lua"
                script.write_text(_rotating_cookies(target.cookies))
                cmd[1:1] = ["-s", str(script)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                 timeout=seconds + 30)  # fmt: skip
        text = out.stdout
        bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
        if bad is not None and int(bad.group(1)) > 0:
            raise RuntimeError(f"wrk saw error responses on {target.name}:\n{text}")
        found = re.search(r"Requests/sec:\s*([\d.]+)", text)
        if found is None:
            raise RuntimeError(f"cannot read wrk output:\n{text}\n{out.stderr}")
        return float(found.group(1))

    async def _python(self, target: Target, seconds: int) -> float:
        lines = [f"GET {target.path} HTTP/1.1", f"Host: {HOST}:{target.server.port}",
                 "User-Agent: oauth-vault-bench"]  # fmt: skip
        lines += [f"{name}: {value}" for name, value in target.headers.items()]

        def request(n: int) -> bytes:  # the Python client: one user per connection
            cookie = [f"Cookie: {target.cookies[n % len(target.cookies)]}"]
            head = lines + cookie if target.cookies else lines
            return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")

        counts = [0]
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(
            *(_client(target.server.port, request(n), deadline, counts)
              for n in range(self.connections))
        )  # fmt: skip
        return counts[0] / (time.perf_counter() - start)


def _rotating_cookies(cookies: Sequence[str]) -> str:
    """A wrk script sending each request with the next of ``cookies``."""
    listed = ",\n".join(json.dumps(c) for c in cookies)  # JSON strings are Lua strings here
    return (
        f"local cookies = {{\n{listed}\n}}\nlocal n = 0\n"
        "request = function()\n"
        "  n = n % #cookies + 1\n"
        '  return wrk.format(nil, nil, {["Cookie"] = cookies[n]})\n'
        "end\n"
    )


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


def alternate(
    load: Load, targets: Sequence[Target], seconds: int, rounds: int
) -> dict[str, list[float]]:
    """A 1 s warm-up on each target, then ``rounds`` rounds of ``seconds`` on each in turn
    (a/b/a/b...); requests per second per target and round."""
    for target in targets:  # warm-up: imports, pools, statement caches
        load.run(target, 1)
    rps: dict[str, list[float]] = {t.name: [] for t in targets}
    for _ in range(rounds):
        for target in targets:
            rps[target.name].append(load.run(target, seconds))
    for target in targets:
        target.server.check_alive()
    return rps
