"""Helpers for the ``oauth-vault`` command line tests: its environment, a subprocess runner.

The dev-provider fixtures come from ``tests/integration/conftest.py`` (imported, so the sweep
tests here run against the same real provider as the integration suite).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (  # noqa: F401 - fixtures
    conformance_ports,
    harness,
    provider,
    server_port,
    unique_user,
)

ROOT = Path(__file__).resolve().parents[2]


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def cli_env(
    storage_url: str, keys: list[str], connections: list[dict[str, Any]], **extra: str
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "OAUTH_VAULT_SECRET_KEY": "k" * 40,
        "OAUTH_VAULT_ENCRYPTION_KEYS": ",".join(keys),
        "OAUTH_VAULT_BASE_URL": "http://127.0.0.1:8000",
        "OAUTH_VAULT_STORAGE_URL": storage_url,
        "OAUTH_VAULT_CONNECTIONS": json.dumps(connections),
    }
    env.update(extra)
    return env


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oauth_vault_mw", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'vault.db'}"
