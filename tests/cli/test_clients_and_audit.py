"""``oauth-vault clients ...`` and ``oauth-vault audit``, run as a subprocess on SQLite."""

from __future__ import annotations

import asyncio

from oauth_vault_mw import AsyncVault, NotAuthenticated, Settings
from oauth_vault_mw._async.service import AsyncServiceAccess
from oauth_vault_mw.core.access_keys import KEY_PREFIX, parse_access_key
from tests.support.suite import new_key

from .conftest import cli_env, run_cli

GRANT = "Connections/*/Users/*/Credentials:connections:credentials:read"
CONNECTIONS = [{"id": "demo", "issuer": "http://127.0.0.1:9", "client_id": "c",
                "client_secret": "s"}]  # fmt: skip


def test_client_lifecycle(sqlite_url: str) -> None:
    env = cli_env(sqlite_url, [new_key()], CONNECTIONS)
    created = run_cli(env, "clients", "create", "reports", "--grant", GRANT)
    assert created.returncode == 0, created.stderr
    first = created.stdout.strip()
    assert first.startswith(KEY_PREFIX)
    assert created.stdout == first + "\n"  # the key alone on its line
    parsed = parse_access_key(first)
    assert parsed is not None
    second = run_cli(env, "clients", "add-key", "reports").stdout.strip()
    assert parse_access_key(second) is not None
    assert second != first

    listing = run_cli(env, "clients", "list")
    assert listing.returncode == 0
    assert "reports (active)" in listing.stdout
    assert f"grant {GRANT}" in listing.stdout
    assert f"key {parsed[0]} (active)" in listing.stdout
    assert first not in listing.stdout
    assert second not in listing.stdout
    # The secret is everything after "ovsk_<16 hex>_" (it may itself hold "_").
    assert first[len(KEY_PREFIX) + 17 :] not in listing.stdout
    assert second[len(KEY_PREFIX) + 17 :] not in listing.stdout

    # The keys authenticate until revoked, one by one, then all with the client.
    settings = Settings.from_env(env)

    async def check(key: str) -> bool:
        vault = AsyncVault(settings)
        service = AsyncServiceAccess(vault)
        try:
            await service.authenticate(f"Bearer {key}")
        except NotAuthenticated:
            return False
        finally:
            await service.close()
            await vault.aclose()
        return True

    assert asyncio.run(check(first))
    assert run_cli(env, "clients", "revoke-key", "reports", parsed[0]).returncode == 0
    assert not asyncio.run(check(first))
    assert asyncio.run(check(second))
    again = run_cli(env, "clients", "revoke-key", "reports", parsed[0])
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1
    assert run_cli(env, "clients", "revoke", "reports").returncode == 0
    assert not asyncio.run(check(second))
    assert "reports (revoked)" in run_cli(env, "clients", "list").stdout

    audit = run_cli(env, "audit", "--since", "1h")
    assert audit.returncode == 0, audit.stderr
    lines = audit.stdout.splitlines()
    assert any("client.created" in line for line in lines)
    assert any("key.revoked" in line for line in lines)
    assert any("key.used" in line and "rejected" in line for line in lines)
    stamps = [line.split(" ", 1)[0] for line in lines]
    assert stamps == sorted(stamps)  # newest last
    assert first not in audit.stdout
    assert second not in audit.stdout


def test_bad_input_is_one_line(sqlite_url: str) -> None:
    env = cli_env(sqlite_url, [new_key()], CONNECTIONS)
    for args in (
        ("clients", "create", "x"),  # no grant
        ("clients", "create", "x", "--grant", "Connections/../x:connections:credentials:read"),
        ("clients", "create", "bad name!", "--grant", GRANT),
        ("clients", "add-key", "nobody"),
        ("clients", "revoke", "nobody"),
        ("audit", "--since", "forever"),
    ):
        done = run_cli(env, *args)
        assert done.returncode == 1, args
        assert done.stderr.count("\n") == 1, (args, done.stderr)
        assert done.stdout == ""
    assert run_cli(env, "clients", "create", "x", "--grant", GRANT).returncode == 0
    dup = run_cli(env, "clients", "create", "x", "--grant", GRANT)
    assert dup.returncode == 1
    assert "exists" in dup.stderr
