"""Login, connect and sessions (async): the I/O around ``core/flow.py`` and ``core/idtoken.py``.

``begin_login`` seals the login transaction (state, PKCE verifier, nonce, return path) into
the state cookie it returns with the provider's URL, and stores nothing: an anonymous request
leaves no row behind. ``complete_login`` opens that cookie, checks the callback against it,
exchanges the code (single use at the provider: a replay is refused there), identifies the
account (ID token or the user endpoint), stores the credential, opens a new session and
clears the cookie. Now and then a login also purges expired sessions, in one bounded batch
(``core/purge.py``).
"""

from __future__ import annotations

import inspect  # unasync: remove
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..core.accounts import NEW_ACCOUNT
from ..core.connections import ConnectionConfig
from ..core.cookies import CookieSpec, hash_id
from ..core.errors import (
    BadRequest,
    CallbackError,
    CredentialUnreadable,
    IdentityConflict,
    NotAuthenticated,
    ProviderUnavailable,
    StorageUnavailable,
    VaultError,
)
from ..core.flow import authorization_url, callback_state, new_transaction, verify_callback
from ..core.hooks import LoginEvent, LoginRefused
from ..core.http import ProviderCallFailed
from ..core.identity import (
    LoginResult,
    NewIdentity,
    account_subject,
    callback_extra,
    check_user_id,
    display_profile,
    token_response_document,
    userinfo_request,
)
from ..core.idtoken import UnknownSigningKey, validate_id_token
from ..core.model import CredentialKey, TokenSet
from ..core.purge import PurgeSchedule
from ..core.records import open_transaction, seal_transaction
from ..core.scopes import connect_scopes, login_scope
from ..core.token_requests import (
    code_exchange_request,
)
from ..core.tokens import (
    TokenGranted,
    TokenRejected,
    TokenRetryable,
    pick_kept,
)
from ..storage import async_purge_expired  # unasync: remove
from .accounts import AsyncAccounts

# unasync: sync-only: from ..storage import purge_expired

__all__ = ["AsyncLogin"]

logger = logging.getLogger("oauth_vault_mw")

CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})
"""Token endpoint errors about the app's own client settings, not the user's login."""


