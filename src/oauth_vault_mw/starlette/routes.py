"""The HTTP routes of DESIGN.md, served by the middleware under the prefix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from .._async.service import AsyncServiceAccess
from .._async.vault import AsyncVault
from ..core.cookies import SESSION_COOKIE, STATE_COOKIE, CookieSpec
from ..core.errors import (
    NotAuthenticated,
    VaultError,
)
from ..core.flow import check_return_to
from ..core.inputs import (
    MAX_FORM,
    NO_STORE,
    check_form_type,
    check_origin,
    check_query_size,
    parse_form,
    unique_params,
)
from ._context import context_of, read_cookie

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


def _set_cookies(response: Response, cookies: tuple[CookieSpec, ...] | list[CookieSpec]) -> None:
    for spec in cookies:
        response.raw_headers.append((b"set-cookie", spec.header().encode("latin-1")))


def _query(request: Request) -> Mapping[str, str]:
    check_query_size(request.scope.get("query_string", b""))
    return unique_params(request.query_params.multi_items())


async def _form(request: Request) -> Mapping[str, str]:
    """A bounded ``application/x-www-form-urlencoded`` body, each field once."""
    check_form_type(request.headers.get("content-type"))
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            break  # parse_form refuses it without reading the rest
    return parse_form(body)


def _check_origin(vault: AsyncVault, request: Request) -> None:
    check_origin(request.headers.get("origin"), vault.settings.base_url)


def build_router(vault: AsyncVault, service: AsyncServiceAccess) -> Router:
    prefix = vault.settings.prefix

    async def login(request: Request) -> Response:
        return await _begin(request, connect=False)

    async def connect(request: Request) -> Response:
        return await _begin(request, connect=True)

    async def _begin(request: Request, *, connect: bool) -> Response:
        params = _query(request)
        connection_id = request.path_params["connection_id"]
        vault.connection(connection_id)
        return_to = check_return_to(params.get("return_to"))
        user_id = await context_of(request.scope).require_user_id() if connect else None
        url, cookie = await vault.begin_login(connection_id, return_to=return_to, user_id=user_id)
        response = RedirectResponse(url, status_code=302, headers=NO_STORE)
        _set_cookies(response, [cookie])
        return response

    async def callback(request: Request) -> Response:
        params = _query(request)
        result = await vault.complete_login(
            request.path_params["connection_id"],
            params,
            state_cookie=read_cookie(request.scope, STATE_COOKIE),
            session_cookie=read_cookie(request.scope, SESSION_COOKIE),
        )
        response = RedirectResponse(result.return_to, status_code=303, headers=NO_STORE)
        _set_cookies(response, result.cookies)
        return response

    async def logout(request: Request) -> Response:
        _check_origin(vault, request)
        cookie = await vault.logout(read_cookie(request.scope, SESSION_COOKIE))
        response = JSONResponse({"logged_out": True}, headers=NO_STORE)
        _set_cookies(response, [cookie])
        return response

    async def me(request: Request) -> Response:
        user_id = await context_of(request.scope).require_user_id()
        return JSONResponse(await vault.me(user_id), headers=NO_STORE)

    async def credentials(request: Request) -> Response:
        connection_id = request.path_params["connection_id"]
        vault.connection(connection_id)  # an unknown connection is a 404 before any 401
        creds = await context_of(request.scope).credentials(connection_id)
        return JSONResponse(creds.to_dict(), headers=NO_STORE)

    async def service_credentials(request: Request) -> Response:
        principal = await service.authenticate(request.headers.get("authorization"))
        creds = await service.credentials_for(
            principal, request.path_params["connection_id"], request.path_params["user_id"]
        )
        return JSONResponse(creds.to_dict(), headers=NO_STORE)

    async def app_token(request: Request) -> Response:
        # The browser session only: an app token cannot renew itself past logout.
        user_id = await vault.user_for_session(read_cookie(request.scope, SESSION_COOKIE))
        if user_id is None:
            raise NotAuthenticated("app tokens are issued to a session (log in first)")
        return JSONResponse(service.issue_app_token(user_id), headers=NO_STORE)

    async def jwks(request: Request) -> Response:
        cache = {"Cache-Control": "public, max-age=300"}
        return JSONResponse(service.app_tokens.jwks(), headers=cache)

    async def token_exchange(request: Request) -> Response:
        form = await _form(request)
        answer = await service.exchange(form, request.headers.get("authorization"))
        return JSONResponse(answer, headers=NO_STORE)

    async def disconnect(request: Request) -> Response:
        _check_origin(vault, request)
        connection_id = request.path_params["connection_id"]
        vault.connection(connection_id)
        user_id = await context_of(request.scope).require_user_id()
        revoked = await vault.disconnect(connection_id, user_id)
        return JSONResponse({"connection_id": connection_id, "revoked": revoked})

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        body: dict[str, Any] = {"error": "not_found", "error_description": "no such route"}
        await JSONResponse(body, status_code=404)(scope, receive, send)

    cid = "{connection_id}"
    router = Router(
        routes=[
            Route(f"{prefix}/login/{cid}", login, methods=["GET"]),
            Route(f"{prefix}/connect/{cid}", connect, methods=["GET"]),
            Route(f"{prefix}/callback/{cid}", callback, methods=["GET"]),
            Route(f"{prefix}/logout", logout, methods=["POST"]),
            Route(f"{prefix}/me", me, methods=["GET"]),
            Route(f"{prefix}/connections/{cid}/credentials", credentials, methods=["GET"]),
            Route(
                f"{prefix}/connections/{cid}/users/{{user_id}}/credentials",
                service_credentials,
                methods=["GET"],
            ),
            Route(f"{prefix}/app-token", app_token, methods=["GET"]),
            Route(f"{prefix}/.well-known/jwks.json", jwks, methods=["GET"]),
            Route(f"{prefix}/token", token_exchange, methods=["POST"]),
            Route(f"{prefix}/connections/{cid}", disconnect, methods=["DELETE"]),
        ],
        default=not_found,
        redirect_slashes=False,  # /auth/me/ is a 404 JSON, as in Flask
    )
    return router
