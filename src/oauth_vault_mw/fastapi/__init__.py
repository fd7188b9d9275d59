"""FastAPI helpers: a route class and dependencies over the Starlette middleware.

Either a route class, so handlers get ``request.connection_credentials``::

    router = APIRouter(route_class=VaultAPIRoute)

    @router.get("/profile")
    async def profile(request: VaultRequest) -> dict[str, str]:
        creds = await request.connection_credentials("google")

or a dependency::

    @app.get("/profile")
    async def profile(creds: Credentials = Depends(ConnectionCredentials("google"))): ...
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any

try:
    from fastapi import Request
    from fastapi.routing import APIRoute
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "oauth_vault_mw.fastapi needs FastAPI: pip install 'oauth-vault-mw[fastapi]'"
    ) from _err

from starlette.responses import Response

from ..core.accounts import account_param
from ..core.model import Credentials
from ..starlette.request import VaultRequest, connection_credentials, current_user_id

__all__ = ["ConnectionCredentials", "CurrentUserId", "VaultAPIRoute", "VaultRequest"]


class VaultAPIRoute(APIRoute):
    """An ``APIRoute`` whose handlers receive a :class:`VaultRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def vault_handler(request: Request) -> Response:
            return await handler(VaultRequest(request.scope, request.receive))

        return vault_handler


class ConnectionCredentials:
    """Dependency: ``Depends(ConnectionCredentials("google", min_validity=120))``;
    ``scopes=["drive.file"]``: the scopes the handler needs (403 ``insufficient_scope`` with
    a ``login_url`` when the user has not granted one); ``account_query="account"``: the
    query parameter that may name one of the user's accounts by its id (else the default
    account; a malformed one is a 400)."""

    def __init__(
        self,
        connection_id: str,
        *,
        min_validity: float | None = None,
        scopes: Iterable[str] | None = None,
        account_query: str | None = None,
    ) -> None:
        self.connection_id = connection_id
        self.min_validity = min_validity
        if isinstance(scopes, str):
            scopes = scopes.split()
        self.scopes = None if scopes is None else tuple(scopes)
        self.account_query = account_query

    async def __call__(self, request: Request) -> Credentials:
        account = None
        if self.account_query is not None:
            account = account_param(request.query_params.get(self.account_query))
        return await connection_credentials(
            request,
            self.connection_id,
            min_validity=self.min_validity,
            scopes=self.scopes,
            account=account,
        )


async def CurrentUserId(request: Request) -> str | None:
    """Dependency: the logged-in user's id or ``None``."""
    return await current_user_id(request)
