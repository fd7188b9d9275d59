"""``oauth-vault credentials refresh`` against the real development provider.

Users log in through an in-process app on a SQLite file; the CLI then runs as a subprocess
on that same file, as an operator's cron job would beside the app.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from oauth_vault_mw.core.model import ACTIVE, REAUTHENTICATION_REQUIRED, CredentialKey, TokenSet
from oauth_vault_mw.core.records import open_record
from oauth_vault_mw.storage import AsyncStorage, async_storage_from_url
from tests.integration.conftest import BASE, Harness
from tests.support.oidc_provider import callback_path, complete_login_async

from .conftest import cli_env, run_cli

pytestmark = pytest.mark.integration

SCOPES = ["openid", "profile", "email", "offline_access"]


@pytest.fixture
def storage(tmp_path: Path) -> AsyncStorage:
    """The harness's vault and the CLI share this file."""
    return async_storage_from_url(f"sqlite:///{tmp_path / 'vault.db'}")


def env_for(h: Harness, tmp_path: Path) -> dict[str, str]:
    connections = [
        {"id": cid, "issuer": h.provider.issuer, "client_id": cid,
         "client_secret": f"{cid}-secret", "scopes": SCOPES}
        for cid in ("demo", "second")
    ]  # fmt: skip
    keys = [base64.b64encode(k).decode() for k in h.vault.settings.encryption_keys]
    return cli_env(f"sqlite:///{tmp_path / 'vault.db'}", keys, connections,
                   OAUTH_VAULT_PROVIDER_TIMEOUT="2")  # fmt: skip


async def log_in(h: Harness, login: str, connection_id: str = "demo") -> CredentialKey:
    """A whole login in its own browser and app client; returns the credential's key."""
    transport = httpx.ASGITransport(app=h.app)
    async with (
        httpx.AsyncClient(transport=transport, base_url=BASE) as client,
        httpx.AsyncClient() as browser,
    ):
        start = await client.get(f"/auth/login/{connection_id}?return_to=/")
        assert start.status_code == 302, start.text
        final = await complete_login_async(browser, start.headers["location"], login=login)
        done = await client.get(callback_path(final, BASE))
        assert done.status_code == 303, done.text
        user_id = (await client.get("/auth/me")).json()["user_id"]
    return CredentialKey(connection_id, user_id)


async def read(h: Harness, key: CredentialKey) -> tuple[int, TokenSet]:
    record = await h.vault.storage.get_credential(key)
    assert record is not None
    return record.version, open_record(h.vault.sealer, record)


def no_token_in(done: subprocess.CompletedProcess[str], *sets: TokenSet) -> None:
    text = done.stdout + done.stderr
    for t in sets:
        assert t.access_token not in text
        assert t.refresh_token is None or t.refresh_token not in text
    assert "-secret" not in text


async def test_sweep_refreshes_expiring_credentials_and_marks_refused_grants(
    harness: Harness, tmp_path: Path, unique_user: Callable[[], str]
) -> None:
    h = harness
    logins = [unique_user() for _ in range(4)]
    keys = [await log_in(h, login) for login in logins[:3]]
    other = await log_in(h, logins[3], "second")
    revoked = keys[2]
    assert h.provider.revoke_grants(logins[2]) >= 1
    before = {k: await read(h, k) for k in [*keys, other]}
    stats = h.provider.stats()

    # Every dev-provider token lives 4 s: all expire within 10 minutes.
    done = run_cli(env_for(h, tmp_path), "credentials", "refresh", "--expiring-within", "10m",
                   "--concurrency", "4", "--connection", "demo")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "refreshed 2, needs re-authentication 1, failed 0, skipped (already fresh) 0\n"
    )
    progress = done.stderr.splitlines()
    assert progress
    assert all(line.startswith("credentials refresh: ") for line in progress)
    assert progress[-1] == "credentials refresh: 100% (3/3)"

    after_stats = h.provider.stats()
    assert after_stats["refresh_grants"] - stats["refresh_grants"] == 2
    refused = after_stats["refresh_errors"].get("invalid_grant", 0)
    assert refused - stats["refresh_errors"].get("invalid_grant", 0) == 1
    for key in keys[:2]:
        version, tokens = await read(h, key)
        old_version, old = before[key]
        assert version == old_version + 1
        assert tokens.status == ACTIVE
        assert tokens.access_token != old.access_token
        assert tokens.refresh_token is not None
        assert tokens.refresh_token != old.refresh_token  # rotated
        assert (tokens.expires_at or 0) > (old.expires_at or 0)
    assert (await read(h, revoked))[1].status == REAUTHENTICATION_REQUIRED
    assert await read(h, other) == before[other]  # --connection demo
    no_token_in(done, *(t for _, t in before.values()))

    # The marked credential is left alone; the other connection is swept too now.
    again = run_cli(env_for(h, tmp_path), "credentials", "refresh", "--expiring-within", "600",
                    "--quiet")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout == (
        "refreshed 3, needs re-authentication 0, failed 0, skipped (already fresh) 0\n"
    )
    assert again.stderr == ""
    assert h.provider.stats()["refresh_grants"] - after_stats["refresh_grants"] == 3
    assert (await read(h, other))[1].access_token != before[other][1].access_token


async def test_sweep_with_the_provider_down_fails_with_exit_1(
    harness: Harness, tmp_path: Path, unique_user: Callable[[], str]
) -> None:
    h = harness
    keys = [await log_in(h, unique_user()) for _ in range(2)]
    before = {k: await read(h, k) for k in keys}
    h.provider.fail(status=503, count=1000)
    try:
        done = run_cli(env_for(h, tmp_path), "credentials", "refresh", "--expiring-within",
                       "1h", "-q")  # fmt: skip
    finally:
        h.provider.clear_failures()
    assert done.returncode == 1
    assert done.stdout == (
        "refreshed 0, needs re-authentication 0, failed 2, skipped (already fresh) 0\n"
    )
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("oauth-vault: 2 credentials failed: 2 could not be refreshed")
    for key in keys:  # untouched: the request path serves them while valid, then retries
        assert await read(h, key) == before[key]
    no_token_in(done, *(t for _, t in before.values()))
