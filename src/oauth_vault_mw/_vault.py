"""The async vault: credentials, refresh with single flight, login and sessions.

This is the I/O shell around ``core``: it reads and writes storage, calls the provider and
holds the in-process single-flight table. Every decision comes from ``core``.

Use it directly in background jobs::

    vault = AsyncVault(Settings.from_env())
    await vault.startup()
    creds = await vault.get_connection_credentials("google", user_id, min_validity=120)
    headers = {"Authorization": creds.authorization_header}
"""

from __future__ import annotations

import asyncio  # unasync: remove
import inspect  # unasync: remove
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

import httpx

from ._exceptions import (
    CallbackError,
    CredentialNotFound,
    IdentityConflict,
    InvalidState,
    NotAuthenticated,
    ProviderUnavailable,
    ReauthenticationRequired,
    StorageUnavailable,
    UnknownConnection,
    VaultError,
)
from ._provider import AsyncProviderClient, ProviderCallFailed
from ._singleflight import AsyncSingleFlight
from .core.backoff import Backoff
from .core.config import ConnectionConfig, Settings
from .core.cookies import CookieJar, CookieSpec, hash_id
from .core.crypto import Sealer
from .core.flow import authorization_url, callback_state, new_transaction, verify_callback
from .core.idtoken import UnknownSigningKey, validate_id_token
from .core.model import (
    REAUTHENTICATION_REQUIRED,
    CredentialKey,
    Credentials,
    StoredCredential,
    TokenSet,
)
from .core.tokens import (
    TokenGranted,
    TokenOutcome,
    TokenRejected,
    TokenRetryable,
    code_exchange_request,
    decide,
    parse_token_response,
    refresh_request,
    revocation_request,
)
from .core.vault_logic import (
    LoginResult,
    NewIdentity,
    check_user_id,
    default_user_id,
    me_payload,
    open_record,
    open_transaction,
    seal_record,
    seal_transaction,
    subject_from_userinfo,
)
from .storage import AsyncStorage, async_storage_from_url

__all__ = ["AsyncVault", "NewUserIdHook", "RefreshOutcome"]

logger = logging.getLogger("oauth_vault_mw")

NewUserIdHook = Callable[[NewIdentity], "str | Awaitable[str]"]
RefreshOutcome = Literal["refreshed", "fresh", "reauthentication_required", "failed"]


class AsyncAuditSink(Protocol):
    """Where the vault reports what it did (see ``_service.AsyncAuditTrail``)."""

    def count(
        self,
        at: float,
        actor: str,
        action: str,
        outcome: str,
        connection_id: str | None = None,
        user_id: str | None = None,
    ) -> bool:
        """Note a routine event without I/O; True when a write is due (``flush_soon``)."""

    async def flush_soon(self) -> None: ...

    async def note(
        self,
        at: float,
        actor: str,
        action: str,
        outcome: str,
        connection_id: str | None = None,
        user_id: str | None = None,
        *,
        urgent: bool = False,
    ) -> None: ...


_UNREAD = object()  # _credentials: the record is still to be read


