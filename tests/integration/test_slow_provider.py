"""A provider that trickles its reply cannot hold a refresh past the lease; one that sends a
huge reply is cut off at the size cap.

httpx's timeouts bound each read, not the call: a token endpoint that sends a few bytes every
0.6 s never trips a 1-second read timeout. Every provider call has a wall-clock deadline
(``provider_timeout``: connect, send and the whole body) that ends inside the lease.

Two app processes (real ones: two Python interpreters on one SQLite file) read one credential
at once; their token endpoint answers a refresh with a 200 whose body arrives one chunk every
0.6 s for 15 s. The endpoint records when each refresh token was in flight (request received
until the client hung up), so the test can say: no refresh token was ever in flight twice at
once, and every reader got the still-valid token (or a 503) long before the trickle ended.

The provider client reads a reply as a stream and stops at ``MAX_REPLY`` bytes: a 30 MiB reply
is refused after the first half MiB or so, not read whole and then refused.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from oauth_vault_mw import CredentialKey, Settings, Vault
from oauth_vault_mw._async.provider import AsyncProviderClient
from oauth_vault_mw._sync.provider import ProviderClient
from oauth_vault_mw.core.http import MAX_REPLY, HttpRequest, ProviderCallFailed
from oauth_vault_mw.core.model import TokenSet
from oauth_vault_mw.core.refresh import retry_budget
from tests.support.suite import new_key

pytestmark = pytest.mark.integration

PROVIDER_TIMEOUT = 1.0
LEASE_TTL = 2.5
TRICKLE_PAUSE = 0.6
TRICKLE_CHUNKS = 25  # 15 s of reply
CALLERS = 2  # per process


class TrickleTokenEndpoint:
    """An HTTP/1.1 token endpoint on loopback that answers every request slowly and records
    each refresh token's time in flight."""

    def __init__(self, *, huge: bool = False) -> None:
        self.huge = huge  # answer 30 MiB instead, in 64 KiB chunks, without a length
        self.bytes_sent = 0
        self.in_flight: list[tuple[str, float, float]] = []  # (refresh token, start, end)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def __enter__(self) -> TrickleTokenEndpoint:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        start = time.monotonic()
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        form = parse_qs((await reader.readexactly(length)).decode())
        if self.huge:
            await self._huge(writer)
            return
        refresh_token = form.get("refresh_token", ["?"])[0]
        body = json.dumps(
            {
                "access_token": "new-access-" + "x" * 100,
                "refresh_token": "rotated",
                "token_type": "Bearer",
                "expires_in": 3600,
            }
        ).encode()
        size = -(-len(body) // TRICKLE_CHUNKS)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        try:
            for i in range(0, len(body), size):
                writer.write(body[i : i + size])
                await writer.drain()
                try:  # wait for the next chunk, or notice at once that the client hung up
                    if await asyncio.wait_for(reader.read(1), TRICKLE_PAUSE) == b"":
                        break
                except TimeoutError:
                    pass
        except ConnectionError:
            pass
        finally:
            self.in_flight.append((refresh_token, start, time.monotonic()))
            writer.close()

    async def _huge(self, writer: asyncio.StreamWriter) -> None:
        chunk = b"x" * 65536
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        )
        try:
            for _ in range(30 * 16):
                writer.write(chunk)
                await writer.drain()
                self.bytes_sent += len(chunk)
        except ConnectionError:
            pass
        finally:
            writer.close()


CHILD = r"""
import asyncio, json, sys, threading, time
from oauth_vault_mw import AsyncVault, Settings, Vault
from oauth_vault_mw.core.errors import VaultError

settings = Settings.from_mapping(json.loads(sys.argv[1]))
mode, start_at, callers = sys.argv[2], float(sys.argv[3]), int(sys.argv[4])

def outcome(began, token=None, exc=None):
    if exc is not None:
        return {"error": exc.error, "status": exc.status, "seconds": time.time() - began}
    return {"token": token, "seconds": time.time() - began}

async def main_async():
    vault = AsyncVault(settings)
    await vault.startup()
    time.sleep(max(0.0, start_at - time.time()))
    began = time.time()
    async def one():
        try:
            creds = await vault.get_connection_credentials("slow", "u1")
        except VaultError as exc:
            return outcome(began, exc=exc)
        return outcome(began, creds.access_token)
    results = await asyncio.gather(*(one() for _ in range(callers)))
    await vault.aclose()
    return results

def main_sync():
    vault = Vault(settings)
    vault.startup()
    time.sleep(max(0.0, start_at - time.time()))
    began = time.time()
    results = [None] * callers
    def one(i):
        try:
            results[i] = outcome(began, vault.get_connection_credentials("slow", "u1").access_token)
        except VaultError as exc:
            results[i] = outcome(began, exc=exc)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(callers)]
    for t in threads: t.start()
    for t in threads: t.join()
    vault.close()
    return results

print(json.dumps(asyncio.run(main_async()) if mode == "async" else main_sync()))
"""


