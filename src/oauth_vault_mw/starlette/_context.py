"""Per-request state the middleware puts under ``scope["oauth_vault"]``: the request as the
shared routes and the request-authentication policy read it (``_async/routes.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import Receive, Scope

from .._async.routes import AsyncHttpInput
from .._async.service import AsyncServiceAccess
from .._async.vault import AsyncVault
from ..core.errors import BadRequest, MiddlewareNotInstalled
from ..core.inputs import MAX_FORM

__all__ = ["SCOPE_KEY", "RequestContext", "context_of", "read_cookie", "read_header"]

SCOPE_KEY = "oauth_vault"
MAX_COOKIE_HEADER = 8192


def read_cookie(scope: Mapping[str, Any], name: str) -> str | None:
    """One cookie's value from the raw headers; oversized cookie headers are refused.

    A plain split, not ``http.cookies``: the library's cookie values are URL-safe tokens,
    and this runs on every request.
    """
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key != b"cookie":
            continue
        if len(value) > MAX_COOKIE_HEADER:
            raise BadRequest("cookie header too large")
        for part in value.split(b";"):
            found, sep, content = part.strip().partition(b"=")
            if sep and found == wanted:
                return str(content.strip(b'"').decode("latin-1"))
    return None


def read_header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestContext(AsyncHttpInput):
    """This request as the vault's routes and accessors read it, with its user once looked
    up (the policy is :class:`~oauth_vault_mw._async.routes.AsyncRequestAuth`)."""

    __slots__ = ("_receive", "_scope")

    def __init__(
        self,
        vault: AsyncVault,
        scope: Scope,
        service: AsyncServiceAccess,
        receive: Receive | None = None,
    ) -> None:
        super().__init__(vault, service)
        self._scope = scope
        self._receive = receive

    def header(self, name: str) -> str | None:
        return read_header(self._scope, name.encode("latin-1"))

    def cookie(self, name: str) -> str | None:
        return read_cookie(self._scope, name)

    def query_string(self) -> bytes:
        raw: bytes = self._scope.get("query_string", b"")
        return raw

    def query_items(self) -> list[tuple[str, str]]:
        return QueryParams(self._scope["query_string"]).multi_items()

    async def form_body(self) -> bytes:
        if self._receive is None:
            raise RuntimeError("this request context was made without the ASGI receive")
        body = b""
        async for chunk in Request(self._scope, self._receive).stream():
            body += chunk
            if len(body) > MAX_FORM:
                break  # parse_form refuses it without reading the rest
        return body


def context_of(scope: Mapping[str, Any]) -> RequestContext:
    ctx = scope.get(SCOPE_KEY)
    if not isinstance(ctx, RequestContext):
        raise MiddlewareNotInstalled()
    return ctx
