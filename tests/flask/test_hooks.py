"""The host's hooks in Flask, against the real development provider: a plain on_login and a
coroutine one (run on its own loop), a refusal honoured with nothing stored, on_disconnect
and on_reauthentication_required."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from oauth_vault_mw import (
    CredentialKey,
    DisconnectEvent,
    Hooks,
    LoginEvent,
    LoginRefused,
    ReauthenticationEvent,
    ReauthenticationRequired,
)
from oauth_vault_mw.flask import OAuthVault
from tests.support.oidc_provider import DevProvider
from tests.support.suite import BASE

from .conftest import Harness, config_for, harness_for, make_app

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self) -> None:
        self.logins: list[LoginEvent] = []
        self.disconnects: list[DisconnectEvent] = []
        self.reauthentications: list[ReauthenticationEvent] = []

    def on_login(self, event: LoginEvent) -> None:
        self.logins.append(event)
        if event.subject.startswith("mallory"):
            raise LoginRefused("not here, Mallory")

    async def on_disconnect(self, event: DisconnectEvent) -> None:  # a coroutine in Flask
        await asyncio.sleep(0)
        self.disconnects.append(event)

    async def on_reauthentication_required(self, event: ReauthenticationEvent) -> None:
        self.reauthentications.append(event)


@pytest.fixture
def hooked(provider: DevProvider) -> Iterator[tuple[Harness, Recorder]]:
    seen = Recorder()
    hooks = Hooks(
        on_login=seen.on_login,
        on_disconnect=seen.on_disconnect,
        on_reauthentication_required=seen.on_reauthentication_required,
    )
    app = make_app(config_for(provider), hooks=hooks)
    h = harness_for(app, provider)
    with h.client, h.browser:
        yield h, seen
    OAuthVault().get_service(app).close()
    h.vault.close()


def test_hooks_in_flask(hooked: tuple[Harness, Recorder], unique_user: Callable[[], str]) -> None:
    h, seen = hooked
    login = unique_user()
    h.login(user=login)
    user_id = h.user_id()
    h.client.cookies.clear()
    h.login(user=login)
    first, again = seen.logins
    assert (first.user_id, first.connection_id, first.mode, first.new_user) == (
        user_id, "demo", "login", True,
    )  # fmt: skip
    assert first.profile["email"] == f"{login}@example.test"
    assert "openid" in first.scopes
    assert (again.user_id, again.new_user) == (user_id, False)

    h.provider.revoke_grants(login)
    with pytest.raises(ReauthenticationRequired):
        h.vault.get_connection_credentials("demo", user_id, force_refresh=True)
    assert seen.reauthentications == [ReauthenticationEvent(user_id, "demo", "invalid_grant")]

    h.client.cookies.clear()
    h.login(user=login)
    answer = h.client.delete("/auth/connections/demo", headers={"Origin": BASE})
    assert answer.status_code in (200, 204)
    assert seen.disconnects == [DisconnectEvent(user_id, "demo", revoked=True)]


def test_refused_login_in_flask_stores_nothing(
    hooked: tuple[Harness, Recorder], unique_user: Callable[[], str]
) -> None:
    h, seen = hooked
    login = f"mallory-{unique_user()}"
    answer = h.login(user=login)
    assert answer.status_code == 403
    assert answer.json() == {"error": "login_refused", "error_description": "not here, Mallory"}
    assert h.client.get("/auth/me").status_code == 401
    assert h.vault.storage.get_identity("demo", login) is None
    user_id = seen.logins[-1].user_id
    assert h.vault.storage.get_credential(CredentialKey("demo", user_id)) is None


def test_a_coroutine_hook_runs_from_a_thread_that_runs_a_loop() -> None:
    """The sync vault called inside a running event loop (a sync helper in an async app):
    the coroutine hook runs to completion on a loop of its own, in a worker thread."""
    from oauth_vault_mw._hooks import run_coroutine

    async def hook() -> str:
        await asyncio.sleep(0)
        return "ran"

    async def inside() -> str:
        result: str = run_coroutine(hook())
        return result

    assert run_coroutine(hook()) == "ran"
    assert asyncio.run(inside()) == "ran"
