"""Request-input checks of ``core/inputs.py`` that both shells share."""

from __future__ import annotations

import pytest

from oauth_vault_mw import ForbiddenOrigin
from oauth_vault_mw.core.http import ProviderResponse
from oauth_vault_mw.core.inputs import check_origin

BASE = "https://app.example.com"


@pytest.mark.parametrize(
    "origin", ["http://[", "https://[::1", "http://]x[", "https://app.example.com:99999999999"]
)
def test_malformed_origin_is_forbidden(origin: str) -> None:
    with pytest.raises(ForbiddenOrigin):
        check_origin(origin, BASE)


def test_same_origin_and_no_origin_pass() -> None:
    check_origin(BASE, BASE)
    check_origin(None, BASE)


def test_provider_response_repr_holds_no_body() -> None:
    body = b'{"access_token": "at-secret", "refresh_token": "rt-secret"}'
    text = repr(ProviderResponse(200, "application/json", body, None))
    assert "rt-secret" not in text
    assert "at-secret" not in text
    assert "200" in text
