"""Helpers for the ``oauth-vault`` command line tests: its environment, a subprocess runner.

The sweep tests run against the suite's development provider (``tests/support/suite.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