class AsyncVault:
    """Everything the Starlette/FastAPI integration does, without the framework."""

    def __init__(
        self,
        settings: Settings,
        *,
        storage: AsyncStorage | None = None,
        new_user_id: NewUserIdHook | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.storage = (
            storage if storage is not None else async_storage_from_url(settings.storage_url)
        )
        # optional (SessionCredentialReads): the request path's session and credential at once
        self._session_credential: Any = getattr(self.storage, "get_session_credential", None)
        self.sealer = Sealer(settings.encryption_keys)
        self.cookies = CookieJar(
            settings.secret_key,
            secure=settings.secure_cookies,
            prefix=settings.prefix,
            session_max_age=settings.session_max_age,
            state_max_age=settings.state_max_age,
        )
        self.provider = AsyncProviderClient(settings, transport=http_transport)
        self.clock = clock
        self._new_user_id = new_user_id or default_user_id
        self._backoff = Backoff(settings.failure_backoff)
        self._flight: AsyncSingleFlight[TokenSet] = AsyncSingleFlight()
        self.audit: AsyncAuditSink | None = None  # the service layer attaches its trail
        self._started = False

    def __repr__(self) -> str:
        return f"AsyncVault(storage={self.storage!r}, connections={len(self.settings.connections)})"

    async def startup(self) -> None:
        """Create storage tables if missing; idempotent. The middleware calls it once."""
        if self._started:
            return
        await self.storage.setup()
        if not getattr(self.storage, "shared_across_processes", True):
            logger.warning(
                "oauth_vault_mw: memory:// storage serves this process only; "
                "sessions and credentials are lost on restart"
            )
        self._started = True

    async def aclose(self) -> None:
        await self.provider.aclose()
        await self.storage.close()

    def connection(self, connection_id: str) -> ConnectionConfig:
        conn = self.settings.connection(connection_id)
        if conn is None:
            raise UnknownConnection(f"no connection named {connection_id[:64]!r}")
        return conn

    # -- credentials --------------------------------------------------------------------

    async def get_connection_credentials(
        self,
        connection_id: str,
        user_id: str,
        *,
        min_validity: float | None = None,
        force_refresh: bool = False,
        actor: str = "app",
    ) -> Credentials:
        """A token valid for ``min_validity`` seconds, refreshed once however many ask.

        ``force_refresh=True`` asks for a token other than the stored one (after the
        provider answered 401 to it). ``actor`` names the reader in the audit trail
        (``user:<id>``, ``client:<name>/<key id>``; default ``app``: the host's own code).
        Raises :class:`ReauthenticationRequired`, :class:`ProviderUnavailable`,
        :class:`CredentialNotFound`, :class:`UnknownConnection`.
        """
        return await self._credentials(
            connection_id, user_id, min_validity, force_refresh, actor, _UNREAD
        )

    async def session_credentials(
        self,
        cookie_value: str | None,
        connection_id: str,
        *,
        min_validity: float | None = None,
        force_refresh: bool = False,
    ) -> tuple[str, Credentials] | None:
        """The user of a session cookie and their credential for ``connection_id``: the
        request path's two lookups in one storage read where the storage offers it
        (``get_session_credential``). ``None`` when the cookie holds no live session;
        otherwise raises as :meth:`get_connection_credentials` does.
        """
        session_id = self.cookies.read_session(cookie_value)
        if session_id is None:
            return None
        session_hash = hash_id(session_id)
        read = self._session_credential
        if read is None or self.settings.connection(connection_id) is None:
            user_id = await self.storage.get_session(session_hash, self.clock())
            if user_id is None:
                return None
            record: object = _UNREAD
        else:
            found = await read(session_hash, self.clock(), connection_id)
            if found is None:
                return None
            user_id, record = found
        creds = await self._credentials(
            connection_id, user_id, min_validity, force_refresh, f"user:{user_id}", record
        )
        return user_id, creds

    async def _credentials(
        self,
        connection_id: str,
        user_id: str,
        min_validity: float | None,
        force_refresh: bool,
        actor: str,
        fetched: object,
    ) -> Credentials:
        """:meth:`get_connection_credentials`, with the record already read (``fetched``:
        the row or ``None``) or ``_UNREAD``."""
        try:
            conn = self.connection(connection_id)
            wanted = conn.min_validity if min_validity is None else min_validity
            key = CredentialKey(connection_id, user_id)
            if fetched is _UNREAD:
                fetched = await self.storage.get_credential(key)
            if not isinstance(fetched, StoredCredential):
                raise CredentialNotFound()
            record = fetched
            tokens = open_record(self.sealer, record)
            verdict = decide(tokens, now=self.clock(), min_validity=wanted, force=force_refresh)
            if verdict == "refresh":
                tokens = await self._flight.run(
                    key, lambda: self._refresh(conn, key, record, wanted, force_refresh)
                )
            elif verdict != "use":
                raise ReauthenticationRequired(login_url=self.settings.login_url(connection_id))
        except VaultError as exc:
            await self._audit(actor, "credentials.read", exc.error, connection_id, user_id)
            raise
        audit = self.audit  # the cheap path: count the read, write later
        if audit is not None and audit.count(
            self.clock(), actor, "credentials.read", "ok", connection_id, user_id
        ):
            await audit.flush_soon()
        return Credentials.from_tokens(key, tokens)

    async def _audit(
        self,
        actor: str,
        action: str,
        outcome: str,
        connection_id: str | None,
        user_id: str,
        *,
        urgent: bool = False,
    ) -> None:
        if self.audit is not None:
            await self.audit.note(
                self.clock(), actor, action, outcome, connection_id, user_id, urgent=urgent
            )

    async def refresh_if_expiring(
        self, connection_id: str, user_id: str, *, within: float
    ) -> RefreshOutcome:
        """Refresh a credential that expires within ``within`` seconds; say how it went.

        The proactive sweep (``oauth-vault credentials refresh``) calls it for each credential
        that ``scan_credentials(expiring_before=...)`` finds. It uses the request path's
        machinery (single flight, the cross-process lease, rotation, ``invalid_grant``
        marking, backoff) but refreshes whatever expires within ``within``, without the
        half-life rule, and never raises a :class:`VaultError`:

        - ``"refreshed"``: the credential now holds a new token (from here or a concurrent
          refresh);
        - ``"fresh"``: nothing to do (valid for longer, never expires, or deleted meanwhile);
        - ``"reauthentication_required"``: the provider refused the grant (now marked), it
          was marked already, or the token expires within ``within`` and has no refresh token;
        - ``"failed"``: provider or storage unavailable, or any other :class:`VaultError`
          (the credential is unchanged; the next request or sweep tries again).
        """
        try:
            conn = self.connection(connection_id)
            key = CredentialKey(connection_id, user_id)
            record = await self.storage.get_credential(key)
            if record is None:
                return "fresh"
            tokens = open_record(self.sealer, record)
            now = self.clock()
            verdict = decide(tokens, now=now, min_validity=within, half_life=False)
            if verdict == "use":
                expiring = tokens.expires_at is not None and tokens.expires_at - now < within
                return "reauthentication_required" if expiring else "fresh"  # no refresh token
            if verdict != "refresh":
                return "reauthentication_required"
            fresh = await self._flight.run(
                key, lambda: self._refresh(conn, key, record, within, False, half_life=False)
            )
        except ReauthenticationRequired:
            return "reauthentication_required"
        except CredentialNotFound:
            return "fresh"
        except VaultError as exc:
            logger.warning(
                "sweep: refresh failed connection=%s user=%s error=%s",
                connection_id,
                user_id,
                exc.error,
            )
            return "failed"
        # The fallback on a failed refresh hands back the unchanged token.
        return "refreshed" if fresh != tokens else "failed"

    async def _refresh(
        self,
        conn: ConnectionConfig,
        key: CredentialKey,
        seen: StoredCredential,
        min_validity: float,
        force: bool,
        *,
        half_life: bool = True,
    ) -> TokenSet:
        """Refresh under the credential's lease; one refresh across processes."""
        now = self.clock()
        blocked = self._backoff.blocked_for(key, now)
        if blocked > 0:
            return self._fallback(conn, open_record(self.sealer, seen), now, blocked)
        owner = secrets.token_hex(12)
        leased = await self._wait_for_lease(key, owner, seen)
        try:
            # Re-read under the lease: another process may have refreshed meanwhile.
            record = await self.storage.get_credential(key)
            if record is None:
                raise CredentialNotFound()
            tokens = open_record(self.sealer, record)
            now = self.clock()
            if record.version != seen.version:  # written since we looked: maybe fresh
                force = False
            verdict = decide(
                tokens, now=now, min_validity=min_validity, force=force, half_life=half_life
            )
            if verdict == "use":
                return tokens
            if verdict != "refresh" or tokens.refresh_token is None:
                raise ReauthenticationRequired(login_url=self.settings.login_url(conn.id))
            if not leased:  # the holder neither finished nor let go in time
                return self._fallback(conn, tokens, now, 1.0)
            return await self._call_provider(conn, key, record, tokens, owner)
        finally:
            if leased:
                await self.storage.release_lease(key, owner)

    async def _wait_for_lease(self, key: CredentialKey, owner: str, seen: StoredCredential) -> bool:
        """Take the lease, or return False once another holder has written or time is up."""
        deadline = time.monotonic() + self.settings.lease_ttl + 1.0
        pause = 0.02
        while True:
            if await self.storage.acquire_lease(key, owner, self.settings.lease_ttl, self.clock()):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.1)
            current = await self.storage.get_credential(key)
            if current is None or current.version != seen.version:
                return False

    async def _call_provider(
        self,
        conn: ConnectionConfig,
        key: CredentialKey,
        record: StoredCredential,
        tokens: TokenSet,
        owner: str,
    ) -> TokenSet:
        assert tokens.refresh_token is not None
        endpoints = await self.provider.endpoints(conn)
        request = refresh_request(conn, endpoints.token_url, tokens.refresh_token)
        deadline = time.monotonic() + 2 * self.settings.provider_timeout
        outcome: TokenOutcome = TokenRetryable("not attempted")
        for attempt in range(self.settings.refresh_attempts):
            # Renew the lease before each call: a refresh slowed past its lease must not
            # send the refresh token again once another process may hold the lease.
            ttl = self.settings.lease_ttl
            if not await self.storage.acquire_lease(key, owner, ttl, self.clock()):
                outcome = TokenRetryable("lease lost")
                break
            try:
                resp = await self.provider.send(request)
            except ProviderCallFailed as exc:
                outcome = TokenRetryable(str(exc))
            else:
                outcome = parse_token_response(
                    resp.status,
                    resp.content_type,
                    resp.body,
                    now=self.clock(),
                    default_expires_in=conn.default_expires_in,
                    previous=tokens,
                    retry_after=resp.retry_after,
                )
            if not isinstance(outcome, TokenRetryable):
                break
            pause = min(0.25 * 2**attempt, max(0.0, deadline - time.monotonic()))
            if attempt + 1 == self.settings.refresh_attempts or pause <= 0:
                break
            logger.info("refresh retry connection=%s reason=%s", conn.id, outcome.reason)
            await asyncio.sleep(pause)
        now = self.clock()
        if isinstance(outcome, TokenGranted):
            self._backoff.succeeded(key)
            return await self._store_refreshed(key, record, outcome.tokens)
        if isinstance(outcome, TokenRejected) and outcome.needs_reauthentication:
            await self._mark_reauthentication(key, record, tokens)
            raise ReauthenticationRequired(login_url=self.settings.login_url(conn.id))
        reason = outcome.error if isinstance(outcome, TokenRejected) else outcome.reason
        delay = self._backoff.failed(key, now)
        logger.warning(
            "refresh failed connection=%s user=%s reason=%s", conn.id, key.user_id, reason
        )
        await self._audit("system", "credentials.refresh", "failed", *key.parts()[:2])
        return self._fallback(conn, tokens, now, delay)

    def _fallback(
        self, conn: ConnectionConfig, tokens: TokenSet, now: float, retry_after: float
    ) -> TokenSet:
        """The provider failed: serve the current token if it is still valid at all."""
        if tokens.expires_at is None or tokens.expires_at > now:
            return tokens
        raise ProviderUnavailable(retry_after=int(retry_after) + 1)

    async def _store_refreshed(
        self, key: CredentialKey, record: StoredCredential, fresh: TokenSet
    ) -> TokenSet:
        sealed = seal_record(self.sealer, key, fresh, now=self.clock())
        if await self.storage.save_credential(sealed, record.version):
            logger.info(
                "credential refreshed connection=%s user=%s", key.connection_id, key.user_id
            )
            await self._audit("system", "credentials.refresh", "ok", *key.parts()[:2])
            return fresh
        # Someone wrote in between (a new login): theirs is newer than ours.
        current = await self.storage.get_credential(key)
        if current is None:
            raise CredentialNotFound()
        return open_record(self.sealer, current)

    async def _mark_reauthentication(
        self, key: CredentialKey, record: StoredCredential, tokens: TokenSet
    ) -> None:
        logger.warning(
            "refresh token refused (invalid_grant) connection=%s user=%s",
            key.connection_id,
            key.user_id,
        )
        marked = seal_record(
            self.sealer, key, tokens.with_status(REAUTHENTICATION_REQUIRED), now=self.clock()
        )
        await self.storage.save_credential(marked, record.version)
        await self._audit(
            "system",
            "credentials.refresh",
            REAUTHENTICATION_REQUIRED,
            *key.parts()[:2],
            urgent=True,
        )

    async def put_tokens(self, key: CredentialKey, tokens: TokenSet) -> None:
        """Store a credential, whatever version is there (a login is authoritative)."""
        for _ in range(10):
            current = await self.storage.get_credential(key)
            record = seal_record(self.sealer, key, tokens, now=self.clock())
            if await self.storage.save_credential(record, current.version if current else 0):
                return
        raise StorageUnavailable("could not store the credential under contention")

    # -- sessions -------------------------------------------------------------------------

    async def user_for_session(self, cookie_value: str | None) -> str | None:
        session_id = self.cookies.read_session(cookie_value)
        if session_id is None:
            return None
        return await self.storage.get_session(hash_id(session_id), self.clock())

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

    async def me(self, user_id: str) -> dict[str, Any]:
        records = await self.storage.list_credentials(user_id)
        return me_payload(user_id, records, (c.id for c in self.settings.connections))

    async def disconnect(self, connection_id: str, user_id: str) -> bool:
        """Revoke at the provider (RFC 7009) when it offers revocation, then delete."""
        conn = self.connection(connection_id)
        key = CredentialKey(connection_id, user_id)
        record = await self.storage.get_credential(key)
        if record is None:
            raise CredentialNotFound()
        revoked = False
        endpoints = await self.provider.endpoints(conn)
        if endpoints.revocation_url is not None:
            tokens = open_record(self.sealer, record)
            try:
                resp = await self.provider.send(
                    revocation_request(conn, endpoints.revocation_url, tokens)
                )
                revoked = resp.status == 200
            except ProviderCallFailed:
                revoked = False
            if not revoked:
                logger.warning("revocation failed connection=%s user=%s", connection_id, user_id)
        await self.storage.delete_credential(key)
        logger.info(
            "credential deleted connection=%s user=%s revoked=%s", connection_id, user_id, revoked
        )
        outcome = "revoked" if revoked else "deleted"
        await self._audit(
            f"user:{user_id}",
            "credentials.disconnect",
            outcome,
            connection_id,
            user_id,
            urgent=True,
        )
        return revoked

    # -- login ----------------------------------------------------------------------------

    async def begin_login(
        self, connection_id: str, *, return_to: str, user_id: str | None = None
    ) -> tuple[str, CookieSpec]:
        """Start a login (``user_id`` None) or a connect; return the provider URL and cookie."""
        conn = self.connection(connection_id)
        now = self.clock()
        endpoints = await self.provider.endpoints(conn)
        tx = new_transaction(
            conn,
            mode="login" if user_id is None else "connect",
            return_to=return_to,
            user_id=user_id,
            now=now,
        )
        state_hash = hash_id(tx.state)
        await self.storage.put_login_state(
            state_hash,
            seal_transaction(self.sealer, state_hash, tx),
            now + self.settings.state_max_age,
        )
        url = authorization_url(
            conn, endpoints.authorize_url, self.settings.redirect_uri(conn.id), tx
        )
        return url, self.cookies.state_cookie(tx.state)

    async def complete_login(
        self,
        connection_id: str,
        params: Mapping[str, str],
        *,
        state_cookie: str | None,
        session_cookie: str | None,
    ) -> LoginResult:
        """Check the callback, exchange the code, store the credential, open a session."""
        conn = self.connection(connection_id)
        state = callback_state(params, self.cookies.read_state(state_cookie))
        state_hash = hash_id(state)
        now = self.clock()
        data = await self.storage.take_login_state(state_hash, now)
        if data is None:
            raise InvalidState()
        tx = open_transaction(self.sealer, state_hash, data)
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
        )
        try:
            resp = await self.provider.send(request)
        except ProviderCallFailed:
            raise ProviderUnavailable("the provider's token endpoint did not answer") from None
        outcome = parse_token_response(
            resp.status,
            resp.content_type,
            resp.body,
            now=self.clock(),
            default_expires_in=conn.default_expires_in,
            retry_after=resp.retry_after,
        )
        if isinstance(outcome, TokenRejected):
            raise CallbackError(
                f"the provider refused the authorization code: {outcome.error}",
                error="invalid_grant" if outcome.error == "invalid_grant" else "invalid_callback",
            )
        if isinstance(outcome, TokenRetryable):
            raise ProviderUnavailable("the provider's token endpoint failed")
        claims = await self._identify(conn, outcome, tx.nonce)
        subject = str(claims.get("sub") if conn.is_oidc else subject_from_userinfo(conn, claims))
        if tx.mode == "connect":
            assert tx.user_id is not None
            user_id = tx.user_id
            bound = await self.storage.link_identity(conn.id, subject, user_id)
            if bound != user_id:
                raise IdentityConflict()
        else:
            user_id = await self._user_for_identity(conn, subject, claims)
        await self.put_tokens(CredentialKey(conn.id, user_id), outcome.tokens)
        cookies: list[CookieSpec] = [self.cookies.clear_state()]
        if tx.mode == "login":
            await self.logout(session_cookie)  # a new session at every login: no fixation
            session_id = secrets.token_urlsafe(32)
            await self.storage.create_session(
                hash_id(session_id), user_id, self.clock() + self.settings.session_max_age
            )
            cookies.append(self.cookies.session_cookie(session_id))
        logger.info("login completed connection=%s user=%s mode=%s", conn.id, user_id, tx.mode)
        await self._audit(f"user:{user_id}", tx.mode, "ok", conn.id, user_id)
        return LoginResult(user_id, tx.return_to, tuple(cookies))

    async def _identify(
        self, conn: ConnectionConfig, granted: TokenGranted, nonce: str | None
    ) -> dict[str, Any]:
        endpoints = await self.provider.endpoints(conn)
        if not conn.is_oidc:
            assert endpoints.userinfo_url is not None
            try:
                return await self.provider.get_json(
                    endpoints.userinfo_url, bearer=granted.tokens.access_token
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

    async def _user_for_identity(
        self, conn: ConnectionConfig, subject: str, claims: Mapping[str, Any]
    ) -> str:
        known = await self.storage.get_identity(conn.id, subject)
        if known is not None:
            return known
        proposed = self._new_user_id(NewIdentity(conn.id, subject, claims))
        if inspect.isawaitable(proposed):  # unasync: remove
            proposed = await proposed  # unasync: remove
        user_id = check_user_id(proposed, source="new_user_id hook", host_bug=True)
        return await self.storage.link_identity(conn.id, subject, user_id)

    async def require_user(self, cookie_value: str | None) -> str:
        user_id = await self.user_for_session(cookie_value)
        if user_id is None:
            raise NotAuthenticated()
        return user_id
