"""``oauth-vault credentials refresh`` against the real development provider.

Users log in through the app's vault on a SQLite file; the CLI then runs as a subprocess on
that same file, as an operator's cron job would beside the app.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.core.model import ACTIVE, REAUTHENTICATION_REQUIRED, CredentialKey, TokenSet
from oauth_vault_mw.core.records import open_record
from tests.support.oidc_provider import DevProvider
from tests.support.suite import settings_for, vault_login

from .conftest import cli_env, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
async def vault(provider: DevProvider, tmp_path: Path) -> AsyncIterator[AsyncVault]:
    """The app's vault; the CLI runs beside it on the same SQLite file."""
    app_vault = AsyncVault(settings_for(provider, storage_url=f"sqlite:///{tmp_path / 'vault.db'}"))
    await app_vault.startup()
    yield app_vault
    await app_vault.aclose()


def env_for(vault: AsyncVault) -> dict[str, str]:
    settings = vault.settings
    connections = [
        {
            "id": c.id,
            "issuer": c.issuer,
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "scopes": list(c.scopes),
        }
        for c in settings.connections
    ]
    keys = [base64.b64encode(k).decode() for k in settings.encryption_keys]
    return cli_env(settings.storage_url, keys, connections, OAUTH_VAULT_PROVIDER_TIMEOUT="2")


async def log_in(vault: AsyncVault, login: str, connection_id: str = "demo") -> CredentialKey:
    """A whole login in its own browser; returns the credential's key."""
    async with httpx.AsyncClient() as browser:
        user_id = await vault_login(vault, browser, login, connection_id)
    return CredentialKey(connection_id, user_id)


async def read(vault: AsyncVault, key: CredentialKey) -> tuple[int, TokenSet]:
    record = await vault.storage.get_credential(key)
    assert record is not None
    return record.version, open_record(vault.sealer, record)


def no_token_in(done: subprocess.CompletedProcess[str], *sets: TokenSet) -> None:
    text = done.stdout + done.stderr
    for t in sets:
        assert t.access_token not in text
        assert t.refresh_token is None or t.refresh_token not in text
    assert "-secret" not in text


async def test_sweep_refreshes_expiring_credentials_and_marks_refused_grants(
    vault: AsyncVault, provider: DevProvider, unique_user: Callable[[], str]
) -> None:
    logins = [unique_user() for _ in range(4)]
    keys = [await log_in(vault, login) for login in logins[:3]]
    other = await log_in(vault, logins[3], "second")
    revoked = keys[2]
    assert provider.revoke_grants(logins[2]) >= 1
    before = {k: await read(vault, k) for k in [*keys, other]}
    stats = provider.stats()

    # Every dev-provider token lives 4 s: all expire within 10 minutes.
    done = run_cli(env_for(vault), "credentials", "refresh", "--expiring-within", "10m",
                   "--concurrency", "4", "--connection", "demo")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "refreshed 2, needs re-authentication 1, failed 0, skipped (already fresh) 0\n"
    )
    progress = done.stderr.splitlines()
    assert progress
    assert all(line.startswith("credentials refresh: ") for line in progress)
    assert progress[-1] == "credentials refresh: 100% (3/3)"

    after_stats = provider.stats()
    assert after_stats["refresh_grants"] - stats["refresh_grants"] == 2
    refused = after_stats["refresh_errors"].get("invalid_grant", 0)
    assert refused - stats["refresh_errors"].get("invalid_grant", 0) == 1
    for key in keys[:2]:
        version, tokens = await read(vault, key)
        old_version, old = before[key]
        assert version == old_version + 1
        assert tokens.status == ACTIVE
        assert tokens.access_token != old.access_token
        assert tokens.refresh_token is not None
        assert tokens.refresh_token != old.refresh_token  # rotated
        assert (tokens.expires_at or 0) > (old.expires_at or 0)
    assert (await read(vault, revoked))[1].status == REAUTHENTICATION_REQUIRED
    assert await read(vault, other) == before[other]  # --connection demo
    no_token_in(done, *(t for _, t in before.values()))

    # The marked credential is left alone; the other connection is swept too now.
    again = run_cli(env_for(vault), "credentials", "refresh", "--expiring-within", "600",
                    "--quiet")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout == (
        "refreshed 3, needs re-authentication 0, failed 0, skipped (already fresh) 0\n"
    )
    assert again.stderr == ""
    assert provider.stats()["refresh_grants"] - after_stats["refresh_grants"] == 3
    assert (await read(vault, other))[1].access_token != before[other][1].access_token


async def test_sweep_with_the_provider_down_fails_with_exit_1(
    vault: AsyncVault, provider: DevProvider, unique_user: Callable[[], str]
) -> None:
    keys = [await log_in(vault, unique_user()) for _ in range(2)]
    before = {k: await read(vault, k) for k in keys}
    provider.fail(status=503, count=1000)
    try:
        done = run_cli(env_for(vault), "credentials", "refresh", "--expiring-within",
                       "1h", "-q")  # fmt: skip
    finally:
        provider.clear_failures()
    assert done.returncode == 1
    assert done.stdout == (
        "refreshed 0, needs re-authentication 0, failed 2, skipped (already fresh) 0\n"
    )
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("oauth-vault: 2 credentials failed: 2 could not be refreshed")
    for key in keys:  # untouched: the request path serves them while valid, then retries
        assert await read(vault, key) == before[key]
    no_token_in(done, *(t for _, t in before.values()))
