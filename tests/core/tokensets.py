"""Token sets for the pure core's tests: one stored token with a chosen lifetime, and the
token parser fed a reply the way a shell feeds it."""

from __future__ import annotations

import json
from typing import Any

from oauth_vault_mw.core.dialect import STANDARD, TokenDialect
from oauth_vault_mw.core.model import TokenSet
from oauth_vault_mw.core.tokens import TokenGranted, TokenOutcome, parse_token_response

NOW = 1_700_000_000.0
ACCESS = "at-0123456789-secret-access"
REFRESH = "rt-0123456789-secret-refresh"


def tokens(
    *,
    lifetime: float | None = 3600,
    refresh: bool = True,
    obtained_at: float = NOW,
    status: str = "active",
) -> TokenSet:
    return TokenSet(
        access_token=ACCESS,
        refresh_token=REFRESH if refresh else None,
        expires_at=None if lifetime is None else obtained_at + lifetime,
        obtained_at=obtained_at,
        status=status,
    )


def parse(
    body: dict[str, Any] | bytes,
    *,
    status: int = 200,
    content_type: str = "application/json",
    dialect: TokenDialect = STANDARD,
    previous: TokenSet | None = None,
    default_expires_in: int | None = 3600,
    retry_after: str | None = None,
) -> TokenOutcome:
    """``parse_token_response`` at :data:`NOW` on ``body`` (JSON-encoded unless bytes)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_token_response(
        status,
        content_type,
        raw,
        now=NOW,
        default_expires_in=default_expires_in,
        previous=previous,
        retry_after=retry_after,
        dialect=dialect,
    )


def granted(outcome: TokenOutcome) -> TokenSet:
    assert isinstance(outcome, TokenGranted), outcome
    return outcome.tokens
