"""The authenticated client's retry rule, on ``httpx.MockTransport`` (no network): the token
goes to the API's origin only; a 401 brings one refresh and one retry of a replayable
request; a streamed body is never replayed; no token in reprs, exceptions, kept requests."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from oauth_vault_mw._async.client import AsyncConnectionClient
from oauth_vault_mw._sync.client import ConnectionClient
from oauth_vault_mw.core.model import Credentials

API = "https://api.example.com/v1"


class Tokens:
    """Hands out ``old`` until a forced refresh, then ``new-1``, ``new-2``...; counts."""

    def __init__(self) -> None:
        self.current = "old-token"
        self.refreshes = 0

    def credentials(self, force_refresh: bool) -> Credentials:
        if force_refresh:
            self.refreshes += 1
            self.current = f"new-token-{self.refreshes}"
        return Credentials("api", "u1", self.current, "Bearer", None, None)

    async def acredentials(self, force_refresh: bool) -> Credentials:
        return self.credentials(force_refresh)


class Api:
    """Answers 401 to every token but ``accept``; records what each request carried."""

    def __init__(self, accept: str | None = "new-token-1") -> None:
        self.accept = accept
        self.seen: list[tuple[str, str | None, bytes]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        auth = request.headers.get("authorization")
        self.seen.append((str(request.url), auth, body))
        if auth == f"Bearer {self.accept}" or request.url.host != "api.example.com":
            return httpx.Response(200, json={"ok": True})
        return httpx.Response(401, json={"error": "invalid_token"})


def sync_client(tokens: Tokens, api: Callable[[httpx.Request], httpx.Response]) -> ConnectionClient:
    return ConnectionClient(
        "api", tokens.credentials, base_url=API, transport=httpx.MockTransport(api)
    )


def async_client(tokens: Tokens, api: Api) -> AsyncConnectionClient:
    return AsyncConnectionClient(
        "api", tokens.acredentials, base_url=API, transport=httpx.MockTransport(api)
    )


def test_a_401_brings_one_refresh_and_one_retry() -> None:
    tokens, api = Tokens(), Api()
    with sync_client(tokens, api) as client:
        resp = client.post("/items", json={"a": 1})
    assert resp.status_code == 200
    assert tokens.refreshes == 1
    assert [auth for _, auth, _ in api.seen] == ["Bearer old-token", "Bearer new-token-1"]
    assert api.seen[0][0] == "https://api.example.com/v1/items"
    assert api.seen[0][2] == api.seen[1][2] == b'{"a":1}', "the same body, sent again"


def test_a_second_401_is_the_answer_never_a_loop() -> None:
    tokens, api = Tokens(), Api(accept=None)
    with sync_client(tokens, api) as client:
        resp = client.get("/items")
    assert resp.status_code == 401
    assert tokens.refreshes == 1
    assert len(api.seen) == 2


def test_no_refresh_when_the_token_is_accepted() -> None:
    tokens, api = Tokens(), Api(accept="old-token")
    with sync_client(tokens, api) as client:
        assert client.get("/items").status_code == 200
    assert tokens.refreshes == 0


def test_a_streamed_body_is_never_replayed() -> None:
    tokens, api = Tokens(), Api()

    def chunks() -> Iterator[bytes]:
        yield b"part-1"
        yield b"part-2"

    with sync_client(tokens, api) as client:
        resp = client.post("/upload", content=chunks())
    assert resp.status_code == 401, "the first answer, unchanged"
    assert resp.json() == {"error": "invalid_token"}
    assert tokens.refreshes == 0
    assert len(api.seen) == 1


async def test_an_async_streamed_body_is_never_replayed() -> None:
    tokens, api = Tokens(), Api()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"part"

    async with async_client(tokens, api) as client:
        resp = await client.post("/upload", content=chunks())
        assert resp.status_code == 401
        replayed = await client.put("/items", data={"a": "b"})
    assert replayed.status_code == 200
    assert tokens.refreshes == 1
    assert len(api.seen) == 3


def test_another_origin_gets_no_token_and_no_retry() -> None:
    tokens, api = Tokens(), Api()
    with sync_client(tokens, api) as client:
        for url in (
            "https://cdn.example.com/avatar.png",
            "http://api.example.com/v1/items",  # another scheme
            "https://api.example.com:8443/v1/items",  # another port
        ):
            client.get(url)
    assert [auth for _, auth, _ in api.seen] == [None, None, None]
    assert tokens.refreshes == 0


def test_no_token_left_in_reprs_responses_or_exceptions() -> None:
    tokens, api = Tokens(), Api()

    def down(request: httpx.Request) -> httpx.Response:
        api(request)
        raise httpx.ConnectError("connection refused", request=request)

    seen: list[str] = []
    with sync_client(tokens, api) as client:
        seen.append(repr(client))
        resp = client.get("/items")
        assert "authorization" not in resp.request.headers
        seen += [repr(resp), repr(resp.request), str(resp.request.headers)]
    with sync_client(tokens, down) as client, pytest.raises(httpx.ConnectError) as caught:
        client.get("/items")
    exc = caught.value
    assert "authorization" not in exc.request.headers
    seen += [
        str(exc),
        repr(exc),
        str(exc.request.headers),
        "".join(traceback.format_exception(exc)),
    ]
    failing = Api(accept=None)
    with sync_client(Tokens(), failing) as client:
        resp = client.get("/items")
        with pytest.raises(httpx.HTTPStatusError) as status_error:
            resp.raise_for_status()
    seen += [str(status_error.value), repr(status_error.value.request.headers)]
    assert api.seen[0][1] == "Bearer old-token", "the token was sent"
    text = "\n".join(seen)
    assert "old-token" not in text
    assert "new-token" not in text
