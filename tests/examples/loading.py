"""Import an example app as its README runs it: from ``OAUTH_VAULT_*`` variables."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest

from tests.support.suite import BASE, new_key


@contextmanager
def examples_configured(
    monkeypatch: pytest.MonkeyPatch, connections: list[dict[str, Any]]
) -> Iterator[Callable[[str], ModuleType]]:
    """Set the environment for ``connections`` (memory storage, fresh keys) and yield a
    loader that imports an example module afresh; the modules are forgotten afterwards."""
    env = {
        "OAUTH_VAULT_SECRET_KEY": "e" * 48,
        "OAUTH_VAULT_ENCRYPTION_KEYS": new_key(),
        "OAUTH_VAULT_BASE_URL": BASE,
        "OAUTH_VAULT_STORAGE_URL": "memory://",
        "OAUTH_VAULT_CONNECTIONS": json.dumps(connections),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    loaded: list[str] = []

    def load(name: str) -> ModuleType:
        sys.modules.pop(name, None)
        loaded.append(name)
        return importlib.import_module(name)

    try:
        yield load
    finally:
        for name in loaded:
            sys.modules.pop(name, None)
