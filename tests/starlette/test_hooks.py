"""The host's hooks in Starlette, against the real development provider: ``on_login`` with
its arguments for new and returning users and connects, a refusal honoured (403, nothing
stored), a failing hook (500, nothing stored), ``on_disconnect``, and
``on_reauthentication_required`` when the provider revokes the grant."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.applications import Starlette

from oauth_vault_mw import (
    AsyncVault,
    CredentialKey,
    DisconnectEvent,
    Hooks,
    LoginEvent,
    LoginRefused,
    ReauthenticationEvent,
    ReauthenticationRequired,
)
from oauth_vault_mw.starlette import OAuthVaultMiddleware
from tests.support.oidc_provider import DevProvider
from tests.support.suite import BASE, settings_for

from .conftest import Harness

pytestmark = pytest.mark.integration

REFUSED = "mallory"


class Recorder:
    def __init__(self) -> None:
        self.logins: list[LoginEvent] = []
        self.disconnects: list[DisconnectEvent] = []
        self.reauthentications: list[ReauthenticationEvent] = []

    async def on_login(self, event: LoginEvent) -> None:  # a coroutine function
        self.logins.append(event)
        if event.subject.startswith(REFUSED):
            raise LoginRefused("accounts of this kind may not log in here")
        if event.subject.startswith("broken"):
            raise RuntimeError("a bug in the host's hook")

    def on_disconnect(self, event: DisconnectEvent) -> None:  # a plain function
        self.disconnects.append(event)
        raise RuntimeError("ignored: the disconnect is done")

    def on_reauthentication_required(self, event: ReauthenticationEvent) -> None:
        self.reauthentications.append(event)


@pytest.fixture
async def hooked(provider: DevProvider) -> AsyncIterator[tuple[Harness, Recorder]]:
    seen = Recorder()
    hooks = Hooks(
        on_login=seen.on_login,
        on_disconnect=seen.on_disconnect,
        on_reauthentication_required=seen.on_reauthentication_required,
    )
    app = Starlette()
    app.add_middleware(OAuthVaultMiddleware, settings=settings_for(provider), hooks=hooks)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
        httpx.AsyncClient() as browser,
    ):
        await client.get("/auth/me")  # builds the middleware stack
        vault = _vault_of(app)
        yield Harness(app, vault, client, browser, provider), seen
        await vault.aclose()


def _vault_of(app: Starlette) -> AsyncVault:
    stack = app.middleware_stack
    while stack is not None and not isinstance(stack, OAuthVaultMiddleware):
        stack = getattr(stack, "app", None)
    assert isinstance(stack, OAuthVaultMiddleware)
    return stack.vault


async def test_on_login_for_new_and_returning_users_and_connects(
    hooked: tuple[Harness, Recorder], unique_user: Callable[[], str]
) -> None:
    h, seen = hooked
    login = unique_user()
    assert (await h.login(user=login)).status_code in (302, 303)
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    h.client.cookies.clear()
    await h.login(user=login)
    other = unique_user()
    h.browser.cookies.clear()  # a fresh session at the provider: log in as another account
    start = await h.client.get("/auth/connect/second?return_to=/")
    await h.client.get(await h.authorize(start.headers["location"], other))
    first, again, connect = seen.logins
    assert (first.user_id, first.connection_id, first.mode, first.new_user) == (
        user_id, "demo", "login", True,
    )  # fmt: skip
    assert first.subject == login
    assert first.profile["preferred_username"] == login
    assert first.profile["name"] == login[0].upper() + login[1:]
    assert "openid" in first.scopes
    assert (again.user_id, again.new_user, again.mode) == (user_id, False, "login")
    assert (connect.user_id, connect.connection_id, connect.mode) == (user_id, "second", "connect")
    assert connect.new_user  # that account was never linked before
    assert connect.subject == other


async def test_a_refused_login_is_403_and_stores_nothing(
    hooked: tuple[Harness, Recorder], unique_user: Callable[[], str]
) -> None:
    h, seen = hooked
    login = f"{REFUSED}-{unique_user()}"
    answer = await h.login(user=login)
    assert answer.status_code == 403
    assert answer.json() == {
        "error": "login_refused",
        "error_description": "accounts of this kind may not log in here",
    }
    assert (await h.client.get("/auth/me")).status_code == 401
    assert await h.vault.storage.get_identity("demo", login) is None
    assert seen.logins[-1].new_user
    user_id = seen.logins[-1].user_id
    assert await h.vault.storage.get_credential(CredentialKey("demo", user_id)) is None


async def test_a_failing_hook_fails_the_login_and_stores_nothing(
    hooked: tuple[Harness, Recorder], unique_user: Callable[[], str]
) -> None:
    h, _ = hooked
    login = f"broken-{unique_user()}"
    answer = await h.login(user=login)
    assert answer.status_code == 500
    assert answer.json()["error"] == "server_error"
    assert "host's hook" not in answer.text  # the exception's text stays in the log
    assert await h.vault.storage.get_identity("demo", login) is None
    assert (await h.client.get("/auth/me")).status_code == 401


async def test_on_disconnect_and_on_reauthentication_required(
    hooked: tuple[Harness, Recorder], unique_user: Callable[[], str]
) -> None:
    h, seen = hooked
    login = unique_user()
    await h.login(user=login)
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    # The provider forgets the grant: the next refresh is refused, the app is told once.
    h.provider.revoke_grants(login)
    with pytest.raises(ReauthenticationRequired):
        await h.vault.get_connection_credentials("demo", user_id, force_refresh=True)
    assert seen.reauthentications == [ReauthenticationEvent(user_id, "demo", "invalid_grant")]
    # Log in again, then disconnect: the hook hears of it, its exception changes nothing.
    h.client.cookies.clear()
    await h.login(user=login)
    answer = await h.client.delete("/auth/connections/demo", headers={"Origin": BASE})
    assert answer.status_code in (200, 204)
    assert seen.disconnects == [DisconnectEvent(user_id, "demo", revoked=True)]
    assert await h.vault.storage.get_credential(CredentialKey("demo", user_id)) is None
