"""The async provider client's pooled connections: the cheap idle check (``_streams.py``)
still finds a connection the provider closed, so the next call opens a new one.

The provider here is a raw socket server on 127.0.0.1 that answers each connection's first
request with a keep-alive reply, then closes the connection a moment later (as a provider's
load balancer does with idle connections). Were the closed connection taken from the pool
again, the call would fail on it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpcore
import pytest

from oauth_vault_mw._async.provider import AsyncProviderClient
from oauth_vault_mw._streams import _Backend, _Stream
from oauth_vault_mw.core.config import Settings
from tests.support.suite import new_key

pytestmark = pytest.mark.integration

BODY = json.dumps({"ok": True}).encode()
REPLY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive\r\n"
    + f"content-length: {len(BODY)}\r\n\r\n".encode()
    + BODY
)


class ClosingServer:
    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(REPLY)
            await writer.drain()
            await asyncio.sleep(0.05)  # then let go of the idle connection
        finally:
            writer.close()

    async def __aenter__(self) -> ClosingServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[ClosingServer]:
    async with ClosingServer() as running:
        yield running


def provider_settings() -> Settings:
    return Settings.from_mapping(
        {
            "secret_key": "s" * 48,
            "encryption_keys": [new_key()],
            "base_url": "http://127.0.0.1:8000",
            "storage_url": "memory://",
            "connections": [
                {
                    "id": "demo",
                    "client_id": "app",
                    "client_secret": "secret",
                    "authorize_url": "http://127.0.0.1:9/authorize",
                    "token_url": "http://127.0.0.1:9/token",
                    "userinfo_url": "http://127.0.0.1:9/userinfo",
                }
            ],
        }
    )


async def test_a_connection_the_provider_closed_is_not_used_again(server: ClosingServer) -> None:
    provider = AsyncProviderClient(provider_settings())
    client = provider.client
    try:
        backend = client._transport._pool._network_backend  # type: ignore[attr-defined]
        assert isinstance(backend, _Backend)
        url = f"http://127.0.0.1:{server.port}/token"
        for call in range(3):
            resp = await client.post(url, data={"n": str(call)})
            assert resp.status_code == 200
            assert resp.json() == {"ok": True}
            await asyncio.sleep(0.3)  # the server has closed the idle connection by now
        assert server.connections == 3
    finally:
        await client.aclose()


async def test_the_idle_check_answers_as_httpcore_does(server: ClosingServer) -> None:
    """On a live idle connection: not readable; once the server closed it: readable; the
    raw socket is looked up once per connection."""
    backend = _Backend(httpcore.AnyIOBackend())
    stream = await backend.connect_tcp("127.0.0.1", server.port)
    assert isinstance(stream, _Stream)
    try:
        await stream.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        got = b""
        while not got.endswith(BODY):
            got += await stream.read(65536)
        assert stream.get_extra_info("is_readable") is False
        await asyncio.sleep(0.3)
        assert stream.get_extra_info("is_readable") is True
        assert stream.get_extra_info("socket") is stream._sock
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)
    finally:
        await stream.aclose()
