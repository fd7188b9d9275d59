"""The request path's user and credential in one storage read (``session_credentials``).

Pure vault level on memory and SQLite files, with a valid stored token: no provider is called.
The Starlette and Flask shells use this on a request with a session cookie; the conformance
and integration suites cover them end to end.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from oauth_vault_mw import (
    AsyncVault,
    CredentialKey,
    CredentialNotFound,
    Settings,
    UnknownConnection,
    Vault,
)
from oauth_vault_mw.core.cookies import hash_id
from oauth_vault_mw.core.model import TokenSet
from oauth_vault_mw.storage import AsyncStorage, Storage, async_storage_from_url, storage_from_url

CONNECTION: dict[str, Any] = {
    "id": "demo",
    "client_id": "c",
    "client_secret": "s",
    "authorize_url": "http://127.0.0.1:1/authorize",
    "token_url": "http://127.0.0.1:1/token",
    "userinfo_url": "http://127.0.0.1:1/userinfo",
}


def settings(url: str) -> Settings:
    return Settings.from_mapping({
        "secret_key": "k" * 48,
        "encryption_keys": base64.b64encode(os.urandom(32)).decode(),
        "base_url": "http://127.0.0.1:8000",
        "storage_url": url,
        "connections": [CONNECTION],
    })  # fmt: skip


def tokens() -> TokenSet:
    now = time.time()
    return TokenSet(access_token="at-" + secrets.token_urlsafe(16),
                    refresh_token="rt-" + secrets.token_urlsafe(16),
                    expires_at=now + 3600, obtained_at=now, scope="openid")  # fmt: skip


class Counting:
    """Counts the storage calls the vault makes; ``combined=False`` hides the optional
    ``get_session_credential`` (a backend without it, as Redis is)."""

    def __init__(self, inner: Any, *, combined: bool) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.combined = combined

    def __getattr__(self, name: str) -> Any:
        if name == "get_session_credential" and not self.combined:
            raise AttributeError(name)
        found = getattr(self.inner, name)
        if not callable(found):
            return found
        calls = self.calls

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return found(*args, **kwargs)

        return counted


def urls(tmp_path: Path) -> list[str]:
    return ["memory://", f"sqlite:///{tmp_path / 'vault.db'}"]


@pytest.mark.parametrize("combined", [True, False], ids=["one-read", "two-reads"])
@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_async_session_credentials(tmp_path: Path, backend: str, combined: bool) -> None:
    url = urls(tmp_path)[backend == "sqlite"]
    inner: AsyncStorage = async_storage_from_url(url)
    store = Counting(inner, combined=combined)
    vault = AsyncVault(settings(url), storage=store)
    await vault.startup()
    try:
        key = CredentialKey("demo", "alice")
        await vault.put_tokens(key, tokens())
        await inner.create_session(hash_id("sid-1"), "alice", time.time() + 60)
        await inner.create_session(hash_id("sid-2"), "bob", time.time() + 60)
        cookie = vault.cookies.session_cookie("sid-1").value
        store.calls.clear()

        found = await vault.session_credentials(cookie, "demo")
        assert found is not None
        assert found == ("alice", await vault.get_connection_credentials("demo", "alice"))
        reads = store.calls[: store.calls.index("get_credential")]  # before the check read
        expected = ["get_session_credential"] if combined else ["get_session"]
        assert reads == expected

        assert await vault.session_credentials(None, "demo") is None
        assert await vault.session_credentials("forged.value.sig", "demo") is None
        assert await vault.session_credentials(cookie[:-2] + "xx", "demo") is None
        other = vault.cookies.session_cookie("sid-unknown").value
        assert await vault.session_credentials(other, "demo") is None
        with pytest.raises(CredentialNotFound):  # bob's session, no credential of bob's
            await vault.session_credentials(vault.cookies.session_cookie("sid-2").value, "demo")
        with pytest.raises(UnknownConnection):
            await vault.session_credentials(cookie, "nowhere")
        assert await vault.session_credentials(other, "nowhere") is None  # no session first
    finally:
        await vault.aclose()


@pytest.mark.parametrize("combined", [True, False], ids=["one-read", "two-reads"])
def test_sync_session_credentials(tmp_path: Path, combined: bool) -> None:
    url = urls(tmp_path)[1]
    inner: Storage = storage_from_url(url)
    store = Counting(inner, combined=combined)
    vault = Vault(settings(url), storage=store)
    vault.startup()
    try:
        key = CredentialKey("demo", "alice")
        vault.put_tokens(key, tokens())
        inner.create_session(hash_id("sid-1"), "alice", time.time() + 60)
        cookie = vault.cookies.session_cookie("sid-1").value
        store.calls.clear()
        found = vault.session_credentials(cookie, "demo")
        assert found == ("alice", vault.get_connection_credentials("demo", "alice"))
        first = store.calls[0]
        assert first == ("get_session_credential" if combined else "get_session")
        inner.delete_session(hash_id("sid-1"))  # logged out elsewhere: seen at once
        assert vault.session_credentials(cookie, "demo") is None
    finally:
        vault.close()


def test_an_expired_session_reads_as_none_in_one_read(tmp_path: Path) -> None:
    store = storage_from_url(f"sqlite:///{tmp_path / 'v.db'}")
    store.setup()
    try:
        store.create_session("h", "alice", 100.0)
        reads = getattr(store, "get_session_credential")  # noqa: B009 - the optional method
        assert reads("h", 99.0, "demo") == ("alice", None)
        assert reads("h", 100.0, "demo") is None
    finally:
        store.close()
