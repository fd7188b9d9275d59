"""Who logged in, in Flask: the profile of the last login in ``/auth/me`` and
``current_user()``, against the real development provider."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import jsonify

from oauth_vault_mw.flask import OAuthVault, current_user
from oauth_vault_mw.flask import vault_request as request
from tests.support.oidc_provider import DevProvider

from .conftest import Harness, config_for, harness_for, make_app

pytestmark = pytest.mark.integration


@pytest.fixture
def h(provider: DevProvider) -> Iterator[Harness]:
    app = make_app(config_for(provider))

    @app.get("/whoami")
    def whoami() -> Any:
        user = current_user()
        if user is None:
            return jsonify(user=None)
        return jsonify(user_id=user.user_id, profile=dict(user.profile), via=user.connection_id)

    @app.get("/name")
    def name() -> Any:
        user = request.current_user()
        return jsonify(name=None if user is None else user.profile.get("name"))

    harness = harness_for(app, provider)
    with harness.client, harness.browser:
        yield harness
    OAuthVault().get_service(app).close()
    harness.vault.close()


def test_profile_after_login(h: Harness, unique_user: Callable[[], str]) -> None:
    assert h.client.get("/whoami").json() == {"user": None}
    login = unique_user()
    h.login(user=login)
    expected = {
        "name": login[0].upper() + login[1:],
        "email": f"{login}@example.test",
        "email_verified": True,
        "preferred_username": login,
    }
    me = h.client.get("/auth/me").json()
    assert me["profile"] == expected
    assert [c["profile"] for c in me["connections"]] == [expected]
    assert h.client.get("/whoami").json() == {
        "user_id": me["user_id"],
        "profile": expected,
        "via": "demo",
    }
    assert h.client.get("/name").json() == {"name": expected["name"]}
    h.vault.get_connection_credentials("demo", me["user_id"], force_refresh=True)
    assert h.client.get("/auth/me").json()["profile"] == expected
