"""What the example apps' own tests share: an example configured from the environment, as in
production, on the library's testing provider (``oauth_vault_provider``, a pytest fixture of
``oauth_vault_mw.testing``)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from oauth_vault_mw.testing import DEFAULT_BASE_URL, OpenIDProvider


@pytest.fixture
def load_example(
    oauth_vault_provider: OpenIDProvider, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], ModuleType]]:
    """``load_example("examples.flask_app.app")``: the module, imported afresh with the
    ``OAUTH_VAULT_*`` environment of one connection ``demo`` at the testing provider."""
    for key, value in oauth_vault_provider.environ("demo", base_url=DEFAULT_BASE_URL).items():
        monkeypatch.setenv(key, value)
    loaded: list[ModuleType] = []

    def load(name: str) -> ModuleType:
        sys.modules.pop(name, None)
        module = importlib.import_module(name)
        loaded.append(module)
        return module

    yield load
    for module in loaded:
        extensions = getattr(getattr(module, "app", None), "extensions", {})
        if "oauth_vault" in extensions:  # Flask: the extension's vault is the app's to close
            extensions["oauth_vault"].close()
