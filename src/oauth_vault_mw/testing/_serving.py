"""Ways to reach a testing provider: an httpx transport (in-process, no socket), an ASGI app
(Starlette, for uvicorn or ``httpx.ASGITransport``), and a threaded loopback HTTP server
from the standard library (for apps that reach the provider with their own HTTP client or are
configured from the environment only). All of them call ``ProviderEndpoints.handle``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import httpx

from ._http import Reply

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from ._endpoints import ProviderEndpoints

__all__ = ["ProviderTransport", "asgi_app", "serve_in_thread"]


def _response(reply: Reply, request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        reply.status, headers=list(reply.headers), content=reply.body, request=request
    )


class ProviderTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport, sync and async, that hands every request to the provider in
    process, whatever its host: give it to the vault as ``http_transport``."""

    def __init__(self, provider: ProviderEndpoints) -> None:
        self._provider = provider

    def __repr__(self) -> str:
        return "ProviderTransport()"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        reply = self._provider.handle(request.method, str(request.url), request.headers, body)
        return _response(reply, request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        reply = self._provider.handle(request.method, str(request.url), request.headers, body)
        return _response(reply, request)


def asgi_app(provider: ProviderEndpoints) -> Starlette:
    """A Starlette app that serves ``provider`` on every path."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        reply = provider.handle(request.method, str(request.url), request.headers, body)
        return Response(reply.body, reply.status, headers=dict(reply.headers))

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], provider: ProviderEndpoints) -> None:
        super().__init__(address, _Handler)
        self.provider = provider
        self.base = f"http://{address[0]}:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = dict(self.headers.items())
        url = self.server.base + self.path
        reply = self.server.provider.handle(self.command, url, headers, body)
        self.send_response(reply.status)
        for key, value in reply.headers:
            self.send_header(key, value)
        self.send_header("content-length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest shows nothing of a passing test's provider traffic."""


@contextlib.contextmanager
def serve_in_thread(provider: ProviderEndpoints, host: str, port: int) -> Iterator[str]:
    """Serve ``provider`` on ``host:port`` (``0``: a free port) in a daemon thread; yields
    the base URL (``http://127.0.0.1:PORT``); stops the server and its thread on exit."""
    server = _Server((host, port), provider)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.02},
        name=f"oauth-vault-test-provider-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    try:
        yield server.base
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
