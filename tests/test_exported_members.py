"""The public API is what ``__all__`` says (as httpx's ``tests/test_exported_members.py``)."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

import oauth_vault_mw
import oauth_vault_mw.flask
import oauth_vault_mw.starlette
from oauth_vault_mw.core import errors as _exceptions

PUBLIC_PACKAGES = [oauth_vault_mw, oauth_vault_mw.starlette, oauth_vault_mw.flask]


def _ids(module: ModuleType) -> str:
    return module.__name__


@pytest.mark.parametrize("package", PUBLIC_PACKAGES, ids=_ids)
def test_every_exported_name_exists(package: ModuleType) -> None:
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert missing == []


@pytest.mark.parametrize("package", PUBLIC_PACKAGES, ids=_ids)
def test_all_is_sorted_without_duplicates(package: ModuleType) -> None:
    assert package.__all__ == sorted(set(package.__all__))


@pytest.mark.parametrize("package", PUBLIC_PACKAGES, ids=_ids)
def test_every_public_member_is_exported(package: ModuleType) -> None:
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and value is not annotations  # the __future__ feature
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
