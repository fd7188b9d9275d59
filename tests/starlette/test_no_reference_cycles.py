"""A request through the middleware leaves nothing for the garbage collector.

The middleware puts its request context in the scope; a context that pointed back at the
scope, or at the server's request object (through ``receive``), made one reference cycle per
request. Freed only by the cyclic collector, those cycles made its passes under load cost
more than the vault's own read (measured: ~8 us of GC per request under uvicorn at 50
connections, 0.4 us for a bare app). Here the server is played as uvicorn plays it: its
request object holds the scope, and ``receive`` is one of its bound methods. With the
collector off, everything the request made must be gone once the caller lets go of it.
"""

from __future__ import annotations

import contextlib
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.types import ASGIApp, Message

from tests.starlette.conftest import Harness

pytestmark = pytest.mark.integration


class Probe:
    """Something weakly referable to put in the scope."""


class ServerRequest:
    """What uvicorn's ``RequestResponseCycle`` is to a request: it holds the scope, and the
    app's ``receive`` and ``send`` are its bound methods."""

    def __init__(self, scope: dict[str, Any], body: bytes = b"") -> None:
        self.scope = scope
        self.body = body
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        body, self.body = self.body, b""
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(self, message: Message) -> None:
        self.sent.append(message)


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def http_scope(path: str, *, method: str = "GET", cookie: str | None = None) -> dict[str, Any]:
    headers = [(b"host", b"app.example.test")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    if method == "POST":
        headers.append((b"content-type", b"application/x-www-form-urlencoded"))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("app.example.test", 443),
        "probe": Probe(),
    }


async def assert_freed(app: ASGIApp, scope: dict[str, Any], body: bytes, expected: int) -> None:
    """Serve ``scope`` with the collector off; once let go of, its probe must be gone."""
    with collector_off():
        server = ServerRequest(scope, body)
        probe = weakref.ref(scope["probe"])
        await app(scope, server.receive, server.send)
        assert server.sent[0]["status"] == expected, server.sent
        assert server.body == b"", "the body was not read"
        del server, scope
        assert probe() is None, "the request's scope is held by a reference cycle"


def session_cookie(harness: Harness) -> str:
    jar = harness.client.cookies
    return "; ".join(f"{name}={jar[name]}" for name in jar)


async def test_a_host_app_request_reading_credentials_is_freed_without_the_collector(
    harness: Harness,
) -> None:
    await harness.login()
    await assert_freed(
        harness.app, http_scope("/profile/demo", cookie=session_cookie(harness)), b"", 200
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/auth/connections/demo/credentials", b"", 200),  # the library's own route
        ("GET", "/auth/no-such-route", b"", 404),
        ("POST", "/auth/logout", b"", 200),  # a route that reads a form body
        # token exchange reads its form body, then refuses the request without an access key
        ("POST", "/auth/token", b"grant_type=nonsense", 401),
    ],
)
async def test_a_library_route_request_is_freed_without_the_collector(
    harness: Harness, method: str, path: str, body: bytes, expected: int
) -> None:
    await harness.login()
    cookie = session_cookie(harness)
    await assert_freed(harness.app, http_scope(path, method=method, cookie=cookie), body, expected)
