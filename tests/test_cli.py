"""The ``oauth-vault`` command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oauth_vault_mw import Settings
from oauth_vault_mw.core.crypto import Sealer
from oauth_vault_mw.core.model import CredentialKey, TokenSet
from oauth_vault_mw.core.records import seal_record
from oauth_vault_mw.storage.sql import SQLStorage


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "OAUTH_VAULT_SECRET_KEY": "k" * 40,
        "OAUTH_VAULT_ENCRYPTION_KEYS": base64.b64encode(os.urandom(32)).decode(),
        "OAUTH_VAULT_BASE_URL": "http://127.0.0.1:8000",
        "OAUTH_VAULT_STORAGE_URL": f"sqlite:///{tmp_path / 'vault.db'}",
        "OAUTH_VAULT_CONNECTIONS": json.dumps(
            [{"id": "demo", "issuer": "http://127.0.0.1:9", "client_id": "c", "client_secret": "s"}]
        ),
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oauth_vault_mw", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_db_init_is_idempotent(env: dict[str, str]) -> None:
    for _ in range(2):
        done = run(env, "db", "init")
        assert done.returncode == 0, done.stderr
        assert "schema ready" in done.stdout
    assert run(env, "db", "upgrade").returncode == 0


def test_misconfiguration_is_one_line_naming_the_setting(env: dict[str, str]) -> None:
    env["OAUTH_VAULT_ENCRYPTION_KEYS"] = base64.b64encode(b"short").decode()
    done = run(env, "db", "init")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("oauth-vault: OAUTH_VAULT_ENCRYPTION_KEYS:")


def test_credentials_show_prints_no_secret(env: dict[str, str]) -> None:
    settings = Settings.from_env(env)
    storage = SQLStorage(settings.storage_url)
    storage.setup()
    key = CredentialKey("demo", "user-1")
    now = time.time()
    tokens = TokenSet("AT-secret", "RT-secret", expires_at=now + 600, obtained_at=now,
                      scope="openid email")  # fmt: skip
    storage.save_credential(seal_record(Sealer(settings.encryption_keys), key, tokens, now=now), 0)
    storage.close()
    done = run(env, "credentials", "show", "demo", "user-1")
    assert done.returncode == 0, done.stderr
    assert "status: active" in done.stdout
    assert "scope: openid email" in done.stdout
    assert "secret" not in done.stdout
    missing = run(env, "credentials", "show", "demo", "nobody")
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1
