"""The routes of ``core/routes.py`` as a Starlette router the middleware serves under the
prefix: each route runs its shared handler (``_async/routes.py``) on the request's
:class:`~._context.RequestContext` and sends the reply as a Starlette response."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from .._async.routes import AsyncRouteHandlers, Handler
from .._async.service import AsyncServiceAccess
from .._async.vault import AsyncVault
from ..core.errors import VaultError
from ..core.routes import NOT_FOUND, ROUTES, Reply
from ._context import SCOPE_KEY

__all__ = ["build_router", "error_response", "http_error_response"]


def error_response(exc: VaultError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers())


def http_error_response(exc: HTTPException) -> JSONResponse:
    """Starlette's own HTTP errors on the vault's routes (405...), as the same JSON."""
    code = {405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
    body = {"error": code, "error_description": str(exc.detail)}
    headers = dict(exc.headers or {})
    if "Allow" in headers:  # Starlette builds it from a set: make it stable
        headers["Allow"] = ", ".join(sorted(m.strip() for m in headers["Allow"].split(",")))
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def reply_response(reply: Reply) -> Response:
    """A handler's reply as a Starlette response (a redirect's ``Location`` quoted by
    ``RedirectResponse``), its cookies last."""
    response: Response
    if reply.location is not None:
        response = RedirectResponse(reply.location, reply.status, reply.headers)
    else:
        response = JSONResponse(reply.body, reply.status, reply.headers)
    for cookie in reply.cookies:
        response.raw_headers.append((b"set-cookie", cookie.header().encode("latin-1")))
    return response


class _Endpoint:
    """One route as an ASGI app: its handler on this request's context (which the middleware
    put on the scope) and the matched path parameters."""

    __slots__ = ("_handler",)

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reply = await self._handler(scope[SCOPE_KEY], scope["path_params"])
        await reply_response(reply)(scope, receive, send)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await reply_response(NOT_FOUND)(scope, receive, send)


def build_router(vault: AsyncVault, service: AsyncServiceAccess) -> Router:
    """The router of every route under the prefix; a ``GET`` route answers ``HEAD`` too, a
    wrong method raises Starlette's 405 (the middleware renders it as JSON)."""
    handlers = AsyncRouteHandlers(vault, service)
    prefix = vault.settings.prefix
    routes = [
        Route(prefix + r.path, _Endpoint(handlers.handler(r.name)), methods=[r.method], name=r.name)
        for r in ROUTES
    ]
    # redirect_slashes=False: /auth/me/ is a 404 JSON, as in Flask
    return Router(routes=routes, default=_not_found, redirect_slashes=False)
