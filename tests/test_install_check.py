"""``scripts/install-check`` (run by ./scripts/test after pytest) covers every extra a user
installs, every example and every storage backend: a new extra or example that it forgot
fails here, in seconds, rather than going unchecked."""

from __future__ import annotations

import importlib
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# a dynamic import: mypy checks scripts/install_check.py as a file of its own
VENVS: Any = importlib.import_module("scripts.install_check").VENVS


def test_install_check_covers_every_user_extra() -> None:
    extras = set(metadata("oauth-vault-mw").get_all("Provides-Extra") or [])
    # sql adds nothing (SQLAlchemy is a core dependency); all and dev are unions
    assert {venv.extra for venv in VENVS} == extras - {"sql", "all", "dev"}


def test_install_check_serves_every_example_on_every_backend() -> None:
    examples = {path.parent.name.removesuffix("_app") for path in ROOT.glob("examples/*/app.py")}
    served = {name.split()[0] for venv in VENVS for (name, _command), _storage in venv.runs}
    assert served == examples
    assert {storage for venv in VENVS for _server, storage in venv.runs} == {
        "sqlite",
        "postgresql",
        "redis",
    }
