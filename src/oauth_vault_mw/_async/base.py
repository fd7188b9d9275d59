"""The vault's state and the few steps every part of it shares (async).

:class:`AsyncVaultBase` holds what a vault is made of: settings, storage, the sealer, the
cookie jar, the provider client, the clock, the audit sink. The parts build on it:
``refresh.py`` (credentials and their refresh), ``login.py`` (login, connect, sessions), and
``vault.py`` puts them together as :class:`~oauth_vault_mw.AsyncVault`.
"""

from __future__ import annotations

import inspect
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, cast

import httpx

from .._singleflight import AsyncSingleFlight
from ..core.accounts import DEFAULT_SLOT, default_account_id
from ..core.client_auth import ClientSigner
from ..core.config import Settings
from ..core.connections import ConnectionConfig
from ..core.cookies import CookieJar
from ..core.crypto import Sealer
from ..core.errors import (
    CredentialNotFound,
    CredentialUnreadable,
    StorageUnavailable,
    UnknownConnection,
)
from ..core.hooks import Hooks
from ..core.http import ProviderResponse
from ..core.identity import NewIdentity, default_user_id
from ..core.model import CredentialKey, StoredCredential, TokenSet
from ..core.records import OpenedRecords, seal_record
from ..core.refresh import Backoff
from ..core.tokens import TokenOutcome, parse_token_response
from ..metrics import NO_METRICS, Metrics
from ..storage import AsyncStorage, async_storage_from_url
from .audit import AsyncAuditSink
from .provider import AsyncProviderClient
from .telemetry import AsyncInstrumentedStorage

# unasync: sync-only: from .._hooks import run_coroutine

__all__ = ["AsyncVaultBase", "NewUserIdHook"]

logger = logging.getLogger("oauth_vault_mw")

NewUserIdHook = Callable[[NewIdentity], "str | Awaitable[str]"]


