"""The presets: one record per provider (39), built from the provider catalogue.

Each record says what the vault does for that provider (URLs, scopes, parameters, client
authentication, how its token replies and identity differ from the standards) and what the
generated ``docs/providers.md`` tells a developer (refresh tokens, app registration, quirks).
Where the catalogue marks a fact unverified, the record takes the tolerant choice and says so
in ``notes``. :data:`PRESETS` is checked by :func:`~.presets.check_table` at import.
"""

from __future__ import annotations

from dataclasses import replace

from .dialect import IdentitySpec, TokenDialect
from .presets import Preset, Variable, check_table

__all__ = ["PRESETS", "TABLE"]


def _profile(**paths: str) -> tuple[tuple[str, str], ...]:
    """Display fields (``name``, ``email``, ``picture``, ``preferred_username``) and their
    dotted paths in the identity document."""
    return tuple(paths.items())


def _userinfo(subject: str, **paths: str) -> IdentitySpec:
    return IdentitySpec("userinfo", subject=subject, profile=_profile(**paths))


def _reply(subject: str, **paths: str) -> IdentitySpec:
    return IdentitySpec("token_response", subject=subject, profile=_profile(**paths))


OIDC = IdentitySpec("id_token")
OIDC_USERINFO = _userinfo(
    "sub", name="name", email="email", picture="picture", preferred_username="preferred_username"
)

BASIC = "client_secret_basic"
POST = "client_secret_post"

U_BASIC = (
    "Client authentication is unverified in the catalogue: the preset sends HTTP Basic, which "
    "RFC 6749 requires every server to accept; set `token_endpoint_auth_method` if your "
    "registration says otherwise."
)
U_REVOKE = (
    "No `revocation_url`: the provider's revocation endpoint is unverified or not RFC 7009, so "
    "disconnecting deletes the stored credential only (set `revocation_url` to add one)."
)

DOMAIN = "domain"


