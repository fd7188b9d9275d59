"""Presets: what well-known providers need beyond the OAuth/OIDC standards.

A preset returns the connection fields it implies; fields in the connection's own settings
win over the preset's. Add one by registering a function in :data:`PRESETS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigurationError

__all__ = ["PRESETS"]


def _google(raw: Mapping[str, Any]) -> dict[str, Any]:
    # Google only returns a refresh token with access_type=offline, and only again on a
    # later login with prompt=consent.
    return {
        "issuer": "https://accounts.google.com",
        "scopes": ["openid", "email", "profile"],
        "authorize_params": {"access_type": "offline", "prompt": "consent"},
        "revocation_url": "https://oauth2.googleapis.com/revoke",
        "token_endpoint_auth_method": "client_secret_post",
    }


def _github(raw: Mapping[str, Any]) -> dict[str, Any]:
    # OAuth apps get tokens that never expire and no refresh token; no OIDC, the account id
    # comes from the user API. GitHub's revocation is not RFC 7009, so none is configured.
    return {
        "authorize_url": "https://github.com/login/oauth/authorize",
        "token_url": "https://github.com/login/oauth/access_token",
        "userinfo_url": "https://api.github.com/user",
        "scopes": ["read:user"],
        "default_expires_in": None,
        "subject_claim": "id",
        "token_endpoint_auth_method": "client_secret_post",
    }


def _microsoft(raw: Mapping[str, Any]) -> dict[str, Any]:
    tenant = raw.get("tenant", "common")
    if not isinstance(tenant, str) or not re.match(r"^[A-Za-z0-9.-]{1,64}$", tenant):
        raise ConfigurationError(f"connections[{raw.get('id')}].tenant: invalid tenant")
    return {
        "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0",
        "scopes": ["openid", "profile", "email", "offline_access"],
    }


PRESETS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "github": _github,
    "google": _google,
    "microsoft": _microsoft,
}