class AsyncVaultBase:
    """The state of a vault; see :class:`~oauth_vault_mw.AsyncVault` for what it does."""

    def __init__(
        self,
        settings: Settings,
        *,
        storage: AsyncStorage | None = None,
        new_user_id: NewUserIdHook | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        hooks: Hooks | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.hooks = hooks if hooks is not None else Hooks()
        # what the vault reports (oauth_vault_mw.metrics); the default records nothing and
        # is never asked on the request path
        self.metrics: Metrics = metrics if metrics is not None and metrics.enabled else NO_METRICS
        self.storage = (
            storage if storage is not None else async_storage_from_url(settings.storage_url)
        )
        if self.metrics.enabled:  # chosen here: without metrics, storage is called directly
            self.storage = cast(AsyncStorage, AsyncInstrumentedStorage(self.storage, self.metrics))
            self.metrics.watch_audit_backlog(_audit_backlog(self))
        # optional (SessionCredentialReads): the request path's session and credential at once
        self._session_credential: Any = getattr(self.storage, "get_session_credential", None)
        self.sealer = Sealer(settings.encryption_keys)
        self.opened = OpenedRecords(self.sealer)  # the request path's reads of unchanged records
        self.cookies = CookieJar(
            settings.secret_key,
            secure=settings.secure_cookies,
            prefix=settings.prefix,
            session_max_age=settings.session_max_age,
            state_max_age=settings.state_max_age,
        )
        self.provider = AsyncProviderClient(
            settings, transport=http_transport, metrics=self.metrics
        )
        self.clock = clock
        self._new_user_id = new_user_id or default_user_id
        self._backoff = Backoff(settings.failure_backoff)
        self.client_signer = ClientSigner()  # JWTs for private_key_jwt and signed secrets
        self._flight: AsyncSingleFlight[TokenSet] = AsyncSingleFlight(
            on_join=_joined(self.metrics) if self.metrics.enabled else None
        )
        self.audit: AsyncAuditSink | None = None  # the service layer attaches its trail
        self._started = False

    def __repr__(self) -> str:
        count = len(self.settings.connections)
        return f"{type(self).__name__}(storage={self.storage!r}, connections={count})"

    async def startup(self) -> None:
        """Create storage tables if missing; idempotent. The middleware calls it once."""
        if self._started:
            return
        await self.storage.setup()
        for conn in self.settings.connections:  # what to register at each provider
            logger.info(
                "connection=%s redirect_uri=%s", conn.id, self.settings.redirect_uri(conn.id)
            )
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

    async def _call_hook(self, hook: Callable[[Any], Any], event: object) -> None:
        """Call one of the host's hooks, a plain function or a coroutine function."""
        result = hook(event)
        if inspect.isawaitable(result):
            await result  # unasync: remove
            # unasync: sync-only: run_coroutine(result)

    async def _after_hook(
        self, name: str, hook: Callable[[Any], Any] | None, event: object
    ) -> None:
        """An after-the-fact hook (the change is made): an exception is logged, not raised."""
        if hook is None:
            return
        try:
            await self._call_hook(hook, event)
        except Exception:
            logger.exception("the %s hook failed; ignored", name)

    async def put_tokens(self, key: CredentialKey, tokens: TokenSet) -> None:
        """Store a credential, whatever version is there (a login is authoritative)."""
        for _ in range(10):
            current = await self.storage.get_credential(key)
            record = seal_record(self.sealer, key, tokens, now=self.clock())
            if await self.storage.save_credential(record, current.version if current else 0):
                return
        raise StorageUnavailable("could not store the credential under contention")

    def _opened_all(self, records: list[StoredCredential]) -> dict[CredentialKey, TokenSet]:
        """The records' token sets; one that no configured key opens is left out (``/me``
        then shows its state, not its profile)."""
        opened: dict[CredentialKey, TokenSet] = {}
        for record in records:
            try:
                opened[record.key] = self.opened.open(record)
            except CredentialUnreadable:
                continue
        return opened

    async def default_account_id(self, record: StoredCredential) -> str:
        """The account id of the record in a default slot (``core/accounts.py``); for a
        record stored before accounts existed, from the user's linked subjects."""
        tokens = self.opened.open(record)
        key = record.key
        linked = await self.legacy_linked(key.connection_id, key.user_id, tokens)
        extra = self.connection(key.connection_id).account_extra
        return default_account_id(key.connection_id, key.user_id, tokens, linked, extra)

    async def legacy_linked(
        self, connection_id: str, user_id: str, default: TokenSet | None
    ) -> list[str] | None:
        """For a default token set stored before accounts existed (no subject), the
        subjects it may belong to: the user's linked subjects of the connection that no
        account of its own holds. ``None`` for any other (nothing to look up)."""
        if default is None or default.subject is not None:
            return None
        linked = await self.storage.list_identities(connection_id, user_id)
        if len(linked) <= 1:
            return linked
        records = [
            r
            for r in await self.storage.list_credentials(user_id)
            if r.key.connection_id == connection_id and r.key.account != DEFAULT_SLOT
        ]
        held = {tokens.subject for tokens in self._opened_all(records).values()}
        return [s for s in linked if s not in held]

    async def default_record_of(
        self, connection_id: str, user_id: str, account: str
    ) -> StoredCredential | None:
        """The record in the user's default slot when it holds account ``account``."""
        default = await self.storage.get_credential(CredentialKey(connection_id, user_id))
        if default is not None and await self.default_account_id(default) == account:
            return default
        return None

    async def locate_account(
        self, connection_id: str, user_id: str, account: str
    ) -> StoredCredential:
        """The record of account ``account`` (an account id) of the user's connection: the
        default slot's when it is the default account, else the account's own slot.
        Raises :class:`CredentialNotFound` when the user has no such account."""
        default = await self.default_record_of(connection_id, user_id, account)
        if default is not None:
            return default
        if account == DEFAULT_SLOT:
            raise CredentialNotFound("no such account")
        found = await self.storage.get_credential(CredentialKey(connection_id, user_id, account))
        if found is None:
            raise CredentialNotFound("no such account")
        return found

    def _token_outcome(
        self, conn: ConnectionConfig, resp: ProviderResponse, previous: TokenSet | None = None
    ) -> TokenOutcome:
        """What the token endpoint's ``resp`` means (``core.tokens.parse_token_response``)."""
        return parse_token_response(
            resp.status,
            resp.content_type,
            resp.body,
            now=self.clock(),
            default_expires_in=conn.default_expires_in,
            previous=previous,
            retry_after=resp.retry_after,
            dialect=conn.dialect,
        )


def _joined(metrics: Metrics) -> Callable[[Any], None]:
    """The single flight's report of a read that joined a running refresh."""

    def joined(key: CredentialKey) -> None:
        metrics.single_flight_joined(key.connection_id)

    return joined


def _audit_backlog(vault: AsyncVaultBase) -> Callable[[], int | None]:
    """Reads the pending events of the vault's audit trail when metrics are collected;
    ``None`` once the vault is gone (the reader is then dropped)."""
    ref = weakref.ref(vault)

    def backlog() -> int | None:
        found = ref()
        if found is None:
            return None
        pending = getattr(found.audit, "backlog", None)
        return int(pending()) if pending is not None else 0

    return backlog
