"""The async vault: credentials with their refresh, login and sessions, in one object.

This is the I/O shell around ``core``: it reads and writes storage, calls the provider and
holds the in-process single-flight table; every decision comes from ``core``. Its parts:
``base.py`` (state), ``refresh.py`` (credentials and their refresh), ``login.py`` (login,
connect, sessions). The sync :class:`~oauth_vault_mw.Vault` is generated from these files.

Use it directly in background jobs::

    vault = AsyncVault(Settings.from_env())
    await vault.startup()
    creds = await vault.get_connection_credentials("google", user_id, min_validity=120)
    headers = {"Authorization": creds.authorization_header}
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from typing import Any

from ..core.accounts import DEFAULT_SLOT
from ..core.connections import ConnectionConfig
from ..core.errors import CredentialNotFound
from ..core.hooks import DisconnectEvent
from ..core.http import ProviderCallFailed
from ..core.identity import CurrentUser, last_login, me_payload
from ..core.model import CredentialKey, Credentials
from ..core.records import open_record
from ..core.token_requests import (
    revocation_request,
)
from .base import NewUserIdHook

# unasync: sync-only: from .client import ConnectionClient, connection_client
from .client import AsyncConnectionClient, connection_client  # unasync: remove
from .login import AsyncLogin
from .refresh import UNREAD

__all__ = ["AsyncVault", "NewUserIdHook"]

logger = logging.getLogger("oauth_vault_mw")


class AsyncVault(AsyncLogin):
    """Everything the Starlette/FastAPI integration does, without the framework."""

    async def session_credentials(
        self,
        cookie_value: str | None,
        connection_id: str,
        *,
        min_validity: float | None = None,
        force_refresh: bool = False,
        scopes: Iterable[str] | None = None,
        account: str | None = None,
    ) -> tuple[str, Credentials] | None:
        """The user of a session cookie and their credential for ``connection_id``: the
        request path's two lookups in one storage read where the storage offers it
        (``get_session_credential``). ``None`` when the cookie holds no live session;
        otherwise raises as :meth:`get_connection_credentials` does (``scopes`` and
        ``account`` too).
        """
        session_hash = self.cookies.session_hash(cookie_value)
        if session_hash is None:
            return None
        read = self._session_credential
        if account is not None:
            user_id = await self.storage.get_session(session_hash, self.clock())
            if user_id is None:
                return None
            actor = f"user:{user_id}"
            found_creds = await self.account_credentials(
                connection_id, user_id, account, min_validity, force_refresh, actor, scopes
            )
            return user_id, found_creds
        if read is None or self.settings.connection(connection_id) is None:
            user_id = await self.storage.get_session(session_hash, self.clock())
            if user_id is None:
                return None
            record: object = UNREAD
        else:
            found = await read(session_hash, self.clock(), connection_id)
            if found is None:
                return None
            user_id, record = found
        creds = await self._credentials(
            connection_id, user_id, min_validity, force_refresh, f"user:{user_id}", record, scopes
        )
        return user_id, creds

    async def me(self, user_id: str) -> dict[str, Any]:
        """What ``GET /me`` shows: the user, their profile and connections, no token."""
        records = await self.storage.list_credentials(user_id)
        known = {c.id: c for c in self.settings.connections}
        opened = self._opened_all(records)
        linked: dict[str, list[str]] = {}
        for key, tokens in opened.items():  # defaults stored before accounts existed
            if key.account == DEFAULT_SLOT and key.connection_id in known:
                found = await self.legacy_linked(key.connection_id, user_id, tokens)
                if found is not None:
                    linked[key.connection_id] = found
        return me_payload(user_id, records, known, opened, linked)

    async def current_user(self, user_id: str) -> CurrentUser:
        """``user_id`` with the display profile of their last login (``CurrentUser``)."""
        records = await self.storage.list_credentials(user_id)
        known = {c.id for c in self.settings.connections}
        last = last_login(self._opened_all(records), known)
        if last is None:
            return CurrentUser(user_id)
        return CurrentUser(user_id, dict(last[1].profile), last[0].connection_id)

    async def disconnect(
        self, connection_id: str, user_id: str, account: str | None = None
    ) -> bool:
        """Revoke at the provider (RFC 7009) when it offers revocation, then delete: the
        account ``account`` (an account id), else every account of the connection. Removing
        the default account makes the one linked first of the others the default.

        Under each credential's lease: a refresh in flight (here or in another process)
        finishes first, so the refresh token revoked is the one it rotated in, not the one
        it replaced, and its write cannot bring the credential back after the delete.
        Returns whether the provider confirmed every revocation.
        """
        conn = self.connection(connection_id)
        if account is not None:
            record = await self.locate_account(connection_id, user_id, account)
            revoked = await self._disconnect_one(conn, record.key)
            if record.key.account == DEFAULT_SLOT:
                await self.promote_next_account(connection_id, user_id)
        else:
            keys = [
                r.key
                for r in await self.storage.list_credentials(user_id)
                if r.key.connection_id == connection_id
            ]
            if not keys:
                raise CredentialNotFound()
            revoked = True
            # the other accounts first, the default last
            for key in sorted(keys, key=lambda k: k.account == DEFAULT_SLOT):
                revoked = await self._disconnect_one(conn, key) and revoked
        event = DisconnectEvent(user_id, connection_id, revoked)
        await self._after_hook("on_disconnect", self.hooks.on_disconnect, event)
        return revoked

    async def _disconnect_one(self, conn: ConnectionConfig, key: CredentialKey) -> bool:
        owner = secrets.token_hex(12)
        # Waits for the holder to finish (its provider calls end well inside the lease); if
        # the wait runs out, the disconnect goes on without it.
        leased, _ = await self._wait_for_lease(key, owner, None)
        try:
            return await self._revoke_and_delete(conn, key)
        finally:
            if leased:
                await self.storage.release_lease(key, owner)

    async def _revoke_and_delete(self, conn: ConnectionConfig, key: CredentialKey) -> bool:
        connection_id, user_id = key.connection_id, key.user_id
        record = await self.storage.get_credential(key)
        if record is None:
            raise CredentialNotFound()
        revoked = False
        endpoints = await self.provider.endpoints(conn)
        if endpoints.revocation_url is None:
            logger.warning(
                "disconnect: connection=%s has no revocation endpoint; the credential is "
                "deleted here, the grant stays valid at the provider until it expires or the "
                "user revokes it there",
                connection_id,
            )
        else:
            tokens = open_record(self.sealer, record)
            try:
                resp = await self.provider.send(
                    revocation_request(
                        conn,
                        endpoints.revocation_url,
                        tokens,
                        now=self.clock(),
                        signer=self.client_signer,
                    ),
                    connection_id=connection_id,
                    operation="revocation",
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

    async def client(
        self,
        connection_id: str,
        user_id: str,
        *,
        min_validity: float | None = None,
        base_url: str | None = None,
        scopes: Iterable[str] | None = None,
        account: str | None = None,
        **kwargs: Any,
        # unasync: sync-only: ) -> ConnectionClient:
    ) -> AsyncConnectionClient:  # unasync: remove
        """An httpx client for the connection's API as ``user_id``, for background jobs:
        it sends the user's current token and, on a 401, refreshes once and retries once
        (``oauth_vault_mw._async.client``); ``scopes``: as :meth:`get_connection_credentials`
        takes them, checked at each request. ``kwargs`` go to httpx (``timeout=``...)::

            async with await vault.client("github", user_id) as github:
                repos = (await github.get("/user/repos")).json()
        """

        async def credentials(force_refresh: bool) -> Credentials:
            return await self.get_connection_credentials(
                connection_id,
                user_id,
                min_validity=min_validity,
                force_refresh=force_refresh,
                scopes=scopes,
                account=account,
            )

        return await connection_client(
            self, connection_id, credentials, base_url=base_url, **kwargs
        )
