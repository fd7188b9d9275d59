"""A web server run as its users run it: a subprocess on 127.0.0.1 and a free port.

Used by the start-up tests (a bad configuration must stop the server) and by
``scripts/install_check.py`` (each example must serve from a clean install)::

    with ServerProcess(["uvicorn", "app:app", "--port", str(port)], port=port, env=env) as server:
        outcome = server.wait(timeout=20)   # "serving" or "exited"

The process gets its own session (a Ctrl-C in the terminal goes to the test run, not to it)
and is stopped by its pid: SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

__all__ = ["ServerProcess", "clean_environ"]


def clean_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any ``OAUTH_VAULT_*`` or ``PYTHON*`` variable, plus
    ``extra``: a server sees only the configuration a test gives it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OAUTH_VAULT_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(extra)
    return env


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class ServerProcess:
    """One server process; its stdout and stderr go to one file, read by :attr:`output`."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str],
        cwd: str | Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.port = port
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    @property
    def output(self) -> str:
        """Everything the server wrote so far (stdout and stderr)."""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def wait(self, timeout: float) -> Literal["serving", "exited"]:
        """``"exited"`` once the process ended, ``"serving"`` once its port accepts a
        connection; neither within ``timeout`` seconds raises ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return "exited"
            if _port_open(self.port):
                return "serving"
            time.sleep(0.05)
        raise TimeoutError(
            f"{self.argv[0]} neither served on port {self.port} nor exited within {timeout} s"
        )

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status, or ``None`` if it still runs after ``timeout`` seconds (a
        gunicorn master listens before its worker boots, and exits when the worker fails)."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the pid (a gunicorn master stops its workers), SIGKILL after
        ``timeout``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._log.close()
