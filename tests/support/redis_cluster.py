"""A throwaway Redis Cluster for the tests: three masters, no replicas, on loopback.

Fixtures (exposed to the whole suite through ``tests/support/suite.py``):

- ``redis_cluster`` (session): one :class:`RedisClusterServers`, started on first use:
  three ``redis-server --cluster-enabled yes`` processes on 127.0.0.1 and free ports, no
  persistence, joined with ``redis-cli --cluster create`` (16384 slots over three masters);
  stopped at the end of the session (those three processes, by pid, and nothing else);
- ``redis_cluster_url`` (session): its storage URL, ``redis+cluster://127.0.0.1:<port>/0``
  (one seed node; the client discovers the others);
- ``redis_cluster_store_url`` (function): the same URL after ``FLUSHALL`` on every master, for
  a test that needs an empty store (the storage contract tests).

Starting takes about a second: the cluster is a session fixture, and only the tests that
ask for it pay for it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from .ports import free_port

__all__ = [
    "RedisClusterServers",
    "redis_cluster",
    "redis_cluster_store_url",
    "redis_cluster_url",
]

MASTERS = 3
INSTALL_HINT = "{} not found: apt-get install redis-server (./scripts/test installs it)"


def _binary(name: str) -> str:
    """``redis-server`` or ``redis-cli`` (Debian's package has both)."""
    for candidate in (f"/usr/bin/{name}", shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(INSTALL_HINT.format(name), pytrace=False)


def _cluster_info(port: int) -> dict[str, str]:
    """``CLUSTER INFO`` of one node, as a mapping (empty when it does not answer)."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        raw = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
    except redis.RedisError:
        return {}
    finally:
        client.close()
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and line.strip())


class RedisClusterServers:
    """Three cluster-enabled ``redis-server`` processes joined into one cluster."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ports = [free_port() for _ in range(MASTERS)]
        # the cluster bus: its own free port (by default port + 10000, which may be taken)
        self.bus_ports = [free_port() for _ in range(MASTERS)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def log(self, port: int) -> Path:
        return self.directory / f"redis-{port}.log"

    def start(self, timeout: float = 30.0) -> None:
        """Start the nodes, join them, wait until every node says ``cluster_state:ok``."""
        if self.processes:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            for port, bus_port in zip(self.ports, self.bus_ports, strict=True):
                self._start_node(port, bus_port)
            self._wait(lambda port: _cluster_info(port) != {}, timeout, "answer")
            nodes = [f"127.0.0.1:{port}" for port in self.ports]
            create = subprocess.run(
                [_binary("redis-cli"), "--cluster", "create", *nodes, "--cluster-replicas", "0",
                 "--cluster-yes"],
                capture_output=True, text=True, timeout=timeout, check=False,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            if create.returncode != 0:
                pytest.fail(
                    f"redis-cli --cluster create failed: {create.stdout[-800:]}"
                    f"{create.stderr[-800:]}",
                    pytrace=False,
                )

            def ready(port: int) -> bool:
                info = _cluster_info(port)
                return (
                    info.get("cluster_state") == "ok"
                    and info.get("cluster_known_nodes") == str(MASTERS)
                    and info.get("cluster_slots_ok") == "16384"
                )

            self._wait(ready, timeout, "reach cluster_state:ok")
        except BaseException:
            self.stop()
            raise

    def _start_node(self, port: int, bus_port: int) -> None:
        config = self.directory / f"nodes-{port}.conf"
        config.unlink(missing_ok=True)
        args = [
            _binary("redis-server"), "--port", str(port), "--cluster-port", str(bus_port), "--bind",
            "127.0.0.1", "--save", "",
            "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file",
            str(config), "--cluster-node-timeout", "5000", "--dir", str(self.directory),
            "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
            "--logfile", str(self.log(port)),
        ]  # fmt: skip
        self.processes.append(subprocess.Popen(args, stdin=subprocess.DEVNULL))

    def _wait(self, check: Callable[[int], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process, port in zip(self.processes, self.ports, strict=True):
                if process.poll() is not None:
                    pytest.fail(f"redis-server exited, see {self.log(port)}", pytrace=False)
            if all(check(port) for port in self.ports):
                return
            time.sleep(0.05)
        pytest.fail(f"the Redis Cluster nodes did not {what} within {timeout} s", pytrace=False)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the processes this object started (by pid), and only those."""
        processes, self.processes = self.processes, []
        for process in processes:
            process.send_signal(signal.SIGCONT)
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def flush(self) -> None:
        """Empty every master (``FLUSHALL``)."""
        for port in self.ports:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
            try:
                client.flushall()
            finally:
                client.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisClusterServers) -> str:
    return redis_cluster.url


@pytest.fixture
def redis_cluster_store_url(redis_cluster: RedisClusterServers) -> str:
    redis_cluster.flush()
    return redis_cluster.url
