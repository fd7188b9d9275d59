"""Incremental authorization in Flask, against the real development provider: a view needing
a scope the user has not granted gets 403 ``insufficient_scope`` with a ``login_url``; after
the consent that URL asks for, the same view succeeds and the earlier scopes stay granted. A
grant the user narrowed shows in ``/auth/me``; a bad ``scope`` parameter is a 400."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask import jsonify

from oauth_vault_mw import Settings, Vault
from oauth_vault_mw.flask import OAuthVault, connection_client, connection_credentials
from oauth_vault_mw.flask import vault_request as request
from tests.support.oidc_provider import DevProvider
from tests.support.suite import BASE

from .conftest import Harness, config_for, harness_for, make_app

pytestmark = pytest.mark.integration

CONFIGURED = ["openid", "profile", "email", "offline_access", "calendar.readonly"]


class Clock:
    """The vault's clock, moved on by a test (the provider keeps its own)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def h(provider: DevProvider, clock: Clock) -> Iterator[Harness]:
    config = config_for(provider)
    config["OAUTH_VAULT_CONNECTIONS"][0]["scopes"] = CONFIGURED
    settings = Settings.from_mapping({k.removeprefix("OAUTH_VAULT_").lower(): v
                                      for k, v in config.items()})  # fmt: skip
    vault = Vault(settings, clock=clock)
    app = make_app(config, vault=vault)

    @app.get("/calendar")
    def calendar() -> Any:
        creds = connection_credentials("demo", scopes=["calendar.readonly"])
        return jsonify(scope=creds.scope)

    @app.route("/drive", methods=["GET", "POST"])
    def drive() -> Any:
        creds = request.connection_credentials("demo", scopes=["drive.file"])
        return jsonify(scope=creds.scope)

    @app.get("/drive-api")
    def drive_api() -> Any:
        with connection_client("demo", scopes="drive.file", base_url=BASE) as api:
            api.get("/anything")  # the token is checked before anything is sent
            return jsonify(ok=True)

    harness = harness_for(app, provider)
    with harness.client, harness.browser:
        yield harness
    OAuthVault().get_service(app).close()
    vault.close()


def consent(h: Harness, login_url: str, user: str) -> httpx.Response:
    """Follow a ``login_url``: the app's connect, the provider's consent, the callback."""
    start = h.client.get(login_url)
    assert start.status_code == 302, start.text
    return h.client.get(h.authorize(start.headers["location"], user))


def connection_of(h: Harness) -> dict[str, Any]:
    entry: dict[str, Any] = h.client.get("/auth/me").json()["connections"][0]
    return entry


def test_a_missing_scope_is_403_until_the_incremental_consent(
    h: Harness, unique_user: Callable[[], str], clock: Clock
) -> None:
    user = unique_user()
    assert h.login(user=user).status_code == 303
    assert h.client.get("/calendar").status_code == 200

    clock.offset = 3600  # expired too: the scope check comes first, no refresh is tried
    before = h.provider.stats()["refresh_grants"]
    refused = h.client.get("/drive?view=list")
    assert refused.status_code == 403
    body = refused.json()
    assert (body["error"], body["missing_scopes"]) == ("insufficient_scope", ["drive.file"])
    assert h.provider.stats()["refresh_grants"] == before
    url = urlsplit(body["login_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{BASE}/auth/connect/demo"
    assert parse_qs(url.query) == {"scope": ["drive.file"], "return_to": ["/drive?view=list"]}
    posted = h.client.post("/drive")
    assert posted.status_code == 403
    assert "return_to" not in posted.json()["login_url"]
    through_client = h.client.get("/drive-api")
    assert (through_client.status_code, through_client.json()["error"]) == (
        403,
        "insufficient_scope",
    )
    route = h.client.get("/auth/connections/demo/credentials?scope=drive.file")
    assert (route.status_code, route.json()["missing_scopes"]) == (403, ["drive.file"])

    clock.offset = 0  # (the vault checks the ID token's times with its clock)
    start = h.client.get(body["login_url"])
    asked = parse_qs(urlsplit(start.headers["location"]).query)["scope"][0].split()
    assert set(asked) == {*CONFIGURED, "drive.file"}
    done = h.client.get(h.authorize(start.headers["location"], user))
    assert (done.status_code, done.headers["location"]) == (303, "/drive?view=list")

    again = h.client.get("/drive?view=list")
    assert again.status_code == 200, again.text
    assert {"drive.file", "calendar.readonly"} <= set(again.json()["scope"].split())
    assert h.client.get("/calendar").status_code == 200  # the earlier scope stays
    assert h.client.get("/auth/connections/demo/credentials?scope=drive.file").status_code == 200
    entry = connection_of(h)
    assert {"calendar.readonly", "drive.file"} <= set(entry["granted_scopes"])
    assert entry["declined_scopes"] == []


def test_a_grant_narrowed_by_the_user_shows_in_me(
    h: Harness, unique_user: Callable[[], str]
) -> None:
    user = unique_user()
    h.provider.decline_scopes(user, "calendar.readonly")
    assert h.login(user=user).status_code == 303
    entry = connection_of(h)
    assert "calendar.readonly" not in entry["granted_scopes"]
    assert entry["declined_scopes"] == ["calendar.readonly"]
    refused = h.client.get("/calendar")
    assert refused.status_code == 403
    done = consent(h, refused.json()["login_url"], user)
    assert done.headers["location"] == "/calendar"
    assert h.client.get("/calendar").status_code == 200
    assert connection_of(h)["declined_scopes"] == []


@pytest.mark.parametrize(
    "query", ["scope=", "scope=%22x%22", "scope=a+a", "scope=a%5Cb", "scope=" + "x" * 1100]
)
def test_a_bad_scope_parameter_is_a_400_and_stores_nothing(
    h: Harness, unique_user: Callable[[], str], query: str
) -> None:
    h.login(user=unique_user())
    before = h.vault.storage.list_credentials(h.user_id())
    answer = h.client.get(f"/auth/connect/demo?{query}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert "set-cookie" not in answer.headers
    assert h.vault.storage.list_credentials(h.user_id()) == before
    assert h.client.get(f"/auth/connections/demo/credentials?{query}").status_code == 400
    assert h.client.get("/auth/login/demo?scope=drive.file").status_code == 400


def test_the_default_app_still_serves_without_scopes(
    provider: DevProvider, unique_user: Callable[[], str]
) -> None:
    app = make_app(config_for(provider))
    harness = harness_for(app, provider)
    with harness.client, harness.browser:
        harness.login(user=unique_user())
        assert harness.client.get("/profile/demo").status_code == 200
        entry = connection_of(harness)
        assert entry["granted_scopes"] == entry["scope"].split()
    OAuthVault().get_service(app).close()
    harness.vault.close()
