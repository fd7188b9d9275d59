"""A cheaper idle-connection check for the async provider client's connection pools.

Before each request httpcore asks every pooled connection whether it has expired, which for
an idle one means "is the socket readable?" (a server that closed it). httpcore's anyio
streams answer through anyio's typed attributes, which build the stream's whole attribute map
on every call (``getpeername`` included) to find the raw socket: with 16 pooled connections
that was about a third of the CPU of a refresh sweep. The streams here find the raw socket
once per connection and answer with the same ``poll`` httpcore uses; everything else goes to
the inner stream unchanged.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._utils import is_socket_readable

__all__ = ["with_cheap_idle_checks", "wrap_pool_backends"]

_UNSET: Any = object()


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._sock: Any = _UNSET

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            if self._sock is _UNSET:
                self._sock = self._inner.get_extra_info("socket")
            return is_socket_readable(self._sock)
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def wrap_pool_backends(
    client: httpx.Client | httpx.AsyncClient,
    base: type[Any],
    wrapper: type[Any],
) -> None:
    """Wrap, in place, the network backend of each of ``client``'s connection pools (the
    direct one, and one per proxy httpx read from the environment) that is a ``base`` and not
    yet a ``wrapper``: the client keeps everything else httpx gives it (proxies, TLS
    settings, limits). A transport without an httpcore pool (a test's mock transport, an
    ASGI transport) is left alone. Tests fail if an httpx release moves these internals."""
    for transport in [client._transport, *client._mounts.values()]:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, base) and not isinstance(backend, wrapper):
            pool._network_backend = wrapper(backend)  # type: ignore[union-attr]


def with_cheap_idle_checks(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """``client`` with its connection pools' streams answering the idle check cheaply (as
    :func:`~oauth_vault_mw._deadline.with_deadlines` bounds the sync client's streams)."""
    wrap_pool_backends(client, httpcore.AsyncNetworkBackend, _Backend)
    return client
