"""Disconnect through the real middleware: revoke at the provider where it can (RFC 7009),
else say so in the log, naming the connection; the credential is gone either way."""

from __future__ import annotations

import logging

import pytest

from .fake_provider import FakeClock, FakeProvider
from .fixtures import FIXTURES
from .harness import FRAMEWORKS, login, site


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_disconnect_revokes_where_the_provider_can(framework: str, fake: FakeProvider) -> None:
    fake.clock = FakeClock()
    fake.reset("discord")
    with site(framework, fake, FIXTURES["discord"]) as app:
        login(app, fake)
        answer = app.request("DELETE", "/auth/connections/discord")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"connection_id": "discord", "revoked": True}
        assert fake.count("discord", "revoke") == 1
        assert app.get("/auth/connections/discord/credentials").status_code == 404


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_disconnect_without_revocation_warns(
    framework: str, fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake.clock = FakeClock()
    fake.reset("github")
    with site(framework, fake, FIXTURES["github"]) as app:
        login(app, fake)
        with caplog.at_level(logging.WARNING, logger="oauth_vault_mw"):
            answer = app.request("DELETE", "/auth/connections/github")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"connection_id": "github", "revoked": False}
        assert fake.count("github", "revoke") == 0
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("connection=github has no revocation endpoint" in m for m in warned), warned
        assert app.get("/auth/connections/github/credentials").status_code == 404


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_token_in_an_identity_url_stays_out_of_http_logs(
    framework: str, fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """HubSpot's token information endpoint names the access token in its path; httpx logs
    every request's URL at INFO: that line must not carry the token."""
    fake.clock = FakeClock()
    fake.reset("hubspot")
    with site(framework, fake, FIXTURES["hubspot"]) as app:
        with caplog.at_level(logging.INFO, logger="httpx"):
            login(app, fake)
        token = fake.grants("hubspot")[-1].latest_access
        lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
        assert any("access-tokens/[token]" in line for line in lines), lines
        assert not [line for line in lines if token in line]
