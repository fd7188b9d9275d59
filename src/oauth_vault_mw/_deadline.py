"""A wall-clock deadline on a whole provider call in the sync vault's threads.

httpx's timeouts bound each connect, each write and each read, not the call: a provider that
sends its reply a few bytes at a time never trips a read timeout. The async vault bounds the
call with ``asyncio.timeout``. A thread cannot be interrupted that way, so the sync client's
network streams clamp every socket operation to what is left of the calling thread's deadline
(:func:`call_deadline`): connect, TLS handshake, send, and each read of the reply's bytes.
Once the deadline has passed, the next operation fails at once with httpcore's timeout, which
httpx reports as a timeout and the vault as a failed provider call.
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from ._streams import wrap_pool_backends

__all__ = ["call_deadline", "check_deadline", "with_deadlines"]

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "oauth_vault_mw_deadline", default=None
)


@contextlib.contextmanager
def call_deadline(seconds: float) -> Iterator[None]:
    """Every network operation of this thread's provider call ends within ``seconds``."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check_deadline() -> None:
    """Raise :class:`TimeoutError` once the current call's deadline has passed (between the
    chunks of a reply, for transports that are not the network: tests' mock transports)."""
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError("provider call deadline")


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` clamped to the time left before the deadline; ``error`` once none is left."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("provider call deadline")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def with_deadlines(client: httpx.Client) -> httpx.Client:
    """``client`` with its connection pools' network streams bounded by :func:`call_deadline`
    (each pool's backend wrapped in place: :func:`~oauth_vault_mw._streams.wrap_pool_backends`).
    ``tests/starlette/test_resilience.py`` (and the two-process trickle test) fail if an
    httpx release moves these internals.
    """
    wrap_pool_backends(client, httpcore.NetworkBackend, _DeadlineBackend)
    return client
