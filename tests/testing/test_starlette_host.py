"""A Starlette host app tested the way docs/testing.md says, through the pytest plugin's
fixtures: no Node, no network (the vault reaches the provider through its in-process
transport)."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.responses import JSONResponse

from oauth_vault_mw import AsyncVault, Credentials, Settings
from oauth_vault_mw.fastapi import ConnectionCredentials
from oauth_vault_mw.starlette import OAuthVaultMiddleware, VaultRequest, VaultRoute
from oauth_vault_mw.testing import DEFAULT_BASE_URL, LoginFailed, OpenIDProvider, log_in_async
from oauth_vault_mw.testing.pytest_plugin import StarletteClientFactory


class Clock:
    """The one clock of the vault and the provider: a token expires without sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def profile(request: VaultRequest) -> JSONResponse:
    force = request.query_params.get("force") == "1"
    creds = await request.connection_credentials("demo", force_refresh=force)
    return JSONResponse({"access_token": creds.access_token, "expires_at": creds.expires_at})


async def userinfo(request: VaultRequest) -> JSONResponse:
    """What a host app's handler does: call the provider's API with the user's token."""
    creds = await request.connection_credentials("demo")
    async with httpx.AsyncClient() as http:
        reply = await http.get(
            f"{request.app.state.issuer}/userinfo",
            headers={"Authorization": creds.authorization_header},
        )
    return JSONResponse(reply.json(), reply.status_code)


def host_app(provider: OpenIDProvider, vault: AsyncVault | None = None) -> Starlette:
    """The host app: its own routes, the middleware, the vault pointed at ``provider``."""
    app = Starlette(routes=[VaultRoute("/profile", profile), VaultRoute("/userinfo", userinfo)])
    app.state.issuer = provider.issuer
    if vault is not None:
        app.add_middleware(OAuthVaultMiddleware, vault=vault)
    else:
        app.add_middleware(
            OAuthVaultMiddleware,
            settings=provider.settings("demo"),
            http_transport=provider.transport(),
        )
    return app


# Starlette 1.x's TestClient warns when it runs on httpx rather than httpx2 (docs/testing.md).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated"
)


def test_login_then_credentials_then_one_refresh_at_expiry(
    oauth_vault_provider: OpenIDProvider, oauth_vault_starlette_client: StarletteClientFactory
) -> None:
    provider = oauth_vault_provider
    clock = Clock()
    provider.clock = clock
    provider.access_token_ttl = 300
    settings = Settings.from_mapping(provider.settings("demo"))
    vault = AsyncVault(settings, http_transport=provider.transport(), clock=clock)
    provider.login_as("alice", name="Alice Example")
    client = oauth_vault_starlette_client(host_app(provider, vault), "demo")

    me = client.get("/auth/me").json()
    assert [c["connection_id"] for c in me["connections"]] == ["demo"]
    first = client.get("/profile").json()
    assert client.get("/profile").json() == first
    assert provider.counts.code_exchanges == 1
    assert provider.counts.refreshes == 0

    clock.now += 301  # past expiry for the vault and the provider alike
    answers = [client.get("/profile").json() for _ in range(5)]
    assert {a["access_token"] for a in answers} != {first["access_token"]}
    assert len({a["access_token"] for a in answers}) == 1
    assert provider.counts.refreshes == 1
    assert provider.counts.refusals == {}


def test_a_refused_refresh_asks_the_user_to_log_in_again(
    oauth_vault_provider: OpenIDProvider, oauth_vault_starlette_client: StarletteClientFactory
) -> None:
    provider = oauth_vault_provider
    client = oauth_vault_starlette_client(host_app(provider), "demo", login="bob")
    assert client.get("/profile", params={"force": "1"}).status_code == 200
    assert provider.counts.refreshes == 1
    provider.refuse_next_refresh()
    refused = client.get("/profile", params={"force": "1"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "reauthentication_required"
    assert client.get("/profile").status_code == 409  # until the user logs in again
    assert provider.counts.refusals == {"invalid_grant": 1}
    assert provider.counts.refreshes == 1


def test_revoking_the_user_at_the_provider(
    oauth_vault_provider: OpenIDProvider, oauth_vault_starlette_client: StarletteClientFactory
) -> None:
    provider = oauth_vault_provider
    client = oauth_vault_starlette_client(host_app(provider), "demo", login="bob")
    assert provider.revoke_user("bob") == 1
    assert client.get("/profile", params={"force": "1"}).status_code == 409
    assert provider.counts.refusals == {"invalid_grant": 1}


def test_a_handler_that_calls_the_provider_itself_reaches_the_served_provider(
    oauth_vault_provider: OpenIDProvider, oauth_vault_starlette_client: StarletteClientFactory
) -> None:
    """The fixture serves the provider on loopback too: a handler's own HTTP client (which
    knows nothing of the transport) reaches the same provider."""
    oauth_vault_provider.login_as("carol", email="carol@corp.test")
    client = oauth_vault_starlette_client(host_app(oauth_vault_provider), "demo")
    reply = client.get("/userinfo")
    assert reply.status_code == 200, reply.text
    assert reply.json()["email"] == "carol@corp.test"
    assert oauth_vault_provider.counts.userinfo == 1


def test_the_provider_going_down(
    oauth_vault_provider: OpenIDProvider, oauth_vault_starlette_client: StarletteClientFactory
) -> None:
    client = oauth_vault_starlette_client(host_app(oauth_vault_provider), "demo")
    before = client.get("/profile").json()
    oauth_vault_provider.down = True
    with pytest.raises(LoginFailed, match="answered 503"):
        oauth_vault_starlette_client(host_app(oauth_vault_provider), "demo")
    assert client.get("/profile").json() == before  # a still-valid token is still served
    down = client.get("/auth/login/demo", follow_redirects=False)
    assert down.status_code in (302, 503)  # discovery is cached: the login starts or fails


def test_a_fastapi_app(
    oauth_vault_provider: OpenIDProvider, oauth_vault_starlette_client: StarletteClientFactory
) -> None:
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(
        creds: Credentials = Depends(ConnectionCredentials("demo")),  # noqa: B008
    ) -> dict[str, str]:
        return {"token_type": creds.token_type}

    app.add_middleware(
        OAuthVaultMiddleware,
        settings=oauth_vault_provider.settings("demo"),
        http_transport=oauth_vault_provider.transport(),
    )
    client = oauth_vault_starlette_client(app, "demo")
    assert client.get("/whoami").json() == {"token_type": "Bearer"}


def test_an_app_configured_from_the_environment_only(
    oauth_vault_provider: OpenIDProvider,
    oauth_vault_starlette_client: StarletteClientFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No transport to give (the examples' shape): the vault reaches the provider the fixture
    serves on loopback."""
    for name, value in oauth_vault_provider.environ("demo").items():
        monkeypatch.setenv(name, value)
    app = Starlette(routes=[VaultRoute("/profile", profile)])
    app.add_middleware(OAuthVaultMiddleware, settings=Settings.from_env())
    client = oauth_vault_starlette_client(app, "demo", login="erin")
    assert client.get("/profile").status_code == 200
    assert oauth_vault_provider.counts.requests["discovery"] == 1
    assert oauth_vault_provider.counts.code_exchanges == 1


async def test_an_async_suite_logs_in_with_an_async_client(
    oauth_vault_provider: OpenIDProvider,
) -> None:
    app = host_app(oauth_vault_provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=DEFAULT_BASE_URL) as client:
        done = await log_in_async(client, oauth_vault_provider, "demo", return_to="/profile")
        assert done.headers["location"] == "/profile"
        assert (await client.get("/profile")).status_code == 200