TABLE: tuple[Preset, ...] = (
    Preset(
        name="google",
        title="Google",
        issuer="https://accounts.google.com",
        revocation_url="https://oauth2.googleapis.com/revoke",
        api_base_url="https://www.googleapis.com",
        scopes=("openid", "email", "profile"),
        authorize_params=(("access_type", "offline"), ("prompt", "consent")),
        incremental_params=(("include_granted_scopes", "true"),),
        account_chooser=(("prompt", "select_account consent"),),
        scope_aliases=(
            ("email", "https://www.googleapis.com/auth/userinfo.email"),
            ("profile", "https://www.googleapis.com/auth/userinfo.profile"),
        ),
        token_endpoint_auth_method=POST,
        identity=OIDC,
        refresh_tokens="requested",
        refresh_how=(
            "`access_type=offline` (set); `prompt=consent` (set) makes a later login return "
            "one again, Google sends it on the first consent only otherwise"
        ),
        registration=(
            "An OAuth client ID of type *Web application* in the Google Cloud console, with the "
            "redirect URI; the consent screen lists the API scopes you add."
        ),
        quirks=(
            "A refresh reply carries no refresh token: the stored one is kept.",
            "Granular consent: the user may untick scopes; the granted ones come back in "
            "the reply's `scope` (and the callback's), `email` and `profile` named "
            "`https://www.googleapis.com/auth/userinfo.email` and `.profile`. "
            "`include_granted_scopes=true` (set) makes each new grant keep the earlier ones.",
            "Refresh tokens die after six months unused, on revocation, on a password change "
            "when Gmail scopes were granted, and silently when the user holds too many; apps "
            "whose consent screen is in *Testing* get refresh tokens that last about 7 days.",
        ),
        notes=(
            "The issuer and the revocation URL are unverified in the catalogue: discovery "
            "checks the issuer (the document must name it), and a failed revocation only "
            "leaves the grant at Google (logged).",
            "The catalogue does not name the reply's long names of `email` and `profile` "
            "(seen in Google's replies): `scope_aliases` counts either name as granted.",
        ),
    ),
    Preset(
        name="github",
        title="GitHub (OAuth app or GitHub App user tokens)",
        authorize_url="https://github.com/login/oauth/authorize",
        token_url="https://github.com/login/oauth/access_token",
        userinfo_url="https://api.github.com/user",
        api_base_url="https://api.github.com",
        scopes=("read:user",),
        token_endpoint_auth_method=POST,
        default_expires_in=None,
        identity=_userinfo(
            "id", name="name", email="email", picture="avatar_url", preferred_username="login"
        ),
        refresh_tokens="opt-in",
        refresh_how=(
            "OAuth apps: none, their tokens never expire. GitHub Apps: user tokens expire after "
            "8 h and come with a refresh token (on by default, the app's *Expire user "
            "authorization tokens* switch)"
        ),
        registration=(
            "An OAuth app (or a GitHub App) in the developer settings, with the redirect URI as "
            "its callback URL."
        ),
        quirks=(
            "Errors come back with HTTP 200 and an `error` field, refresh failures too "
            "(`bad_refresh_token` means log in again).",
            "The reply is form-encoded unless the request asks for JSON; the vault always sends "
            "`Accept: application/json`.",
            "The account id is the numeric `id` of `/user`; the login name can change.",
            "GitHub App refresh tokens are single use: the old refresh and access tokens die at "
            "once, and the refresh token itself expires after 6 months.",
            "The reply's `scope` is comma-separated.",
            "Token revocation is not RFC 7009 (`DELETE /applications/{client_id}/token`), so no "
            "`revocation_url` is set.",
        ),
        notes=(
            "The request-side scope separator is unverified: the preset joins scopes with spaces.",
        ),
    ),
    Preset(
        name="github-app",
        title="GitHub App (user access tokens)",
        authorize_url="https://github.com/login/oauth/authorize",
        token_url="https://github.com/login/oauth/access_token",
        userinfo_url="https://api.github.com/user",
        api_base_url="https://api.github.com",
        token_endpoint_auth_method=POST,
        default_expires_in=None,
        identity=_userinfo(
            "id", name="name", email="email", picture="avatar_url", preferred_username="login"
        ),
        refresh_tokens="always",
        refresh_how=(
            "with the code, while the app's *Expire user authorization tokens* switch is on "
            "(the default); with it off, tokens never expire"
        ),
        registration=(
            "A GitHub App with the redirect URI as a callback URL; its permissions, not scopes, "
            "decide what the user token may do."
        ),
        quirks=(
            "User tokens last 8 hours (`expires_in` 28800); refresh tokens 6 months "
            "(`refresh_token_expires_in`, read).",
            "Refresh is strict single use: the old refresh and access tokens die at once.",
            "Errors come back with HTTP 200; `bad_refresh_token` means log in again.",
            "No scopes: the app's permissions apply.",
            "The account id is the numeric `id` of `/user`.",
        ),
        notes=(
            "The callback of an installation started on github.com may carry "
            "`installation_id` and `setup_action` without a `state`; the vault refuses a "
            "callback without its state, so start logins from the app.",
        ),
    ),
    Preset(
        name="microsoft",
        title="Microsoft Entra ID (v2 endpoints)",
        issuer="https://login.microsoftonline.com/{tenant}/v2.0",
        api_base_url="https://graph.microsoft.com/v1.0",
        variables=(
            Variable(
                "tenant",
                "segment",
                "the Entra tenant: its id or domain, or `common`, `organizations`, `consumers`",
                "contoso.onmicrosoft.com",
                default="common",
            ),
        ),
        scopes=("openid", "profile", "email", "offline_access"),
        token_endpoint_auth_method=POST,
        dialect=TokenDialect(description_fields=("error_codes", "suberror")),
        identity=OIDC,
        refresh_tokens="requested",
        refresh_how="the `offline_access` scope (set)",
        registration=(
            "An app registration in Microsoft Entra ID with a *Web* platform redirect URI and a "
            "client secret; its supported account types must match `tenant` (`common`: any "
            "work, school or personal account)."
        ),
        quirks=(
            "With `common`, `organizations` or `consumers`, discovery names a templated issuer; "
            "each ID token's issuer is checked against it with the token's `tid` claim.",
            "Refresh tokens replace themselves on every use and the old ones are not revoked; "
            "they last 90 days (24 h for single-page apps).",
            "`offline_access` is never echoed in the reply's `scope`.",
            "Errors carry `error_codes` (AADSTS numbers), `trace_id` and `correlation_id` "
            "besides `error`.",
            "The old connection field `tenant` still works as `params.tenant`.",
        ),
        notes=(
            "Client authentication: the form body is documented by secondary sources, HTTP "
            "Basic is unverified, so the preset sends the secret in the body.",
        ),
    ),
    Preset(
        name="slack",
        title="Slack (OAuth v2, user token)",
        authorize_url="https://slack.com/oauth/v2/authorize",
        token_url="https://slack.com/api/oauth.v2.access",
        scope_separator=",",
        authorize_params=(("user_scope", "users:read"),),
        default_expires_in=None,
        dialect=TokenDialect(
            token_path=("authed_user",),
            reauth_errors=frozenset({"invalid_refresh_token"}),
            transient_errors=frozenset({"ratelimited", "internal_error", "fatal_error"}),
            keep=(
                ("team_id", "team.id"),
                ("team_name", "team.name"),
                ("user_id", "authed_user.id"),
                ("enterprise_id", "enterprise.id"),
            ),
        ),
        identity=_reply("authed_user.id"),
        account_extra="team_id",
        refresh_tokens="opt-in",
        refresh_how=(
            "turn on *token rotation* in the app's settings: tokens then expire after 12 h and "
            "come with a refresh token; without it they never expire"
        ),
        registration=(
            "A Slack app: under *OAuth & Permissions* add the redirect URL and the **user token "
            "scopes** you need; turn on token rotation there if you want expiring tokens."
        ),
        quirks=(
            "The vault stores the **user** token, found under `authed_user` in the reply; the "
            "top-level bot token is not stored.",
            "User-token scopes go in the `user_scope` authorization parameter (the preset asks "
            "for `users:read`; set `authorize_params.user_scope`, comma-separated); `scopes` "
            "fills `scope`, which asks for **bot** scopes.",
            "Scopes are comma-separated.",
            'Errors come back with HTTP 200 as `{"ok": false, "error": ...}`; '
            "`invalid_refresh_token` means log in again.",
            "With rotation, each refresh token works once.",
            "The account id is `authed_user.id`; the team (and Enterprise Grid) ids are kept as "
            "`extra.team_id` and `extra.enterprise_id`.",
        ),
        notes=(
            "Slack user ids are unique per workspace (the catalogue does not say they are "
            "global): the team id is kept beside it so that callers can tell workspaces apart.",
        ),
    ),
    Preset(
        name="atlassian",
        title="Atlassian (Jira, Confluence Cloud: OAuth 2.0 3LO)",
        authorize_url="https://auth.atlassian.com/authorize",
        token_url="https://auth.atlassian.com/oauth/token",
        userinfo_url="https://api.atlassian.com/me",
        scopes=("read:me", "offline_access"),
        authorize_params=(("audience", "api.atlassian.com"), ("prompt", "consent")),
        token_endpoint_auth_method=POST,
        identity=_userinfo(
            "account_id",
            name="name",
            email="email",
            picture="picture",
            preferred_username="nickname",
        ),
        refresh_tokens="requested",
        refresh_how=(
            "the `offline_access` scope with `audience=api.atlassian.com` and `prompt=consent` "
            "(all set)"
        ),
        registration=(
            "An OAuth 2.0 (3LO) integration in the Atlassian developer console: the callback "
            "URL under *Authorization*, and under *Permissions* the APIs you call (the User "
            "identity API gives `read:me`); add their scopes to `scopes`."
        ),
        quirks=(
            "Refresh tokens rotate; the previous pair keeps working for 10 minutes. They expire "
            "after 90 days unused and 365 days after the first consent.",
            "A dead refresh token is often answered with HTTP 403 `invalid_grant`.",
            "API calls go to `https://api.atlassian.com/ex/jira/{cloudId}/...`; the cloud ids "
            "come from `GET https://api.atlassian.com/oauth/token/accessible-resources`.",
            "The account id is `account_id` of `/me`.",
        ),
        notes=(
            "Atlassian documents a JSON token request body; form bodies are unverified. The "
            "vault sends the standard form body.",
            "`read:me` (needed by `/me`) is not in the catalogue; it is the User identity API's "
            "scope.",
        ),
    ),
    Preset(
        name="salesforce",
        title="Salesforce",
        authorize_url="https://{domain}/services/oauth2/authorize",
        token_url="https://{domain}/services/oauth2/token",
        revocation_url="https://{domain}/services/oauth2/revoke",
        variables=(
            Variable(
                DOMAIN,
                "host",
                "the login host: `login.salesforce.com`, `test.salesforce.com` (sandboxes) or "
                "your My Domain host",
                "example.my.salesforce.com",
                default="login.salesforce.com",
            ),
        ),
        scopes=("api", "refresh_token"),
        token_endpoint_auth_method=POST,
        dialect=TokenDialect(
            keep=(("instance_url", "instance_url"), ("id", "id"), ("issued_at", "issued_at"))
        ),
        api_base_url_from_extra="instance_url",
        identity=_reply("id"),
        refresh_tokens="requested",
        refresh_how="the `refresh_token` scope (set)",
        registration=(
            "A connected app (or external client app) with OAuth enabled, the callback URL, and "
            "the scopes `api` and `refresh_token`; its refresh token policy decides how long "
            "refresh tokens live (default: until revoked)."
        ),
        quirks=(
            "The reply has no `expires_in`: the token lives as long as the org's session timeout.",
            "API calls go to `extra.instance_url`; `extra.id` is the identity URL "
            "(`.../id/{org id}/{user id}`), which is also the account id.",
            "Refresh token rotation is an optional setting of the app; then a used refresh "
            "token dies.",
        ),
        notes=(
            "The access token's lifetime is the org's session timeout, which the vault cannot "
            "see: the preset assumes 3600 s. Set `default_expires_in` to your timeout if it is "
            "shorter (a shorter guess only refreshes earlier).",
        ),
    ),
    Preset(
        name="dropbox",
        title="Dropbox",
        authorize_url="https://www.dropbox.com/oauth2/authorize",
        token_url="https://api.dropboxapi.com/oauth2/token",
        authorize_params=(("token_access_type", "offline"),),
        default_expires_in=14400,
        dialect=TokenDialect(keep=(("account_id", "account_id"), ("uid", "uid"))),
        identity=_reply("account_id"),
        refresh_tokens="requested",
        refresh_how="`token_access_type=offline` (set)",
        registration=(
            "An app in the Dropbox App Console with the redirect URI; its *Permissions* tab "
            "sets the scopes (the preset asks for none, so the app's scopes apply)."
        ),
        quirks=(
            "Access tokens last about 4 hours; a refresh reply has a new access token only, the "
            "refresh token lives until revoked.",
            "The account id is the reply's `account_id` (the user endpoint is a POST).",
        ),
        notes=(
            U_BASIC,
            "The scope separator is unverified: spaces, used only if you set `scopes`.",
            U_REVOKE,
        ),
    ),
    Preset(
        name="spotify",
        title="Spotify",
        authorize_url="https://accounts.spotify.com/authorize",
        token_url="https://accounts.spotify.com/api/token",
        userinfo_url="https://api.spotify.com/v1/me",
        scopes=("user-read-email",),
        identity=_userinfo("id", name="display_name", email="email"),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration="An app in the Spotify developer dashboard with the redirect URI.",
        quirks=(
            "The token endpoint requires HTTP Basic client authentication.",
            "Refresh tokens expire 6 months after the original consent; refreshing does not "
            "extend them (then `invalid_grant`: log in again).",
            "A refresh reply may carry a new refresh token, which replaces the stored one.",
        ),
        notes=(U_REVOKE,),
    ),
    Preset(
        name="discord",
        title="Discord",
        authorize_url="https://discord.com/oauth2/authorize",
        token_url="https://discord.com/api/oauth2/token",
        userinfo_url="https://discord.com/api/users/@me",
        revocation_url="https://discord.com/api/oauth2/token/revoke",
        scopes=("identify", "email"),
        default_expires_in=604800,
        dialect=TokenDialect(keep=(("guild_id", "guild.id"),)),
        identity=_userinfo("id", name="global_name", email="email", preferred_username="username"),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "An application in the Discord developer portal; add the redirect URI under *OAuth2*."
        ),
        quirks=(
            "Token and revocation endpoints take form bodies only (the vault sends forms).",
            "Access tokens last 7 days; revoking any token revokes the whole authorization.",
            "The `bot` scope adds a `guild` object (its id is kept as `extra.guild_id`); "
            "`webhook.incoming` adds a `webhook` holding a secret token, which is not kept.",
        ),
        notes=(
            "Refresh token reuse rules are undocumented: a refresh token in a reply replaces "
            "the stored one, an absent one keeps it.",
        ),
    ),
    Preset(
        name="notion",
        title="Notion (public integration)",
        authorize_url="https://api.notion.com/v1/oauth/authorize",
        token_url="https://api.notion.com/v1/oauth/token",
        authorize_params=(("owner", "user"),),
        default_expires_in=None,
        dialect=TokenDialect(
            keep=(
                ("workspace_id", "workspace_id"),
                ("workspace_name", "workspace_name"),
                ("bot_id", "bot_id"),
            )
        ),
        identity=_reply(
            "bot_id",
            name="owner.user.name",
            email="owner.user.person.email",
            picture="owner.user.avatar_url",
        ),
        refresh_tokens="always",
        refresh_how=(
            "current integrations get a rotating refresh token with the code; older token "
            "replies had none and never expired (both are handled)"
        ),
        registration=(
            "A public integration in Notion's integrations dashboard with the redirect URI; "
            "the user picks the pages to share while consenting. Notion has no scopes."
        ),
        quirks=(
            "No scopes: the integration's capabilities decide.",
            "The token endpoint takes HTTP Basic client authentication.",
            "A refresh returns a new access token and a new refresh token.",
            "The reply carries `bot_id`, `workspace_id`, `workspace_name`, `owner`; the first "
            "three are kept. API calls need a `Notion-Version` header.",
        ),
        notes=(
            "Token lifetimes are unverified: a reply without `expires_in` is taken as never "
            "expiring (`default_expires_in: null`), as legacy tokens did.",
            "Notion documents a JSON token request body; form bodies are unverified. The vault "
            "sends the standard form body.",
            "The account id is `bot_id`, which identifies one authorization (one user, one "
            "workspace): a person connecting two workspaces gets two accounts.",
            U_REVOKE,
        ),
    ),
    Preset(
        name="zoom",
        title="Zoom (user-managed OAuth app)",
        authorize_url="https://zoom.us/oauth/authorize",
        token_url="https://zoom.us/oauth/token",
        userinfo_url="https://api.zoom.us/v2/users/me",
        identity=_userinfo("id", name="display_name", email="email", picture="pic_url"),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "A general (user-managed) OAuth app in the Zoom App Marketplace with the redirect "
            "URL and its scopes (the preset asks for none, so the app's scopes apply)."
        ),
        quirks=(
            "The token endpoint requires HTTP Basic client authentication.",
            "Refresh tokens rotate: only the latest works, a prior one is answered "
            '"Invalid Token!".',
            "Access tokens last 1 hour; authorization codes 5 minutes.",
        ),
        notes=(
            "The scope separator is unverified (spaces; one source says commas): the preset "
            "sends no scopes.",
            "The refresh token's lifetime is unverified (15 years or about 90 days).",
            U_REVOKE,
        ),
    ),
    Preset(
        name="hubspot",
        title="HubSpot",
        authorize_url="https://app.hubspot.com/oauth/authorize",
        token_url="https://api.hubapi.com/oauth/v3/token",
        userinfo_url="https://api.hubapi.com/oauth/v1/access-tokens/{ACCESS_TOKEN}",
        scopes=("oauth",),
        token_endpoint_auth_method=POST,
        default_expires_in=1800,
        dialect=TokenDialect(
            error_fields=("status", "category"),
            description_fields=("message", "correlationId"),
            reauth_errors=frozenset({"BAD_REFRESH_TOKEN"}),
            keep=(("hub_id", "hub_id"),),
        ),
        identity=_userinfo("user_id", email="user"),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "An app in a HubSpot developer account with the redirect URL and the exact scopes "
            "you request (HubSpot refuses a request that lists others)."
        ),
        quirks=(
            "The preset uses the v3 token endpoint (all parameters in the body); v1 retires "
            "2027-02-16.",
            "Access tokens last 30 minutes.",
            "Errors are HubSpot-shaped (`status`, `message`, `category`, `correlationId`); "
            "`BAD_REFRESH_TOKEN` means log in again.",
            "The account is the HubSpot user (`user_id` of the access-token information "
            "endpoint, which takes the token in its path); the portal's `hub_id` is kept as "
            "`extra.hub_id`.",
        ),
        notes=(
            "`oauth` as the default scope is not in the catalogue: HubSpot apps list it as "
            "required; replace `scopes` with your app's list.",
            U_REVOKE,
        ),
    ),
    Preset(
        name="linkedin",
        title="LinkedIn (Sign In with OpenID Connect)",
        authorize_url="https://www.linkedin.com/oauth/v2/authorization",
        token_url="https://www.linkedin.com/oauth/v2/accessToken",
        userinfo_url="https://api.linkedin.com/v2/userinfo",
        scopes=("openid", "profile", "email"),
        token_endpoint_auth_method=POST,
        default_expires_in=5184000,
        identity=OIDC_USERINFO,
        refresh_tokens="opt-in",
        refresh_how=(
            "only for apps LinkedIn has approved for programmatic refresh tokens; other access "
            "tokens last 60 days, then the user logs in again"
        ),
        registration=(
            "An app in the LinkedIn developer portal with the OpenID Connect sign-in product "
            "and the redirect URL under *Auth*."
        ),
        quirks=(
            "Refresh tokens (approved apps) last 365 days from the first consent; refreshing "
            "does not extend them.",
            "Errors may carry `serviceErrorCode`.",
        ),
        notes=(
            "LinkedIn's ID tokens are reported to skip the nonce, and its userinfo URL is "
            "unverified: the preset uses plain OAuth 2.0 and names the account from "
            "`/v2/userinfo` (`sub`) instead of checking an ID token.",
            U_REVOKE,
        ),
    ),
    Preset(
        name="gitlab",
        title="GitLab (gitlab.com or self-managed)",
        authorize_url="{base_url}/oauth/authorize",
        token_url="{base_url}/oauth/token",
        userinfo_url="{base_url}/api/v4/user",
        api_base_url="{base_url}/api/v4",
        revocation_url="{base_url}/oauth/revoke",
        variables=(
            Variable(
                "base_url",
                "url",
                "the GitLab instance",
                "https://gitlab.example.com",
                default="https://gitlab.com",
            ),
        ),
        scopes=("read_user",),
        token_endpoint_auth_method=POST,
        default_expires_in=7200,
        refresh_redirect_uri=True,
        identity=_userinfo(
            "id", name="name", email="email", picture="avatar_url", preferred_username="username"
        ),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "An application in GitLab (user, group or instance settings, *Applications*) with "
            "the redirect URI, *Confidential* checked, and the scopes."
        ),
        quirks=(
            "A refresh invalidates the old access and refresh tokens (single use).",
            "A refresh must send the same `redirect_uri` (the vault does).",
            "Access tokens last 2 hours; some versions omit `expires_in`, then 7200 s is assumed.",
        ),
        notes=(
            "GitLab's OIDC issuer is unverified in the catalogue: the preset uses plain OAuth "
            "2.0 and names the account from `/api/v4/user` (`id`).",
        ),
    ),
    Preset(
        name="okta",
        title="Okta",
        issuer="https://{domain}/oauth2/{authorization_server}",
        variables=(
            Variable(DOMAIN, "host", "your Okta domain", "example.okta.com"),
            Variable(
                "authorization_server",
                "segment",
                "the custom authorization server's id",
                "default",
                default="default",
            ),
        ),
        scopes=("openid", "profile", "email", "offline_access"),
        identity=OIDC,
        refresh_tokens="requested",
        refresh_how=(
            "the `offline_access` scope (set), with the *Refresh Token* grant allowed for the app"
        ),
        registration=(
            "An OIDC *Web Application* app integration with the sign-in redirect URI and the "
            "grant types Authorization Code and Refresh Token; the authorization server's access "
            "policy must allow the scopes."
        ),
        quirks=(
            "Refresh token rotation is a per-app setting; a rotated refresh token keeps the "
            "original expiry, and the previous one stays valid for the leeway (default 30 s).",
            "The org authorization server (issuer `https://{domain}`, refresh tokens 90 days) "
            "differs from custom ones (configurable lifetimes): set `issuer` to use it.",
        ),
        notes=(U_BASIC,),
    ),
    Preset(
        name="auth0",
        title="Auth0",
        issuer="https://{domain}/",
        variables=(
            Variable(
                DOMAIN, "host", "your tenant's domain or custom domain", "example.us.auth0.com"
            ),
        ),
        scopes=("openid", "profile", "email", "offline_access"),
        token_endpoint_auth_method=POST,
        identity=OIDC,
        refresh_tokens="requested",
        refresh_how=(
            "the `offline_access` scope (set); for an API's access token add "
            "`authorize_params.audience` and allow offline access on that API"
        ),
        registration=(
            "A *Regular Web Application* with the redirect URI in *Allowed Callback URLs* and "
            "the Refresh Token grant type."
        ),
        quirks=(
            "The issuer ends with `/`.",
            "Refresh token rotation is optional; reusing an older rotated token revokes the "
            "whole family (the reuse interval defaults to 0).",
            "Refresh tokens have absolute and idle lifetimes set in the tenant.",
        ),
        notes=(
            "Client authentication is unverified in the catalogue: the preset sends the secret "
            "in the body (`client_secret_post`); set `token_endpoint_auth_method` to match the "
            "application's setting.",
        ),
    ),
    Preset(
        name="keycloak",
        title="Keycloak",
        issuer="{base_url}/realms/{realm}",
        variables=(
            Variable(
                "base_url",
                "url",
                "the server's URL (Keycloak 16 and older: including `/auth`)",
                "https://sso.example.com",
            ),
            Variable("realm", "segment", "the realm", "myrealm"),
        ),
        scopes=("openid", "profile", "email", "offline_access"),
        identity=OIDC,
        refresh_tokens="requested",
        refresh_how=(
            "the `offline_access` scope (set) gives an offline token, which outlives the SSO "
            "session"
        ),
        registration=(
            "An OpenID Connect client with *Client authentication* on, *Standard flow* enabled "
            "and the redirect URI in *Valid redirect URIs*; users need the `offline_access` "
            "role (a default role) for offline tokens."
        ),
        quirks=(
            "Access tokens last 5 minutes by default.",
            "Refresh tokens are bounded by the SSO session's idle and maximum times, offline "
            "tokens by the offline session's; the realm's *Revoke Refresh Token* makes them "
            "single use.",
            "Replies add `refresh_expires_in` (the refresh token's lifetime, read; `0` for an "
            "offline token means no limit), `session_state` and `not-before-policy`.",
        ),
        notes=(U_BASIC,),
    ),
    Preset(
        name="apple",
        title="Sign in with Apple",
        issuer="https://appleid.apple.com",
        revocation_url="https://appleid.apple.com/auth/revoke",
        token_endpoint_auth_method="signed_client_secret",
        identity=IdentitySpec("id_token", profile=_profile(email="email")),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "In Apple Developer: an App ID with Sign in with Apple, a *Services ID* (its "
            "identifier is the `client_id`) with your domain and the redirect URI as return URL, "
            "and a *Sign in with Apple* key (.p8): the connection names the key, its key id and "
            "your team id."
        ),
        quirks=(
            "The client secret is an ES256 JWT (6 months at most) signed with your key; the "
            "vault makes it (`token_endpoint_auth_method: signed_client_secret`).",
            "A refresh reply carries an access token only (no refresh token, no ID token).",
            "The revocation endpoint answers 200 even for unknown tokens.",
        ),
        notes=(
            "The preset asks for no scopes: the ID token names the account (`sub`), and the "
            "callback stays a GET. Asking for `name` or `email` makes Apple post the callback "
            "(`response_mode=form_post`) and send the name once only; the vault does not take "
            "that route.",
            "PKCE support is unverified: the vault sends S256 as it always does.",
        ),
        example=(
            ("client_id", "com.example.web"),
            ("client_secret", None),
            ("client_private_key", "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----"),
            ("client_key_id", "ABC123DEFG"),
            ("team_id", "TEAM123456"),
        ),
    ),
    Preset(
        name="box",
        title="Box",
        authorize_url="https://account.box.com/api/oauth2/authorize",
        token_url="https://api.box.com/oauth2/token",
        userinfo_url="https://api.box.com/2.0/users/me",
        revocation_url="https://api.box.com/oauth2/revoke",
        token_endpoint_auth_method=POST,
        identity=_userinfo("id", name="name", email="login", picture="avatar_url"),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "A *Custom App* with *User Authentication (OAuth 2.0)* in the Box developer console, "
            "with the redirect URI and the application scopes."
        ),
        quirks=(
            "Refresh tokens are single use with no grace and last 60 days; the vault refreshes "
            "a credential once at a time across processes.",
            "Replies add `issued_token_type`.",
        ),
        notes=(
            "Client authentication is unverified: the preset sends the secret in the body, as "
            "Box's own guides show.",
            "The scope separator is unverified: spaces, used only if you set `scopes`.",
        ),
    ),
    Preset(
        name="twitch",
        title="Twitch",
        authorize_url="https://id.twitch.tv/oauth2/authorize",
        token_url="https://id.twitch.tv/oauth2/token",
        userinfo_url="https://id.twitch.tv/oauth2/userinfo",
        revocation_url="https://id.twitch.tv/oauth2/revoke",
        scopes=("openid",),
        token_endpoint_auth_method=POST,
        dialect=TokenDialect(
            error_fields=("message",),
            reauth_errors=frozenset({"invalid refresh token"}),
        ),
        identity=_userinfo(
            "sub", email="email", picture="picture", preferred_username="preferred_username"
        ),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "An application in the Twitch developer console with the OAuth redirect URL and "
            "client type *Confidential*."
        ),
        quirks=(
            "The reply's `scope` is a JSON array.",
            'Errors are `{"status": 400, "message": ...}`; "Invalid refresh token" means '
            "log in again.",
            "Refresh tokens may change on refresh (the new one is stored).",
            "Twitch asks apps to validate tokens at start-up and hourly "
            "(`GET https://id.twitch.tv/oauth2/validate`); the vault does not. React to a 401 "
            "with `force_refresh=True`.",
        ),
        notes=(
            "The OIDC issuer is secondary-sourced: the preset uses plain OAuth 2.0 with the "
            "`openid` scope and names the account from `/oauth2/userinfo` (`sub`).",
        ),
    ),
    Preset(
        name="xero",
        title="Xero",
        issuer="https://identity.xero.com",
        extra_url="https://api.xero.com/connections",
        extra_keep=(
            ("tenant_id", "0.tenantId"),
            ("tenant_name", "0.tenantName"),
            ("tenant_type", "0.tenantType"),
        ),
        scopes=("openid", "profile", "email", "offline_access"),
        default_expires_in=1800,
        identity=OIDC,
        refresh_tokens="requested",
        refresh_how="the `offline_access` scope (set)",
        registration=(
            "A *Web app* in the Xero developer portal with the redirect URI; add the API scopes "
            "you need (`accounting.transactions`, ...) to `scopes`."
        ),
        quirks=(
            "Refresh tokens rotate; the previous one stays usable for 30 minutes if a reply is "
            "lost, and unused ones expire after 60 days.",
            "Refreshing one token set from several places breaks it: the vault refreshes a "
            "credential once at a time across processes.",
            "Access tokens last 30 minutes. API calls need the `Xero-Tenant-Id` header: the "
            "login reads `GET https://api.xero.com/connections` and keeps the first tenant as "
            "`extra.tenant_id` (with `tenant_name`, `tenant_type`); list them all with the same "
            "call when the user connected several organisations.",
        ),
        notes=(
            "The issuer is unverified in the catalogue: discovery checks it (the document must "
            "name it); if it fails, set `authorize_url`, `token_url` and `userinfo_url`.",
        ),
    ),
    Preset(
        name="quickbooks",
        title="QuickBooks Online (Intuit)",
        authorize_url="https://appcenter.intuit.com/connect/oauth2",
        token_url="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
        userinfo_url="https://accounts.platform.intuit.com/v1/openid_connect/userinfo",
        scopes=("com.intuit.quickbooks.accounting", "openid", "profile", "email"),
        callback_keep=("realmId",),
        identity=_userinfo("sub", email="email"),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "An app in the Intuit developer portal with the redirect URI under the production "
            "(or development) keys' settings."
        ),
        quirks=(
            "The company id, `realmId`, comes only in the callback's query: it is kept as "
            "`extra.realmId` for the API's `/v3/company/{realmId}/...` paths.",
            "The refresh token's value may change on any refresh (about daily); the newest is "
            "stored. Refresh tokens roll over 100 days, with a hard limit of 5 years "
            "(`x_refresh_token_expires_in`).",
        ),
        notes=(
            "The userinfo URL is unverified: sandbox apps may need "
            "`userinfo_url` set to Intuit's sandbox host.",
            U_BASIC,
            "The scope separator is unverified: spaces.",
            U_REVOKE,
        ),
    ),
    Preset(
        name="shopify",
        title="Shopify (one shop)",
        authorize_url="https://{shop}.myshopify.com/admin/oauth/authorize",
        token_url="https://{shop}.myshopify.com/admin/oauth/access_token",
        userinfo_url="https://{shop}.myshopify.com/admin/api/2026-10/shop.json",
        variables=(
            Variable(
                "shop",
                "label",
                "the shop's name, the part before `.myshopify.com`",
                "example-store",
            ),
        ),
        scopes=("read_products",),
        scope_separator=",",
        token_endpoint_auth_method=POST,
        token_params=(("expiring", "1"),),
        default_expires_in=None,
        callback_keep=("shop",),
        identity=replace(
            _userinfo("shop.id", name="shop.name", email="shop.email"),
            token_header="X-Shopify-Access-Token",
            token_scheme="",
        ),
        refresh_tokens="requested",
        refresh_how=(
            "expiring offline tokens (1 hour, with a rotating refresh token), asked for with "
            '`expiring=1` in the token request (set; `token_params: {"expiring": "0"}` '
            "asks for the older non-expiring kind)"
        ),
        registration=(
            "An app in the Shopify Partner dashboard (or a custom app in the shop's admin) with "
            "the redirect URI among its allowed redirection URLs."
        ),
        quirks=(
            "One connection serves one shop (`params.shop`); the callback's `shop` is kept as "
            "`extra.shop`.",
            "Scopes are comma-separated.",
            "API calls take the token in an `X-Shopify-Access-Token` header, not `Authorization`.",
            "Expiring offline tokens (`expiring=1` in the token request), which public apps "
            "must use from 2027-01-01: 1 hour, with a refresh token that rotates on every "
            "use.",
        ),
        notes=(
            "The callback's `hmac` is not verified; the state and PKCE checks protect the flow.",
            "The scope separator and client authentication are unverified: commas, and the "
            "secret in the body.",
            "The user endpoint is unverified: the shop's `shop.json` (API version 2026-10), "
            "with the token in `X-Shopify-Access-Token` as for every Admin API call; set "
            "`userinfo_url` if your shop answers otherwise.",
        ),
    ),
    Preset(
        name="linear",
        title="Linear",
        authorize_url="https://linear.app/oauth/authorize",
        token_url="https://api.linear.app/oauth/token",
        userinfo_url=(
            "https://api.linear.app/graphql?query=%7Bviewer%7Bid%20name%20email%20avatarUrl%7D%7D"
        ),
        scopes=("read",),
        scope_separator=",",
        token_endpoint_auth_method=POST,
        default_expires_in=86400,
        identity=_userinfo(
            "data.viewer.id",
            name="data.viewer.name",
            email="data.viewer.email",
            picture="data.viewer.avatarUrl",
        ),
        refresh_tokens="always",
        refresh_how=(
            "on by default for apps created from 2025-10-01, and for all apps from 2026-04-01"
        ),
        registration="An OAuth application in Linear's API settings with the callback URL.",
        quirks=(
            "Scopes are comma-separated; `read` is always granted.",
            "Access tokens last 24 hours; refresh tokens rotate.",
            "`authorize_params.actor=app` makes the app, not the user, the actor of changes.",
        ),
        notes=(
            "The account is read with a GraphQL `viewer` query sent as a GET; that Linear "
            "answers GET queries is unverified.",
            "Client authentication is unverified: the secret in the body.",
            U_REVOKE,
        ),
    ),
    Preset(
        name="asana",
        title="Asana",
        authorize_url="https://app.asana.com/-/oauth_authorize",
        token_url="https://app.asana.com/-/oauth_token",
        userinfo_url="https://app.asana.com/api/1.0/users/me",
        revocation_url="https://app.asana.com/-/oauth_revoke",
        token_endpoint_auth_method=POST,
        identity=_userinfo("data.gid", name="data.name", email="data.email"),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration="An app in the Asana developer console with the redirect URL.",
        quirks=(
            "The reply carries a `data` object (`gid`, `name`, `email`); API replies are "
            "wrapped in `data` too.",
            "Access tokens last 1 hour.",
        ),
        notes=(
            "Refresh token rotation and lifetime are unverified: a refresh token in a reply "
            "replaces the stored one, an absent one keeps it.",
            "The preset asks for no scopes (the app's permissions apply); add them to `scopes` "
            "if your app uses granular scopes.",
        ),
    ),
    Preset(
        name="strava",
        title="Strava",
        authorize_url="https://www.strava.com/oauth/authorize",
        token_url="https://www.strava.com/oauth/token",
        userinfo_url="https://www.strava.com/api/v3/athlete",
        scopes=("read",),
        scope_separator=",",
        token_endpoint_auth_method=POST,
        default_expires_in=21600,
        callback_keep=("scope",),
        dialect=TokenDialect(
            error_fields=("errors.0.field+errors.0.code", "message"),
            description_fields=("message", "errors.0.resource"),
            reauth_errors=frozenset({"refresh_token:invalid"}),
            expires_at_field="expires_at",
            keep=(("athlete_id", "athlete.id"),),
        ),
        identity=_reply(
            "athlete.id", picture="athlete.profile", preferred_username="athlete.username"
        ),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "An API application in the Strava settings; its *Authorization Callback Domain* "
            "must be your app's host."
        ),
        quirks=(
            "The user may untick scopes; the accepted ones come back in the callback's `scope`, "
            "kept as `extra.scope`.",
            "Replies carry `expires_at` (epoch seconds) besides `expires_in`, and an `athlete` "
            "object: its id names the account.",
            "Refresh tokens may rotate: the returned one is stored.",
            'Errors are `{"message": ..., "errors": [...]}`.',
        ),
        notes=(
            "How Strava words a dead refresh token is unverified: an error naming the field "
            "`refresh_token` with code `invalid` (`errors[0]`) is taken to mean log in again, "
            "like `invalid_grant`.",
        ),
    ),
    Preset(
        name="reddit",
        title="Reddit",
        authorize_url="https://www.reddit.com/api/v1/authorize",
        token_url="https://www.reddit.com/api/v1/access_token",
        userinfo_url="https://oauth.reddit.com/api/v1/me",
        revocation_url="https://www.reddit.com/api/v1/revoke_token",
        scopes=("identity",),
        authorize_params=(("duration", "permanent"),),
        refresh_redirect_uri=True,
        user_agent=True,
        dialect=TokenDialect(error_fields=("message",)),
        identity=_userinfo("id", picture="icon_img", preferred_username="name"),
        refresh_tokens="requested",
        refresh_how="`duration=permanent` (set)",
        registration="A *web app* in Reddit's app preferences with the redirect URI.",
        quirks=(
            "Every request needs a unique, descriptive User-Agent: the preset sends "
            "`python:oauth-vault-mw:VERSION`; set `user_agent` to your own, such as "
            "`python:myapp:1.0 (by /u/you)`.",
            "Errors come back with HTTP 200 and an `error` field.",
            "A refresh reply may omit the refresh token (the stored one is kept).",
            "The token endpoint requires HTTP Basic client authentication.",
        ),
        notes=(
            "A refresh sends the `redirect_uri` again, as a secondary source says Reddit "
            "requires; servers that do not need it ignore it.",
        ),
        example=(("user_agent", "python:myapp:1.0 (by /u/myname)"),),
    ),
    Preset(
        name="x",
        title="X (Twitter) OAuth 2.0",
        authorize_url="https://x.com/i/oauth2/authorize",
        token_url="https://api.x.com/2/oauth2/token",
        userinfo_url="https://api.x.com/2/users/me",
        scopes=("tweet.read", "users.read", "offline.access"),
        default_expires_in=7200,
        identity=_userinfo("data.id", name="data.name", preferred_username="data.username"),
        refresh_tokens="requested",
        refresh_how="the `offline.access` scope (set)",
        registration=(
            "A project app in the X developer portal with user authentication set up as a "
            "confidential *Web App* and the callback URI."
        ),
        quirks=(
            "PKCE is required (the vault always sends it).",
            "Confidential clients must use HTTP Basic at the token endpoint.",
            "Access tokens last 2 hours; `/2/users/me` wraps the user in `data`.",
        ),
        notes=(
            "Whether refresh tokens are single use is unverified: a refresh token in a reply "
            "replaces the stored one.",
            "`tweet.read` and `users.read` (for `/2/users/me`) are not in the catalogue.",
            U_REVOKE,
        ),
    ),
    Preset(
        name="figma",
        title="Figma",
        authorize_url="https://www.figma.com/oauth",
        token_url="https://api.figma.com/v1/oauth/token",
        refresh_url="https://api.figma.com/v1/oauth/refresh",
        userinfo_url="https://api.figma.com/v1/me",
        scopes=("current_user:read",),
        scope_separator=",",
        identity=_userinfo("id", name="handle", email="email", picture="img_url"),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration="An OAuth app in Figma's developer settings with the callback URL and scopes.",
        quirks=(
            "Refreshes go to a separate URL, `/v1/oauth/refresh`.",
            "A refresh reply carries no refresh token: the stored one is kept.",
            "Scopes are comma-separated.",
        ),
        notes=(
            "Client authentication is unverified (Basic or a JSON body): the preset sends "
            "HTTP Basic.",
            "Token lifetimes and the user endpoint are unverified: 3600 s is assumed when a "
            "reply has no `expires_in`, and `/v1/me` names the account.",
            "The scope `current_user:read` is not in the catalogue.",
            U_REVOKE,
        ),
    ),
    Preset(
        name="calendly",
        title="Calendly",
        authorize_url="https://auth.calendly.com/oauth/authorize",
        token_url="https://auth.calendly.com/oauth/token",
        userinfo_url="https://api.calendly.com/users/me",
        token_endpoint_auth_method=POST,
        default_expires_in=7200,
        dialect=TokenDialect(keep=(("owner", "owner"), ("organization", "organization"))),
        identity=_reply("owner"),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "An OAuth app in the Calendly developer portal with the redirect URI; apps created "
            "after 2026-03-03 get data only for the scopes Calendly approved (add them to "
            "`scopes`)."
        ),
        quirks=(
            "Refresh tokens are single use with no grace, and do not expire until used.",
            "Access tokens last 2 hours; authorization codes 10 minutes.",
            "The reply's `owner` (the user's URI) names the account; it and `organization` "
            "are kept.",
        ),
        notes=(
            "Client authentication is unverified: the preset sends the secret in the body, as "
            "the catalogue leans.",
            "The scope separator is unverified: spaces.",
            U_REVOKE,
        ),
    ),
    Preset(
        name="zendesk",
        title="Zendesk",
        authorize_url="https://{subdomain}.zendesk.com/oauth/authorizations/new",
        token_url="https://{subdomain}.zendesk.com/oauth/tokens",
        userinfo_url="https://{subdomain}.zendesk.com/api/v2/users/me.json",
        variables=(
            Variable(
                "subdomain",
                "label",
                "your Zendesk subdomain (`{subdomain}.zendesk.com`)",
                "example",
            ),
        ),
        scopes=("read",),
        token_endpoint_auth_method=POST,
        default_expires_in=None,
        identity=_userinfo("user.id", name="user.name", email="user.email"),
        refresh_tokens="opt-in",
        refresh_how=(
            "for OAuth clients on the refresh grant (announced 2025-04-30, required for all "
            "from 2026-04-30); legacy clients get long-lived tokens and no refresh token"
        ),
        registration=(
            "An OAuth client in the Zendesk Admin Center with the redirect URL; it serves one "
            "Zendesk instance unless Zendesk made it global."
        ),
        quirks=(
            "A refresh deletes the previous access and refresh tokens.",
            "Lifetimes can be set per request (`expires_in`, `refresh_token_expires_in`); the "
            "vault sends neither, so Zendesk's defaults apply.",
            "A reply without `expires_in` (legacy client) is taken as never expiring.",
        ),
        notes=(
            "The user endpoint and the scope separator are unverified: `/api/v2/users/me.json` "
            "(`user.id`), and spaces.",
        ),
    ),
    Preset(
        name="mailchimp",
        title="Mailchimp",
        authorize_url="https://login.mailchimp.com/oauth2/authorize",
        token_url="https://login.mailchimp.com/oauth2/token",
        userinfo_url="https://login.mailchimp.com/oauth2/metadata",
        token_endpoint_auth_method=POST,
        default_expires_in=None,
        dialect=TokenDialect(zero_expires_never=True),
        identity=replace(
            _userinfo("user_id", name="accountname", email="login.login_email"),
            token_scheme="OAuth",
        ),
        refresh_tokens="never",
        refresh_how="none: tokens never expire",
        registration="An app registered in your Mailchimp account with the redirect URI.",
        quirks=(
            "No scopes and no refresh token; the reply says `expires_in: 0` (never expires) "
            "and `scope: null`.",
            "API calls go to the account's data centre: `dc` and `api_endpoint` of the "
            "metadata document (`https://login.mailchimp.com/oauth2/metadata`).",
        ),
        notes=(
            "The metadata document is read with the documented `Authorization: OAuth <token>` "
            "header. Its `user_id` as the account id is unverified.",
        ),
    ),
    Preset(
        name="pinterest",
        title="Pinterest (API v5)",
        authorize_url="https://www.pinterest.com/oauth/",
        token_url="https://api.pinterest.com/v5/oauth/token",
        userinfo_url="https://api.pinterest.com/v5/user_account",
        scopes=("user_accounts:read",),
        scope_separator=",",
        default_expires_in=2592000,
        identity=_userinfo("username", picture="profile_image", preferred_username="username"),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration="An app in the Pinterest developer portal with the redirect URI.",
        quirks=(
            "The token endpoint requires HTTP Basic client authentication.",
            "Access tokens last about 30 days, refresh tokens about a year "
            "(`refresh_token_expires_in`).",
            "Continuous refresh (`refresh_on` in the token request, new refresh tokens on "
            "each refresh) is not asked for.",
        ),
        notes=(
            "The scope separator and the account id field are unverified: commas, and "
            "`username` of `/v5/user_account`, the one field every source shows (a numeric "
            "`id` is unverified; set `subject_claim` to use it).",
            U_REVOKE,
        ),
    ),
    Preset(
        name="yahoo",
        title="Yahoo",
        authorize_url="https://api.login.yahoo.com/oauth2/request_auth",
        token_url="https://api.login.yahoo.com/oauth2/get_token",
        userinfo_url="https://api.login.yahoo.com/openid/v1/userinfo",
        scopes=("openid", "profile", "email"),
        refresh_redirect_uri=True,
        identity=OIDC_USERINFO,
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "An app in the Yahoo developer network with the redirect URI and the OpenID Connect "
            "permissions (profile, email)."
        ),
        quirks=(
            "The token endpoint requires HTTP Basic client authentication.",
            "A refresh must send the `redirect_uri` (the vault does).",
            "Refresh tokens do not expire.",
        ),
        notes=(
            "The OIDC issuer is unverified: the preset uses plain OAuth 2.0 and names the "
            "account from the userinfo endpoint (`sub`).",
            U_REVOKE,
        ),
    ),
    Preset(
        name="bitbucket",
        title="Bitbucket Cloud",
        authorize_url="https://bitbucket.org/site/oauth2/authorize",
        token_url="https://bitbucket.org/site/oauth2/access_token",
        userinfo_url="https://api.bitbucket.org/2.0/user",
        default_expires_in=7200,
        identity=_userinfo(
            "uuid", name="display_name", picture="links.avatar.href", preferred_username="nickname"
        ),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "An OAuth consumer in the workspace settings with the callback URL and its "
            "permissions (they are the scopes; *Account: Read* for the user endpoint)."
        ),
        quirks=(
            "Scopes come from the consumer's permissions: the preset asks for none.",
            "The token endpoint requires HTTP Basic client authentication.",
            "The reply names its scopes in `scopes`, not `scope`.",
            "Not Atlassian's 3LO: no audience, no cloud id.",
        ),
        notes=(
            "Refresh token rotation and lifetime are unverified: a refresh token in a reply "
            "replaces the stored one.",
            U_REVOKE,
        ),
    ),
    Preset(
        name="amazon",
        title="Login with Amazon",
        authorize_url="https://www.amazon.com/ap/oa",
        token_url="https://api.amazon.{tld}/auth/o2/token",
        userinfo_url="https://api.amazon.com/user/profile",
        variables=(
            Variable(
                "tld",
                "host",
                "the token host's region: `com` (North America), `co.uk` (Europe), `co.jp` "
                "(Far East)",
                "co.uk",
                default="com",
            ),
        ),
        scopes=("profile",),
        token_endpoint_auth_method=POST,
        identity=_userinfo("user_id", name="name", email="email"),
        refresh_tokens="always",
        refresh_how="with the code when the client secret is sent (it is)",
        registration=(
            "A security profile in the Amazon developer console with the redirect URI under "
            "*Web Settings* (allowed return URLs)."
        ),
        quirks=(
            "Access tokens (`Atza|...`) last 60 minutes; a refresh returns a new access token "
            "and a new refresh token (`Atzr|...`).",
            "Without the client secret there is no refresh token.",
        ),
        notes=(U_REVOKE,),
    ),
    Preset(
        name="digitalocean",
        title="DigitalOcean",
        authorize_url="https://cloud.digitalocean.com/v1/oauth/authorize",
        token_url="https://cloud.digitalocean.com/v1/oauth/token",
        userinfo_url="https://api.digitalocean.com/v2/account",
        revocation_url="https://cloud.digitalocean.com/v1/oauth/revoke",
        scopes=("read",),
        token_endpoint_auth_method=POST,
        identity=_userinfo("account.uuid", email="account.email"),
        refresh_tokens="always",
        refresh_how="always, with the authorization code",
        registration=(
            "An OAuth application in the DigitalOcean control panel with the callback URL."
        ),
        quirks=(
            "Refreshes use the token URL with `grant_type=refresh_token` (older documentation "
            "names a separate `/refresh` endpoint).",
            "The reply carries an `info` object (name, email, uuid).",
        ),
        notes=(
            "Client authentication, lifetimes and rotation are unverified: the secret in the "
            "body, 3600 s assumed when a reply has no `expires_in`, and a refresh token in a "
            "reply replaces the stored one.",
        ),
    ),
    Preset(
        name="stripe",
        title="Stripe Connect (OAuth, legacy)",
        authorize_url="https://connect.stripe.com/oauth/authorize",
        token_url="https://connect.stripe.com/oauth/token",
        userinfo_url="https://api.stripe.com/v1/account",
        scopes=("read_write",),
        token_endpoint_auth_method=POST,
        default_expires_in=None,
        dialect=TokenDialect(
            keep=(
                ("stripe_user_id", "stripe_user_id"),
                ("stripe_publishable_key", "stripe_publishable_key"),
                ("livemode", "livemode"),
            )
        ),
        identity=_reply("stripe_user_id"),
        refresh_tokens="always",
        refresh_how="always, with the authorization code (tokens do not expire)",
        registration=(
            "Connect enabled on your platform account, with the redirect URI in the Connect "
            "OAuth settings; `client_secret` is your platform's secret key."
        ),
        quirks=(
            "Tokens do not expire and the reply has no `expires_in`.",
            "The connected account's id, `stripe_user_id`, names the account and is kept with "
            "`livemode` and the publishable key.",
            "Connect OAuth is legacy: new public integrations use Stripe Apps OAuth, whose "
            "client authentication (Basic with the secret key as the user name) has no preset.",
        ),
        notes=(
            "Client authentication is secondary-sourced as a Bearer header and unverified as a "
            "form field: the preset sends the secret key as `client_secret` in the body.",
            U_REVOKE,
        ),
    ),
)

PRESETS = check_table(TABLE)
"""The presets by name, checked at import."""
