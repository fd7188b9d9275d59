"""The refresh token never leaves the vault: not in a response, header, log, exception or repr.

One scenario walks every route and failure path while recording everything that leaves the
library; every refresh token the vault ever stored (and the client secret and keys) is then
searched for in that record.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable

import httpx
import pytest

from oauth_vault_mw import VaultError
from oauth_vault_mw.core.records import open_record
from oauth_vault_mw.storage import AsyncStorageAdapter, MemoryStorage
from tests.support.suite import BASE, TOKEN_TTL

from .conftest import Harness

pytestmark = pytest.mark.integration


async def test_no_refresh_token_in_any_output(
    harness: Harness, unique_user: Callable[[], str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = harness
    seen: list[str] = []
    refresh_tokens: set[str] = set()
    storage = h.vault.storage
    assert isinstance(storage, AsyncStorageAdapter)
    assert isinstance(storage.sync, MemoryStorage)

    async def record(response: httpx.Response) -> None:
        await response.aread()
        seen.append(response.text)
        seen.extend(f"{k}: {v}" for k, v in response.headers.multi_items())

    def harvest() -> None:
        assert isinstance(storage, AsyncStorageAdapter)
        assert isinstance(storage.sync, MemoryStorage)
        for rec in storage.sync.all_credentials():
            seen.append(repr(rec))
            tokens = open_record(h.vault.sealer, rec)
            seen.append(repr(tokens))
            if tokens.refresh_token:
                refresh_tokens.add(tokens.refresh_token)

    h.client.event_hooks["response"] = [record]
    login = unique_user()
    await h.login(user=login, return_to="/profile/demo")
    harvest()
    await h.login("second", unique_user(), path="connect")
    harvest()
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    for path in ("/auth/connections/demo/credentials", "/profile/demo", "/profile/second"):
        await h.client.get(path)
    creds = await h.vault.get_connection_credentials("demo", user_id, force_refresh=True)
    seen.extend([repr(creds), str(creds), repr(h.vault), repr(h.vault.settings)])
    harvest()
    await asyncio.sleep(TOKEN_TTL / 2 + 0.5)
    await asyncio.gather(*(h.client.get("/profile/demo") for _ in range(20)))  # refresh
    harvest()
    h.provider.fail(status=503, count=50)
    try:
        try:
            await h.vault.get_connection_credentials("second", user_id, force_refresh=True)
            await asyncio.sleep(TOKEN_TTL + 0.2)
            await h.client.get("/auth/connections/second/credentials")  # 503
            await h.vault.get_connection_credentials("second", user_id)
        except VaultError as exc:
            seen.extend([str(exc), repr(exc), str(exc.to_dict())])
    finally:
        h.provider.clear_failures()
    h.provider.revoke_grants(login)
    try:
        await h.vault.get_connection_credentials("demo", user_id, force_refresh=True)
    except VaultError as exc:  # ReauthenticationRequired
        seen.extend([str(exc), repr(exc), str(exc.to_dict()), repr(exc.__context__)])
    await h.client.get("/auth/connections/demo/credentials")  # 409
    # another account of "second": listed, read by id, made the default, removed
    start = await h.client.get("/auth/connect/second?account=new")
    await h.client.get(await h.authorize(start.headers["location"], unique_user()))
    harvest()
    accounts = (await h.client.get("/auth/me")).json()["connections"][-1]["accounts"]
    assert [a["default"] for a in accounts] == [True, False]
    other = accounts[-1]["account_id"]
    await h.client.get(f"/auth/connections/second/credentials?account={other}")
    await h.client.put(
        f"/auth/connections/second/default?account={other}", headers={"Origin": BASE}
    )
    harvest()
    await h.client.delete(f"/auth/connections/second?account={other}", headers={"Origin": BASE})
    await h.client.delete("/auth/connections/second", headers={"Origin": BASE})
    await h.client.post("/auth/logout", headers={"Origin": BASE})
    seen.extend(r.getMessage() for r in caplog.records)
    seen.extend(repr(r.args) for r in caplog.records)
    seen.extend(str(r.exc_info) for r in caplog.records if r.exc_info)

    assert len(refresh_tokens) >= 3, "the scenario must have stored rotated refresh tokens"
    secrets = set(refresh_tokens)
    secrets.update(c.client_secret for c in h.vault.settings.connections)
    secrets.update(base64.b64encode(k).decode() for k in h.vault.settings.encryption_keys)
    secrets.add(h.vault.settings.secret_key)
    text = "\n".join(seen)
    assert len(seen) > 50
    for secret in secrets:
        assert secret not in text