class AsyncLogin(AsyncAccounts):
    """Logins and connects through a provider, and the sessions they open."""

    purge_schedule: PurgeSchedule | None = None
    """When logins purge expired sessions (made at the first login; set one to change it)."""

    async def begin_login(
        self,
        connection_id: str,
        *,
        return_to: str,
        user_id: str | None = None,
        scopes: Sequence[str] = (),
        account: str | None = None,
    ) -> tuple[str, CookieSpec]:
        """Start a login (``user_id`` None) or a connect; return the provider URL and the
        state cookie that holds the login. Nothing is stored.

        A login asks for the connection's scopes. A connect asks for those, the scopes the
        user's credential holds already, and ``scopes`` (incremental authorization: see
        ``core/scopes.py``). ``account`` (a connect's): ``"new"`` links another account of
        the connection (the provider is asked to let the user choose, ``core/accounts.py``);
        an account id grows that account's grant; ``None``: the default account's."""
        conn = self.connection(connection_id)
        asked: tuple[str, ...] | None = None
        if user_id is not None:
            if account == NEW_ACCOUNT:
                stored = None
            elif account is not None:
                stored = await self.locate_account(conn.id, user_id, account)
            else:
                stored = await self.storage.get_credential(CredentialKey(conn.id, user_id))
            asked = connect_scopes(conn, stored.scope if stored else None, scopes)
        elif scopes or account is not None:
            raise BadRequest(
                f"more scopes and other accounts are asked for at {self.settings.prefix}/connect"
            )
        endpoints = await self.provider.endpoints(conn)
        tx = new_transaction(
            conn,
            mode="login" if user_id is None else "connect",
            return_to=return_to,
            user_id=user_id,
            now=self.clock(),
            scope=asked,
            account=account,
        )
        cookie = self.cookies.state_cookie(tx.state, seal_transaction(self.sealer, tx))
        url = authorization_url(
            conn, endpoints.authorize_url, self.settings.redirect_uri(conn.id), tx
        )
        return url, cookie

    async def complete_login(
        self,
        connection_id: str,
        params: Mapping[str, str],
        *,
        state_cookie: str | None,
        session_cookie: str | None,
    ) -> LoginResult:
        """Check the callback against the login its state cookie (``state_cookie``, the
        value of the cookie named ``cookies.state_name(state)``) holds, exchange the code,
        store the credential, open a session."""
        conn = self.connection(connection_id)
        tx = None
        sealed = self.cookies.read_state(state_cookie)  # signature and age
        if sealed is not None:
            try:
                tx = open_transaction(self.sealer, sealed)
            except CredentialUnreadable:  # sealed with a key no longer configured
                tx = None
        callback_state(params, tx.state if tx is not None else None)
        assert tx is not None  # callback_state refuses a callback without one
        now = self.clock()
        endpoints = await self.provider.endpoints(conn)
        code = verify_callback(
            params,
            tx,
            connection_id=connection_id,
            expected_issuer=endpoints.issuer,
            iss_required=endpoints.iss_parameter_supported,
            now=now,
            max_age=self.settings.state_max_age,
        )
        request = code_exchange_request(
            conn,
            endpoints.token_url,
            code,
            self.settings.redirect_uri(conn.id),
            tx.code_verifier,
            now=self.clock(),
            signer=self.client_signer,
        )
        try:
            resp = await self.provider.send(
                request, connection_id=conn.id, operation="code_exchange"
            )
        except ProviderCallFailed:
            raise ProviderUnavailable("the provider's token endpoint did not answer") from None
        outcome = self._token_outcome(conn, resp)
        if isinstance(outcome, TokenRejected):
            if outcome.error in CLIENT_ERRORS:
                logger.warning(
                    "the token endpoint refused the client (%s) connection=%s client_id=%s: "
                    "check the connection's client_id, client_secret and "
                    "token_endpoint_auth_method in OAUTH_VAULT_CONNECTIONS",
                    outcome.error,
                    conn.id,
                    conn.client_id,
                )
                raise CallbackError(
                    f"the provider refused this app's client credentials ({outcome.error}): "
                    f"check the client_id, client_secret and token_endpoint_auth_method of "
                    f"connection {conn.id!r}",
                    error="invalid_callback",
                )
            logger.warning(
                "the token endpoint refused the authorization code (%s) connection=%s",
                outcome.error,
                conn.id,
            )
            raise CallbackError(
                f"the provider refused the authorization code: {outcome.error}",
                error="invalid_grant" if outcome.error == "invalid_grant" else "invalid_callback",
            )
        if isinstance(outcome, TokenRetryable):
            raise ProviderUnavailable("the provider's token endpoint failed")
        claims = await self._identify(conn, outcome, resp.body, tx.nonce)
        subject = account_subject(conn.identity_spec, claims)
        known = await self.storage.get_identity(conn.id, subject)
        if tx.mode == "connect":
            assert tx.user_id is not None
            user_id = tx.user_id
            if known is not None and known != user_id:
                raise IdentityConflict()
        elif known is not None:
            user_id = known
        else:
            user_id = await self._propose_user_id(conn, subject, claims)
        tokens = outcome.tokens
        asked = tx.asked(conn)
        granted = login_scope(tokens.scope, params.get("scope"), " ".join(asked))
        tokens = replace(tokens, scope=granted, asked_scope=" ".join(asked))
        kept = callback_extra(conn.callback_keep, params) + await self._extra_document(conn, tokens)
        if kept:
            tokens = replace(tokens, extra=(*tokens.extra, *kept))
        profile = await self._profile(conn, claims, tokens.access_token)
        tokens = replace(tokens, profile=profile, login_at=now)
        if self.hooks.on_login is not None:  # before anything is stored: it may refuse
            event = LoginEvent(
                user_id=user_id,
                connection_id=conn.id,
                mode=tx.mode,
                new_user=known is None,
                subject=subject,
                profile=dict(profile),
                scopes=tuple((tokens.scope or "").split()),
            )
            try:
                await self._call_hook(self.hooks.on_login, event)
            except LoginRefused:
                logger.info("login refused by the on_login hook connection=%s", conn.id)
                raise
            except Exception:
                logger.exception("the on_login hook failed; the login fails, nothing stored")
                raise VaultError("the login could not be completed") from None
        if known is None:
            bound = await self.storage.link_identity(conn.id, subject, user_id)
            if tx.mode == "connect" and bound != user_id:
                raise IdentityConflict()
            user_id = bound  # a first login of the same account elsewhere may have won
        await self.store_login_tokens(conn.id, user_id, subject, tokens, new_link=known is None)
        cookies: list[CookieSpec] = [self.cookies.clear_state(tx.state)]
        if tx.mode == "login":
            await self.logout(session_cookie)  # a new session at every login: no fixation
            session_id = secrets.token_urlsafe(32)
            await self.storage.create_session(
                hash_id(session_id), user_id, self.clock() + self.settings.session_max_age
            )
            cookies.append(self.cookies.session_cookie(session_id))
        logger.info("login completed connection=%s user=%s mode=%s", conn.id, user_id, tx.mode)
        await self._audit(f"user:{user_id}", tx.mode, "ok", conn.id, user_id)
        await self._purge_if_due()
        return LoginResult(user_id, tx.return_to, tuple(cookies))

    async def _purge_if_due(self) -> None:
        """One bounded batch of expired sessions (and old login states) when the schedule
        says so. A failure is logged, never the login's."""
        schedule = self.purge_schedule
        if schedule is None:
            schedule = self.purge_schedule = PurgeSchedule()
        now, batch = self.clock(), schedule.batch
        if not schedule.due(now):
            return
        try:
            purged = await async_purge_expired(self.storage, now, batch)  # unasync: remove
            # unasync: sync-only: purged = purge_expired(self.storage, now, batch)
        except StorageUnavailable:
            logger.warning("purging expired sessions failed; the next purge retries")
            return
        if purged is not None and purged.total:
            logger.info(
                "purged expired sessions=%d login_states=%d",
                purged.sessions,
                purged.login_states,
            )

    async def _profile(
        self, conn: ConnectionConfig, claims: Mapping[str, Any], access_token: str
    ) -> tuple[tuple[str, Any], ...]:
        """The account's display claims: from the document that named it; when that is an
        ID token without any, from the provider's user endpoint (a failure there leaves the
        profile empty: it never fails a login)."""
        profile = display_profile(claims)
        if profile or conn.identity_spec.source != "id_token":
            return profile
        endpoints = await self.provider.endpoints(conn)
        if endpoints.userinfo_url is None:
            return ()
        url, headers = userinfo_request(conn, endpoints.userinfo_url, access_token)
        try:
            document = await self.provider.get_json(
                url,
                headers=headers,
                label="user endpoint",
                hidden=access_token,
                connection_id=conn.id,
                operation="userinfo",
            )
        except ProviderCallFailed:
            logger.warning("no profile: the user endpoint failed connection=%s", conn.id)
            return ()
        if str(document.get("sub")) != str(claims.get("sub")):
            return ()  # OpenID Connect Core 5.3.2: another account's claims are not used
        return display_profile(document)

    async def _identify(
        self, conn: ConnectionConfig, granted: TokenGranted, body: bytes, nonce: str | None
    ) -> dict[str, Any]:
        """The document that names the account: the ID token's claims, the user endpoint's
        JSON, or the token reply itself, as the connection's identity spec says."""
        source = conn.identity_spec.source
        if source == "token_response":
            return token_response_document(body)
        endpoints = await self.provider.endpoints(conn)
        if source == "userinfo":
            if endpoints.userinfo_url is None:
                raise CallbackError(
                    "no user endpoint to name the account", error="invalid_userinfo"
                )
            try:
                url, headers = userinfo_request(
                    conn, endpoints.userinfo_url, granted.tokens.access_token
                )
                return await self.provider.get_json(
                    url,
                    headers=headers,
                    label="user endpoint",
                    hidden=granted.tokens.access_token,
                    connection_id=conn.id,
                    operation="userinfo",
                )
            except ProviderCallFailed:
                raise ProviderUnavailable("the provider's user endpoint failed") from None
        if granted.id_token is None:
            raise CallbackError("the provider sent no ID token", error="invalid_id_token")
        assert endpoints.issuer is not None
        for force in (False, True):
            try:
                return validate_id_token(
                    granted.id_token,
                    jwks=await self.provider.jwks(conn, force=force),
                    issuer=endpoints.issuer,
                    client_id=conn.client_id,
                    nonce=nonce,
                    now=self.clock(),
                    leeway=self.settings.clock_skew,
                    algorithms=endpoints.id_token_algorithms,
                    access_token=granted.tokens.access_token,
                )
            except UnknownSigningKey:
                continue
        raise CallbackError("the ID token is signed by an unknown key", error="invalid_id_token")

    async def _extra_document(
        self, conn: ConnectionConfig, tokens: TokenSet
    ) -> tuple[tuple[str, Any], ...]:
        """The values a preset keeps from a document read with the new token at login (Xero's
        tenants). A provider that fails here fails the login, as a user endpoint does, so that
        a credential never lacks what its preset promises."""
        if conn.extra_url is None:
            return ()
        url, headers = userinfo_request(conn, conn.extra_url, tokens.access_token)
        try:
            document = await self.provider.get_json_value(
                url,
                headers=headers,
                label="extra",
                hidden=tokens.access_token,
                connection_id=conn.id,
                operation="extra",
            )
        except ProviderCallFailed:
            raise ProviderUnavailable("the provider's account document failed") from None
        return pick_kept(document, conn.extra_keep)

    async def _propose_user_id(
        self, conn: ConnectionConfig, subject: str, claims: Mapping[str, Any]
    ) -> str:
        """The user id for an account never seen before (the ``new_user_id`` hook's)."""
        proposed = self._new_user_id(NewIdentity(conn.id, subject, claims))
        if inspect.isawaitable(proposed):  # unasync: remove
            proposed = await proposed  # unasync: remove
        return check_user_id(proposed, source="new_user_id hook", host_bug=True)

    async def user_for_session(self, cookie_value: str | None) -> str | None:
        session_hash = self.cookies.session_hash(cookie_value)
        if session_hash is None:
            return None
        return await self.storage.get_session(session_hash, self.clock())

    async def require_user(self, cookie_value: str | None) -> str:
        user_id = await self.user_for_session(cookie_value)
        if user_id is None:
            raise NotAuthenticated()
        return user_id

    async def logout(self, cookie_value: str | None) -> CookieSpec:
        session_id = self.cookies.read_session(cookie_value)
        if session_id is not None:
            session_hash = hash_id(session_id)
            user_id = await self.storage.get_session(session_hash, self.clock())
            await self.storage.delete_session(session_hash)
            if user_id is not None:
                await self._audit(f"user:{user_id}", "logout", "ok", None, user_id)
        self.cookies.forget_session(cookie_value)
        return self.cookies.clear_session()
