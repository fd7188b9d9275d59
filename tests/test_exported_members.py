"""The public API is what ``__all__`` says (as httpx's ``tests/test_exported_members.py``)."""

from __future__ import annotations

import ast
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import oauth_vault_mw
import oauth_vault_mw.cli
import oauth_vault_mw.fastapi
import oauth_vault_mw.flask
import oauth_vault_mw.jobs
import oauth_vault_mw.metrics
import oauth_vault_mw.starlette
import oauth_vault_mw.storage
import oauth_vault_mw.testing
from oauth_vault_mw.core import errors as _exceptions

PUBLIC_PACKAGES = [
    oauth_vault_mw,
    oauth_vault_mw.cli,
    oauth_vault_mw.fastapi,
    oauth_vault_mw.flask,
    oauth_vault_mw.jobs,
    oauth_vault_mw.metrics,
    oauth_vault_mw.starlette,
    oauth_vault_mw.storage,
    oauth_vault_mw.testing,
]
INTERNAL = {"core"}
"""Top-level packages without a leading underscore that are not public API: ``core`` holds
the pure decisions; what users need of it, ``oauth_vault_mw`` re-exports."""


def _ids(module: ModuleType) -> str:
    return module.__name__


def _defined_here(package: ModuleType) -> set[str]:
    """Names the module's own source binds at top level, other than by an import."""
    assert package.__file__ is not None
    tree = ast.parse(Path(package.__file__).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _owned(package: ModuleType, name: str, value: object) -> bool:
    """A member of the package itself: defined in its source, or a class or function of
    one of its modules (not one it imports from elsewhere to use)."""
    if name in _defined_here(package):
        return True
    module = getattr(value, "__module__", None)
    prefix = package.__name__
    return isinstance(module, str) and (module == prefix or module.startswith(prefix + "."))


def test_every_public_package_is_listed() -> None:
    found = {
        name
        for _, name, _ in pkgutil.iter_modules(oauth_vault_mw.__path__)
        if not name.startswith("_")
    }
    listed = {p.__name__.removeprefix("oauth_vault_mw.") for p in PUBLIC_PACKAGES[1:]}
    assert sorted(found - INTERNAL) == sorted(listed)


@pytest.mark.parametrize("package", PUBLIC_PACKAGES, ids=_ids)
def test_every_exported_name_exists(package: ModuleType) -> None:
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert missing == []


def _isort_order(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps ``__all__`` in: CONSTANTS, then Classes, then the rest."""
    if name.upper() == name:
        return 0, name
    return (1 if name[:1].isupper() else 2), name


@pytest.mark.parametrize("package", PUBLIC_PACKAGES, ids=_ids)
def test_all_is_sorted_without_duplicates(package: ModuleType) -> None:
    assert package.__all__ == sorted(set(package.__all__), key=_isort_order)


@pytest.mark.parametrize("package", PUBLIC_PACKAGES, ids=_ids)
def test_every_public_member_is_exported(package: ModuleType) -> None:
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and value is not annotations  # the __future__ feature
        and _owned(package, name, value)
    }
    assert sorted(public - set(package.__all__)) == []


def test_every_error_is_exported() -> None:
    defined = {
        name
        for name, value in vars(_exceptions).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == _exceptions.__name__
    }
    assert defined, "the error module defines classes"
    assert sorted(defined - set(oauth_vault_mw.__all__)) == []
    assert sorted(set(_exceptions.__all__) - set(oauth_vault_mw.__all__)) == []
    for name in defined:
        assert getattr(oauth_vault_mw, name) is getattr(_exceptions, name)


def test_every_error_derives_from_the_root() -> None:
    for name in _exceptions.__all__:
        error = getattr(_exceptions, name)
        assert issubclass(error, oauth_vault_mw.VaultError)
        assert error.error
        assert 400 <= error.status_code < 600
