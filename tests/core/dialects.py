"""Preset-like token dialects for the token parser's tests (the real ones live in
``core/presets.py``; these only exercise each quirk the way a preset would)."""

from __future__ import annotations

from oauth_vault_mw.core.dialect import STANDARD, TokenDialect

SLACK = TokenDialect(
    token_path=("authed_user",),
    reauth_errors=frozenset({"invalid_refresh_token"}),
    transient_errors=frozenset({"ratelimited", "internal_error", "fatal_error"}),
    keep=(("team_id", "team.id"), ("team_name", "team.name"), ("user_id", "authed_user.id")),
)
HUBSPOT = TokenDialect(
    error_fields=("status", "category"),
    description_fields=("message", "correlationId"),
    keep=(("hub_id", "hub_id"),),
)
TWITCH = TokenDialect(
    error_fields=("message",),
    reauth_errors=frozenset({"Invalid refresh token"}),
)
REDDIT = TokenDialect(error_fields=("message",))
STRAVA = TokenDialect(
    error_fields=("errors.0.field+errors.0.code", "message"),
    description_fields=("message", "errors.0.resource"),
    reauth_errors=frozenset({"refresh_token:invalid"}),
    expires_at_field="expires_at",
    keep=(("athlete_id", "athlete.id"),),
)
MICROSOFT = TokenDialect(description_fields=("error_codes", "suberror"))
MAILCHIMP = TokenDialect(zero_expires_never=True)
SALESFORCE = TokenDialect(
    keep=(
        ("instance_url", "instance_url"),
        ("id", "id"),
        ("issued_at", "issued_at"),
        ("signature", "signature"),
    )
)

ALL = {
    "standard": STANDARD,
    "slack": SLACK,
    "hubspot": HUBSPOT,
    "twitch": TWITCH,
    "reddit": REDDIT,
    "strava": STRAVA,
    "microsoft": MICROSOFT,
    "mailchimp": MAILCHIMP,
    "salesforce": SALESFORCE,
}
