"""The testing provider's endpoints: authorization, token, userinfo, revocation, discovery.

:class:`ProviderEndpoints` holds the state and answers one :class:`Incoming` at a time under
one lock; :class:`~oauth_vault_mw.testing.OpenIDProvider` adds the controls a test uses.
Behaviour, as a strict real provider:

- authorization (RFC 6749 4.1, RFC 7636, RFC 9207): unknown ``client_id`` or an unregistered
  ``redirect_uri`` get an error page, never a redirect; then ``response_type=code`` and a PKCE
  ``S256`` challenge are required; the redirect carries ``code``, ``state`` and ``iss``;
- token: ``client_secret_basic`` or ``client_secret_post`` (``none`` for a public client);
  a code is single use (a second exchange is refused and revokes what the first one issued,
  RFC 6749 4.1.2), expires after ``code_ttl`` seconds, and is bound to its client, redirect
  URI and PKCE verifier; refresh tokens rotate: the old one is refused from then on;
- userinfo (RFC 6750): a valid Bearer access token, else 401 ``invalid_token``;
- revocation (RFC 7009): client authentication; a refresh token revokes its whole grant, an
  access token itself only; an unknown token is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ._http import (
    NO_STORE,
    Incoming,
    ProtocolError,
    Reply,
    basic_credentials,
    html_reply,
    json_reply,
    redirect_reply,
    with_query,
)
from ._keys import SigningKey, at_hash
from ._state import AccessToken, Client, Code, Grant, Tally, User, scoped_claims

__all__ = ["DEFAULT_LOGIN", "ProviderEndpoints"]

DEFAULT_LOGIN = "alice"
"""Who the authorization endpoint approves before any ``login_as``."""

_CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{43,128}\Z")
_ROUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "/.well-known/openid-configuration": ("discovery", ("GET",)),
    "/.well-known/oauth-authorization-server": ("discovery", ("GET",)),
    "/jwks": ("jwks", ("GET",)),
    "/authorize": ("authorize", ("GET", "POST")),
    "/token": ("token", ("POST",)),
    "/userinfo": ("userinfo", ("GET", "POST")),
    "/revoke": ("revoke", ("POST",)),
}


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class ProviderEndpoints:
    """State and endpoints; see the module docstring."""

    def __init__(
        self,
        *,
        issuer: str,
        signing_key: SigningKey,
        access_token_ttl: int | None,
        refresh_token_ttl: int | None,
        code_ttl: int,
        issue_refresh_tokens: bool,
        clock: Callable[[], float],
    ) -> None:
        self._issuer = issuer.rstrip("/")
        self._key = signing_key
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.code_ttl = code_ttl
        self.issue_refresh_tokens = issue_refresh_tokens
        self.clock = clock
        self.down = False
        self.scope_on_callback = False
        self.scope_in_reply = True
        self._lock = threading.RLock()
        self._clients: dict[str, Client] = {}
        self._users: dict[str, User] = {}
        self._current = DEFAULT_LOGIN
        self._codes: dict[str, Code] = {}
        self._refresh: dict[str, Grant] = {}
        self._access: dict[str, AccessToken] = {}
        self._grants: list[Grant] = []
        self._refuse_login: list[tuple[str, str]] = []
        self._refuse_refresh: list[tuple[str, str]] = []
        self._declines: list[frozenset[str]] = []
        self._tally = Tally()

    # ------------------------------------------------------------------ dispatch

    def handle(
        self, method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        """Answer one request (what every transport and server calls)."""
        with self._lock:
            route = _ROUTES.get(urlsplit(url).path.rstrip("/") or "/")
            name = route[0] if route else "unknown"
            self._tally.requests[name] += 1
            if self.down:
                self._tally.refusals["temporarily_unavailable"] += 1
                error = ProtocolError(
                    "temporarily_unavailable", "the provider is down", 503, (("retry-after", "1"),)
                )
                return error.reply()
            if route is None:
                return json_reply({"error": "not_found"}, 404)
            if method.upper() not in route[1]:
                allow = (("allow", ", ".join(route[1])),)
                return json_reply({"error": "method_not_allowed"}, 405, headers=allow)
            try:
                request = Incoming.parse(method, url, headers, body)
                if name == "authorize":
                    return self._authorize(request, None)
                return self._answer(name, request)
            except ProtocolError as exc:
                self._tally.refusals[exc.error] += 1
                return exc.reply()

    def _answer(self, name: str, request: Incoming) -> Reply:
        if name == "discovery":
            return json_reply(self._discovery())
        if name == "jwks":
            return json_reply(self._key.jwks())
        if name == "token":
            return self._token(request)
        if name == "userinfo":
            return self._userinfo(request)
        return self._revoke(request)

    def _discovery(self) -> dict[str, Any]:
        base = self._issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "revocation_endpoint": f"{base}/revoke",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "claims_supported": [
                "sub",
                "name",
                "preferred_username",
                "picture",
                "email",
                "email_verified",
            ],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
        }

    # ------------------------------------------------------------------ authorization

    def _user(self, login: str) -> User:
        user = self._users.get(login)
        if user is None:
            user = self._users[login] = User.named(login, {})
        return user

    def _authorize(self, request: Incoming, login: str | None) -> Reply:
        params = request.query if request.method == "GET" else request.form
        client = self._clients.get(params.get("client_id", ""))
        if client is None:
            self._tally.refusals["invalid_client"] += 1
            return html_reply(400, "Unknown client", "client_id names no registered client.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            self._tally.refusals["invalid_redirect_uri"] += 1
            return html_reply(
                400,
                "Unregistered redirect URI",
                f"redirect_uri {redirect_uri!r} is not registered for client "
                f"{client.client_id!r}; registered: {', '.join(client.redirect_uris)}",
            )
        back = {"iss": self._issuer}
        if "state" in params:
            back["state"] = params["state"]

        def refuse(error: str, description: str) -> Reply:
            self._tally.refusals[error] += 1
            query = {"error": error, "error_description": description, **back}
            return redirect_reply(with_query(redirect_uri, query))

        if params.get("response_type") != "code":
            return refuse("unsupported_response_type", "response_type must be code")
        challenge = params.get("code_challenge")
        if not challenge:
            return refuse("invalid_request", "PKCE is required: code_challenge is missing")
        if params.get("code_challenge_method") != "S256":
            return refuse("invalid_request", "code_challenge_method must be S256")
        if not _CHALLENGE.match(challenge):
            return refuse("invalid_request", "code_challenge is malformed")
        if self._refuse_login:
            return refuse(*self._refuse_login.pop(0))
        user = self._user(login or params.get("login_hint") or self._current)
        now = self.clock()
        code = secrets.token_urlsafe(32)
        scope = params.get("scope", "")
        if self._declines:  # the user unticks these at the consent
            declined = self._declines.pop(0)
            scope = " ".join(s for s in scope.split() if s not in declined or s == "openid")
        if self.scope_on_callback:
            back["scope"] = scope
        self._codes[code] = Code(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            code_challenge=challenge,
            scope=scope,
            nonce=params.get("nonce"),
            user=user,
            expires_at=now + self.code_ttl,
            auth_time=int(now),
        )
        self._tally.authorizations += 1
        return redirect_reply(with_query(redirect_uri, {"code": code, **back}))

    # ------------------------------------------------------------------ token

    def _client(self, request: Incoming) -> Client:
        """The authenticated client of a token or revocation request."""
        basic = basic_credentials(request)
        posted_id, posted_secret = request.form.get("client_id"), request.form.get("client_secret")
        challenge: tuple[tuple[str, str], ...] = ()
        secret: str | None
        if basic is not None:
            if posted_secret is not None:
                raise ProtocolError("invalid_request", "client credentials sent twice")
            if posted_id is not None and posted_id != basic[0]:
                raise ProtocolError("invalid_request", "client_id differs from the Basic id")
            client_id, secret = basic[0], basic[1]
            challenge = (("www-authenticate", 'Basic realm="token"'),)
        else:
            client_id, secret = posted_id or "", posted_secret
        client = self._clients.get(client_id)
        if client is None:
            raise ProtocolError("invalid_client", "unknown client", 401, challenge)
        if client.client_secret is None:
            if secret:
                raise ProtocolError("invalid_client", "a public client has no secret", 401)
            return client
        if secret is None or not secrets.compare_digest(secret, client.client_secret):
            raise ProtocolError("invalid_client", "client authentication failed", 401, challenge)
        return client

    def _token(self, request: Incoming) -> Reply:
        client = self._client(request)
        grant_type = request.form.get("grant_type")
        if grant_type == "authorization_code":
            body = self._exchange_code(client, request.form)
        elif grant_type == "refresh_token":
            body = self._refresh_grant(client, request.form)
        else:
            raise ProtocolError("unsupported_grant_type", f"grant_type {grant_type!r}")
        self._tally.grants[grant_type] += 1
        return json_reply(body, headers=NO_STORE)

    def _exchange_code(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        code = self._codes.get(form.get("code", ""))
        if code is None or code.client_id != client.client_id:
            raise ProtocolError("invalid_grant", "unknown authorization code")
        if code.used_by is not None:
            self._revoke_grant(code.used_by)
            raise ProtocolError("invalid_grant", "the authorization code was already used")
        if self.clock() >= code.expires_at:
            raise ProtocolError("invalid_grant", "the authorization code expired")
        if form.get("redirect_uri") != code.redirect_uri:
            raise ProtocolError("invalid_grant", "redirect_uri differs from the authorization's")
        verifier = form.get("code_verifier")
        if not verifier:
            raise ProtocolError("invalid_grant", "PKCE verification failed: no code_verifier")
        if not secrets.compare_digest(_s256(verifier), code.code_challenge):
            raise ProtocolError("invalid_grant", "PKCE verification failed")
        grant = Grant(client.client_id, code.user, code.scope)
        code.used_by = grant
        self._grants.append(grant)
        return self._issue(grant, nonce=code.nonce, auth_time=code.auth_time, rotate=True)

    def _refresh_grant(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        if self._refuse_refresh:
            error, description = self._refuse_refresh.pop(0)
            raise ProtocolError(error, description)
        token = form.get("refresh_token", "")
        grant = self._refresh.get(token)
        if grant is None or grant.client_id != client.client_id or grant.revoked:
            raise ProtocolError("invalid_grant", "unknown, used or revoked refresh token")
        if grant.refresh_expires_at is not None and self.clock() >= grant.refresh_expires_at:
            raise ProtocolError("invalid_grant", "the refresh token expired")
        scope = form.get("scope")
        if scope is not None and not set(scope.split()) <= set(grant.scope.split()):
            raise ProtocolError("invalid_scope", "a refresh cannot widen the grant's scope")
        del self._refresh[token]
        grant.refresh_token = None
        return self._issue(grant, nonce=None, auth_time=None, rotate=True, scope=scope)

    def _issue(
        self,
        grant: Grant,
        *,
        nonce: str | None,
        auth_time: int | None,
        rotate: bool,
        scope: str | None = None,
    ) -> dict[str, Any]:
        now = self.clock()
        scope = grant.scope if scope is None else scope
        access = secrets.token_urlsafe(32)
        ttl = self.access_token_ttl
        expires_at = now + ttl if ttl is not None else float("inf")
        self._access[access] = AccessToken(grant, scope, expires_at)
        grant.access_tokens.add(access)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer"}
        if self.scope_in_reply:
            body["scope"] = scope
        if ttl is not None:
            body["expires_in"] = ttl
        if rotate and self.issue_refresh_tokens:
            refresh = secrets.token_urlsafe(32)
            self._refresh[refresh] = grant
            grant.refresh_token = refresh
            if self.refresh_token_ttl is not None:
                grant.refresh_expires_at = now + self.refresh_token_ttl
            body["refresh_token"] = refresh
        if "openid" in scope.split():
            body["id_token"] = self._id_token(grant, access, now, nonce, auth_time)
        return body

    def _id_token(
        self, grant: Grant, access: str, now: float, nonce: str | None, auth_time: int | None
    ) -> str:
        claims: dict[str, Any] = scoped_claims(grant.user, set(grant.scope.split()))
        claims.update(
            {
                "iss": self._issuer,
                "aud": grant.client_id,
                "azp": grant.client_id,
                "iat": int(now),
                "exp": int(now) + 3600,
                "at_hash": at_hash(access),
            }
        )
        if nonce is not None:
            claims["nonce"] = nonce
        if auth_time is not None:
            claims["auth_time"] = auth_time
        return self._key.sign(claims)

    # ------------------------------------------------------------------ userinfo, revocation

    def _userinfo(self, request: Incoming) -> Reply:
        self._tally.userinfo += 1
        token = request.bearer()
        if token is None:
            raise ProtocolError(
                "invalid_request", "no Bearer token", 401, (("www-authenticate", "Bearer"),)
            )
        access = self._access.get(token)
        if (
            access is None
            or access.revoked
            or access.grant.revoked
            or self.clock() >= access.expires_at
        ):
            challenge = 'Bearer error="invalid_token"'
            raise ProtocolError(
                "invalid_token",
                "unknown, expired or revoked access token",
                401,
                (("www-authenticate", challenge),),
            )
        return json_reply(scoped_claims(access.grant.user, set(access.scope.split())))

    def _revoke(self, request: Incoming) -> Reply:
        client = self._client(request)
        token = request.form.get("token")
        if not token:
            raise ProtocolError("invalid_request", "token is missing")
        grant = self._refresh.get(token)
        access = self._access.get(token)
        if grant is not None and grant.client_id == client.client_id:
            self._revoke_grant(grant)
        elif access is not None and access.grant.client_id == client.client_id:
            access.revoked = True
        self._tally.revocations += 1
        return Reply(200, NO_STORE)

    def _revoke_grant(self, grant: Grant) -> None:
        grant.revoked = True
        if grant.refresh_token is not None:
            self._refresh.pop(grant.refresh_token, None)
            grant.refresh_token = None
        for token in grant.access_tokens:
            access = self._access.get(token)
            if access is not None:
                access.revoked = True
