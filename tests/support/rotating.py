"""A vault on an in-process token endpoint that rotates every refresh token, for the sweep
tests: the endpoint, the settings, credentials seeded to expire, and the check that each was
refreshed once with its rotated refresh token stored."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from urllib.parse import parse_qs

import httpx

from oauth_vault_mw import AsyncVault, Settings
from oauth_vault_mw.core.model import CredentialKey, TokenSet
from oauth_vault_mw.core.records import open_record, seal_record
from oauth_vault_mw.storage import AsyncStorage

TOKEN_URL = "http://127.0.0.1:9/token"


class RotatingTokenEndpoint:
    """Answers each refresh grant ``delay`` s later with a new access token and a rotated
    refresh token (``rt-new-<n>``); ``grants`` lists the refresh tokens it was sent."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.grants: list[str] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.grants.append(parse_qs(request.content.decode())["refresh_token"][0])
        await asyncio.sleep(self.delay)
        n = len(self.grants)
        body = {"access_token": f"at-new-{n}", "refresh_token": f"rt-new-{n}", "expires_in": 3600}
        return httpx.Response(200, json={**body, "token_type": "Bearer"})


def settings(storage_url: str) -> Settings:
    """Fresh keys, one connection ``demo`` whose token endpoint is :data:`TOKEN_URL`."""
    return Settings.from_mapping(
        {
            "secret_key": base64.b64encode(os.urandom(32)).decode(),
            "encryption_keys": base64.b64encode(os.urandom(32)).decode(),
            "base_url": "http://127.0.0.1:8000",
            "storage_url": storage_url,
            "connections": [
                {
                    "id": "demo",
                    "client_id": "client",
                    "client_secret": "secret",
                    "authorize_url": "http://127.0.0.1:9/authorize",
                    "token_url": TOKEN_URL,
                    "userinfo_url": "http://127.0.0.1:9/userinfo",
                }
            ],
        }
    )


async def seed_expiring(
    vault: AsyncVault, storage: AsyncStorage, count: int
) -> list[CredentialKey]:
    """``count`` credentials (``user-000``...) expiring in a minute, refresh tokens ``rt-<i>``."""
    now = time.time()
    keys = [CredentialKey("demo", f"user-{i:03d}") for i in range(count)]
    for i, key in enumerate(keys):
        tokens = TokenSet(f"at-{i}", f"rt-{i}", expires_at=now + 60, obtained_at=now - 3000)
        assert await storage.save_credential(seal_record(vault.sealer, key, tokens, now=now), 0)
    return keys


async def assert_rotated_once_each(
    vault: AsyncVault,
    storage: AsyncStorage,
    endpoint: RotatingTokenEndpoint,
    keys: list[CredentialKey],
) -> None:
    """Each seeded refresh token sent once; each record saved once more with a rotated
    refresh token, its lease let go."""
    assert sorted(endpoint.grants) == sorted(f"rt-{i}" for i in range(len(keys)))
    for key in keys:
        record = await storage.get_credential(key)
        assert record is not None
        assert record.version == 2
        assert (open_record(vault.sealer, record).refresh_token or "").startswith("rt-new-")
        assert await storage.acquire_lease(key, "after", 10, time.time())