@pytest.fixture
def endpoint() -> Iterator[TrickleTokenEndpoint]:
    with TrickleTokenEndpoint() as server:
        yield server


def settings_mapping(port: int) -> dict[str, Any]:
    """One plain OAuth 2.0 connection ``slow`` whose endpoints are on ``port``."""
    return {
        "secret_key": "s" * 48,
        "encryption_keys": [new_key()],
        "base_url": "http://127.0.0.1:9",
        "storage_url": "memory://",
        "provider_timeout": PROVIDER_TIMEOUT,
        "lease_ttl": LEASE_TTL,
        "connections": [
            {
                "id": "slow",
                "client_id": "c",
                "client_secret": "s",
                "authorize_url": f"http://127.0.0.1:{port}/authorize",
                "token_url": f"http://127.0.0.1:{port}/token",
                "userinfo_url": f"http://127.0.0.1:{port}/userinfo",
                "min_validity": 120,
            }
        ],
    }


def overlapping(spans: list[tuple[str, float, float]]) -> list[str]:
    """Refresh tokens that were in flight twice at the same moment."""
    twice = []
    for i, (token, start, end) in enumerate(spans):
        for other, other_start, other_end in spans[i + 1 :]:
            if other == token and start < other_end and other_start < end:
                twice.append(token)
    return twice


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_trickling_provider_never_has_one_refresh_token_in_flight_twice(
    endpoint: TrickleTokenEndpoint, tmp_path: Path, mode: str
) -> None:
    config = settings_mapping(endpoint.port)
    config["storage_url"] = f"sqlite:///{tmp_path / 'shared.db'}"
    settings = Settings.from_mapping(config)
    seeder = Vault(settings)
    seeder.startup()
    # Valid for another 60 s, so due for refresh (callers want 120 s) but still servable.
    old = TokenSet(access_token="still-valid", refresh_token="r0", expires_at=time.time() + 60)
    seeder.put_tokens(CredentialKey("slow", "u1"), old)
    seeder.close()

    start_at = time.time() + 3  # both interpreters loaded and connected by then
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(config), mode, str(start_at), str(CALLERS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        results.extend(json.loads(out))

    assert endpoint.in_flight, "no refresh reached the provider"
    assert overlapping(endpoint.in_flight) == []
    for token, start, end in endpoint.in_flight:
        assert token == "r0"
        # Each call was cut at its deadline, not carried on to the end of the trickle.
        assert end - start < PROVIDER_TIMEOUT + 1.0
    # Every reader is answered once the first holder's attempts (each cut at its deadline)
    # are over: a reader that waited for that lease does not send the same refresh token
    # again at once, it serves the still-valid token.
    holder_bound = retry_budget(PROVIDER_TIMEOUT) + PROVIDER_TIMEOUT
    for result in results:
        assert result.get("token") == "still-valid" or result.get("status") == 503, result
        assert result["seconds"] < holder_bound + 1.0, result
    assert len(endpoint.in_flight) <= 3  # one holder's attempts (refresh_attempts)


def test_oversized_reply_is_refused_without_reading_it(tmp_path: Path) -> None:
    with TrickleTokenEndpoint(huge=True) as server:
        settings = Settings.from_mapping(
            {**settings_mapping(server.port), "provider_timeout": 5, "lease_ttl": 15}
        )
        request = HttpRequest("POST", f"http://127.0.0.1:{server.port}/token", form={"a": "b"})

        client = ProviderClient(settings)
        with pytest.raises(ProviderCallFailed, match="over"):
            client.send(request)
        client.close()

        async def send_async() -> None:
            async_client = AsyncProviderClient(settings)
            try:
                await async_client.send(request)
            finally:
                await async_client.aclose()

        with pytest.raises(ProviderCallFailed, match="over"):
            asyncio.run(send_async())
        time.sleep(0.2)
    # Both clients hung up at the cap: what the server got out is the cap plus what the
    # loopback socket buffers took, far from the 2 x 30 MiB it had to send.
    assert server.bytes_sent < 2 * (MAX_REPLY + 8 * 1024 * 1024), server.bytes_sent
