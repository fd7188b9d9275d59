"""Identifiers checked with a pattern refuse a trailing newline: ``$`` matches before one,
so every pattern ends in ``\\Z`` (or is matched whole). A user id, grant segment, client name,
scope or account id with ``%0A`` at its end is a 400, not another key in storage."""

from __future__ import annotations

import pytest

from oauth_vault_mw.core.accounts import account_id, account_param
from oauth_vault_mw.core.errors import BadRequest, VaultError
from oauth_vault_mw.core.grants import pattern_matches
from oauth_vault_mw.core.identity import check_user_id
from oauth_vault_mw.core.scopes import parse_scope_param
from oauth_vault_mw.core.service import check_client_name


def test_a_user_id_with_a_trailing_newline_is_refused() -> None:
    assert check_user_id("u-42", source="user id") == "u-42"
    with pytest.raises(VaultError):
        check_user_id("u-42\n", source="user id")


def test_a_resource_segment_with_a_trailing_newline_matches_no_grant() -> None:
    resource = "Connections/demo/Users/u-42/Credentials"
    assert pattern_matches("Connections/*/Users/*/Credentials", resource)
    assert not pattern_matches(
        "Connections/*/Users/*/Credentials", resource.replace("u-42", "u-42\n")
    )
    assert not pattern_matches("Connections/*/Users/*/Credentials\n", resource)


def test_client_names_scopes_and_account_ids_with_a_trailing_newline_are_refused() -> None:
    assert check_client_name("reports") == "reports"
    assert parse_scope_param("drive.file") == ("drive.file",)
    one = account_id("demo", "alice")
    for call in (
        lambda: check_client_name("reports\n"),
        lambda: parse_scope_param("drive.file\n"),
        lambda: account_param(one + "\n"),
    ):
        with pytest.raises(BadRequest):
            call()
