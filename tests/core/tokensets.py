"""Token sets for the pure core's tests: one stored token with a chosen lifetime."""

from __future__ import annotations

from oauth_vault_mw.core.model import TokenSet

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
