"""The authenticated client's base URL: a preset's ``api_base_url`` (template variables
filled), a connection's own, or a login's kept field (Salesforce ``instance_url``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from oauth_vault_mw.core.connections import ConnectionConfig, parse_connection
from oauth_vault_mw.core.errors import ConfigurationError
from oauth_vault_mw.core.preset_table import PRESETS
from oauth_vault_mw.core.presets import check_table


def conn(**fields: Any) -> ConnectionConfig:
    return parse_connection(0, {"id": "c", "client_id": "id", "client_secret": "s", **fields})


def test_a_preset_sets_the_api_base_url() -> None:
    assert conn(preset="github").api_base({}) == "https://api.github.com"
    assert conn(preset="google").api_base({}) == "https://www.googleapis.com"
    assert conn(preset="microsoft").api_base({}) == "https://graph.microsoft.com/v1.0"


def test_template_variables_fill_the_api_base_url() -> None:
    assert conn(preset="gitlab").api_base({}) == "https://gitlab.com/api/v4"
    own = conn(preset="gitlab", params={"base_url": "https://git.example.com"})
    assert own.api_base({}) == "https://git.example.com/api/v4"


def test_the_connection_setting_overrides_the_preset() -> None:
    own = conn(preset="github", api_base_url="https://ghe.example.com/api/v3")
    assert own.api_base({}) == "https://ghe.example.com/api/v3"


def test_the_connection_setting_is_checked_like_any_url() -> None:
    with pytest.raises(ConfigurationError, match=r"api_base_url: plain http"):
        conn(preset="github", api_base_url="http://api.example.com")


def test_no_base_url_without_preset_or_setting() -> None:
    plain = conn(issuer="https://id.example.com")
    assert plain.api_base({"instance_url": "https://x.example.com"}) is None


def test_salesforce_takes_the_base_url_from_the_login_kept_instance_url() -> None:
    sf = conn(preset="salesforce")
    assert sf.api_base({"instance_url": "https://acme.my.salesforce.com"}) == (
        "https://acme.my.salesforce.com"
    )
    assert sf.api_base({}) is None
    assert sf.api_base({"instance_url": "http://evil.example.com"}) is None, "https only"
    assert sf.api_base({"instance_url": 7}) is None
    own = conn(preset="salesforce", api_base_url="https://fixed.my.salesforce.com")
    assert own.api_base({"instance_url": "https://acme.my.salesforce.com"}) == (
        "https://fixed.my.salesforce.com"
    )


def test_the_table_refuses_an_api_base_url_from_a_field_it_does_not_keep() -> None:
    bad = replace(PRESETS["github"], api_base_url=None, api_base_url_from_extra="instance_url")
    with pytest.raises(ValueError, match="api_base_url_from_extra"):
        check_table([bad])
