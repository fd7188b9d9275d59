"""The routes of ``core/routes.py`` as the ASGI app the middleware serves under the prefix:
each route runs its shared handler (``_async/routes.py``) on the request's
:class:`~._context.RequestContext` and sends the reply as JSON (or a redirect)."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import Receive, Scope, Send

from .._async.routes import AsyncRouteHandlers, Handler
from .._async.service import AsyncServiceAccess
from .._async.vault import AsyncVault
from ..core.errors import VaultError
from ..core.inputs import NO_STORE
from ..core.routes import NOT_FOUND, ROUTES, MethodNotAllowed, Reply, RouteTable
from ._context import SCOPE_KEY

__all__ = ["VaultRouter", "build_router", "error_response", "send_reply"]


def error_response(exc: VaultError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers())


def _redirect_response(location: str, reply: Reply) -> RedirectResponse:
    """A redirect reply to ``location`` as Starlette's ``RedirectResponse`` (which quotes
    it), its cookies last."""
    response = RedirectResponse(location, reply.status, reply.headers)
    for cookie in reply.cookies:
        response.raw_headers.append((b"set-cookie", cookie.header().encode("latin-1")))
    return response


_JSON_TYPE = (b"content-type", b"application/json")
_NO_STORE_RAW = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in NO_STORE.items()]


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _json_body(body: Any) -> bytes:
    """The body as Starlette's ``JSONResponse`` renders it (compact, UTF-8), through one
    encoder made once (``json.dumps`` with options builds one per call)."""
    return _ENCODER.encode(body).encode("utf-8")


async def send_reply(reply: Reply, scope: Scope, receive: Receive, send: Send) -> None:
    """Send ``reply``: a JSON reply (or an HTML page) straight as the two ASGI messages (the
    same bytes and headers ``JSONResponse`` would send, without building one per request); a
    redirect through :func:`_redirect_response`."""
    if reply.location is not None:
        await _redirect_response(reply.location, reply)(scope, receive, send)
        return
    body = _json_body(reply.body) if reply.page is None else reply.page.encode("utf-8")
    headers = (
        list(_NO_STORE_RAW)
        if reply.headers is NO_STORE
        else [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    )
    headers.append((b"content-length", str(len(body)).encode("latin-1")))
    if reply.page is None:  # an HTML page's headers hold its Content-Type
        headers.append(_JSON_TYPE)
    for cookie in reply.cookies:
        headers.append((b"set-cookie", cookie.header().encode("latin-1")))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _method_not_allowed(allow: str) -> JSONResponse:
    body = {"error": "method_not_allowed", "error_description": "Method Not Allowed"}
    return JSONResponse(body, status_code=405, headers={"Allow": allow})


class VaultRouter:
    """The routes under the prefix as one ASGI app: :class:`~oauth_vault_mw.core.routes.
    RouteTable` finds the route, its handler runs on this request's context (which the
    middleware put on the scope), and the reply is sent. A handler's ``VaultError`` is sent
    as its JSON error (nothing was sent before it); another path under the prefix is a JSON
    ``404``, a wrong method a JSON ``405`` with ``Allow`` (a ``GET`` route answers ``HEAD``)."""

    def __init__(self, vault: AsyncVault, service: AsyncServiceAccess) -> None:
        handlers = AsyncRouteHandlers(vault, service)
        self.table = RouteTable(vault.settings.prefix)
        self._handlers: dict[str, Handler] = {r.name: handlers.handler(r.name) for r in ROUTES}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.table.match(scope["path"], scope["method"])
        if found is None:
            reply = NOT_FOUND
        elif isinstance(found, MethodNotAllowed):
            await _method_not_allowed(found.allow)(scope, receive, send)
            return
        else:
            route, params = found
            scope["path_params"] = params
            try:
                reply = await self._handlers[route.name](scope[SCOPE_KEY], params)
            except VaultError as exc:
                await error_response(exc)(scope, receive, send)
                return
        await send_reply(reply, scope, receive, send)


def build_router(vault: AsyncVault, service: AsyncServiceAccess) -> VaultRouter:
    """The ASGI app of every route under the prefix (:class:`VaultRouter`)."""
    return VaultRouter(vault, service)
