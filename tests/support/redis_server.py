"""A throwaway ``redis-server`` for the tests: a pytest plugin and a plain helper.

Fixtures (loaded for the whole suite through ``tests/conftest.py``):

- ``redis_server`` (session): one :class:`RedisServer` on 127.0.0.1 and a free port, no
  persistence, started on first use and stopped (that process only) at the end;
- ``redis_url`` (session): its URL, ``redis://127.0.0.1:<port>/0``;
- ``redis_store_url`` (function): the same URL after ``FLUSHDB``, for a test that needs an
  empty store (the storage contract tests).

:class:`RedisServer` also works alone, e.g. to stop and restart a private server mid-test
(the same port again, so clients reconnect to the same URL)::

    server = RedisServer(tmp_path)
    server.start()
    ...
    server.stop()   # "Redis is down"
    server.start()  # back, empty
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .ports import free_port

__all__ = ["RedisServer", "redis_server", "redis_store_url", "redis_url"]

INSTALL_HINT = "redis-server not found: apt-get install redis-server (./scripts/test installs it)"


def _binary() -> str:
    for candidate in ("/usr/bin/redis-server", shutil.which("redis-server")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(INSTALL_HINT, pytrace=False)


def _command(port: int, command: bytes, timeout: float = 0.5) -> bytes:
    """Send one inline command and read the reply's first line (no client library)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(command + b"\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(1024)
            if not chunk:
                break
            reply += chunk
        return reply.strip()


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1; ``start``/``stop`` any number of times."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.directory / f"redis-{self.port}.log"

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            _binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no",
            "--protected-mode", "yes", "--loglevel", "warning", "--logfile", str(self.log),
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                pytest.fail(f"redis-server exited at start, see {self.log}", pytrace=False)
            try:
                if _command(self.port, b"PING") == b"+PONG":
                    return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"redis-server did not answer PING within {timeout} s", pytrace=False)

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server could not act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it keeps its socket but never answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def flush(self) -> None:
        assert _command(self.port, b"FLUSHDB") == b"+OK"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def redis_store_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url
