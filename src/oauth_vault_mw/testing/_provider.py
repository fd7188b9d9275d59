"""The testing OpenID provider: endpoints, plus the controls and helpers a test uses."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._config import (
    DEFAULT_BASE_URL,
    DEFAULT_SCOPES,
    as_environ,
    as_prefixed,
    connection_entry,
    settings_mapping,
)
from ._endpoints import ProviderEndpoints
from ._http import Incoming, ProtocolError
from ._keys import SigningKey, shared_key
from ._serving import ProviderTransport, asgi_app, serve_in_thread
from ._state import Client, ProviderCounts, Tally, User

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from starlette.applications import Starlette

__all__ = ["DEFAULT_ISSUER", "LoginFailed", "OpenIDProvider"]

DEFAULT_ISSUER = "http://127.0.0.1:9"
"""The issuer of a provider that is not served (``discard``: nothing answers there). The
in-process transport ignores the host; :meth:`OpenIDProvider.serve` replaces it."""


class LoginFailed(AssertionError):
    """A login through the testing provider did not end logged in: which step, the status and
    the start of the body (an ``AssertionError``, so pytest shows it as a failed check)."""


class OpenIDProvider(ProviderEndpoints):
    """A pure-Python OpenID provider for tests: discovery, JWKS, an authorization endpoint that
    approves at once, code and refresh grants (PKCE S256, rotation), userinfo, revocation.

    ::

        provider = OpenIDProvider(access_token_ttl=60)
        settings = provider.settings("demo")  # registers client "demo", returns the settings
        app.add_middleware(
            OAuthVaultMiddleware, settings=settings, http_transport=provider.transport()
        )
        provider.login_as("bob", name="Bob Example")
        ...
        assert provider.counts.refreshes == 1

    Reach it in-process with :meth:`transport` (httpx, sync and async: no socket), as an
    ASGI app (:attr:`app`), or on a loopback port with :meth:`serve`. Its clock is ``clock``
    (default ``time.time``). Thread-safe: one lock around every request and control.

    How it reports the granted scope: ``scope_in_reply`` (default ``True``: the token reply
    names it; ``False``: it leaves it out, so the granted scope is the asked one, RFC 6749
    5.1) and ``scope_on_callback`` (default ``False``; ``True``: the redirect back names it
    too, as Google and Strava do). :meth:`decline_next_scopes` narrows a grant.
    """

    def __init__(
        self,
        *,
        issuer: str = DEFAULT_ISSUER,
        access_token_ttl: int | None = 3600,
        refresh_token_ttl: int | None = None,
        code_ttl: int = 60,
        issue_refresh_tokens: bool = True,
        clock: Callable[[], float] = time.time,
        key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        """``access_token_ttl``: seconds an access token lives (``None``: it never expires
        and the reply has no ``expires_in``), read at each grant, so a test may change it.
        ``refresh_token_ttl``: ``None`` for refresh tokens that never expire.
        ``key``: the RSA key that signs ID tokens (default: one shared by the process)."""
        super().__init__(
            issuer=issuer,
            signing_key=SigningKey(key if key is not None else shared_key()),
            access_token_ttl=access_token_ttl,
            refresh_token_ttl=refresh_token_ttl,
            code_ttl=code_ttl,
            issue_refresh_tokens=issue_refresh_tokens,
            clock=clock,
        )
        self._app: Starlette | None = None

    def __repr__(self) -> str:
        return f"OpenIDProvider(issuer={self._issuer!r})"

    # ------------------------------------------------------------------ where it is

    @property
    def issuer(self) -> str:
        return self._issuer

    def discovery(self) -> dict[str, Any]:
        """The discovery document (``/.well-known/openid-configuration``)."""
        with self._lock:
            return self._discovery()

    def jwks(self) -> dict[str, Any]:
        return self._key.jwks()

    def transport(self) -> ProviderTransport:
        """An httpx transport (sync and async) that answers every request in process: pass it
        as ``http_transport`` to ``OAuthVaultMiddleware``, ``OAuthVault``, ``AsyncVault`` or
        ``Vault``, or to your own ``httpx.Client``/``AsyncClient``."""
        return ProviderTransport(self)

    @property
    def app(self) -> Starlette:
        """The provider as an ASGI app (``uvicorn``, ``httpx.ASGITransport``). Serve it where
        :attr:`issuer` says, or set the issuer with ``OpenIDProvider(issuer=...)``."""
        if self._app is None:
            self._app = asgi_app(self)
        return self._app

    @contextlib.contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve on ``host:port`` (``0``: a free port) in a background thread (standard
        library server, loopback only by default) and make that URL the issuer while it
        serves. Yields the issuer. Call it before :meth:`connection` and the first grant: both
        name the issuer."""
        with serve_in_thread(self, host, port) as base:
            with self._lock:
                previous, self._issuer = self._issuer, base
            try:
                yield base
            finally:
                with self._lock:
                    self._issuer = previous

    # ------------------------------------------------------------------ clients

    def add_client(
        self,
        client_id: str,
        client_secret: str | None = None,
        *,
        redirect_uris: Iterable[str],
    ) -> None:
        """Register a client (again: replaces it). ``client_secret=None``: a public client."""
        with self._lock:
            self._clients[client_id] = Client(client_id, client_secret, list(redirect_uris))

    def connection(
        self,
        connection_id: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        prefix: str = "/auth",
        client_secret: str | None = None,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        **fields: Any,
    ) -> dict[str, Any]:
        """One entry of the vault's ``connections`` setting for this provider; registers the
        client ``connection_id`` (secret ``{connection_id}-secret`` unless given) with the
        redirect URI ``{base_url}{prefix}/callback/{connection_id}``, or adds that URI to the
        client already registered. ``fields`` go into the entry (``min_validity``...)."""
        redirect_uri = f"{base_url.rstrip('/')}{prefix}/callback/{connection_id}"
        with self._lock:
            client = self._clients.get(connection_id)
            if client is None:
                secret = client_secret or f"{connection_id}-secret"
                client = Client(connection_id, secret, [redirect_uri])
                self._clients[connection_id] = client
            elif redirect_uri not in client.redirect_uris:
                client.redirect_uris.append(redirect_uri)
            return connection_entry(
                self._issuer,
                connection_id,
                client.client_id,
                client.client_secret,
                scopes,
                fields,
            )

    def settings(
        self,
        *connection_ids: str,
        base_url: str = DEFAULT_BASE_URL,
        prefix: str = "/auth",
        storage_url: str = "memory://",
        **overrides: Any,
    ) -> dict[str, Any]:
        """Whole vault settings (``Settings.from_mapping``, or ``settings=`` of the middleware
        and the Flask extension): one :meth:`connection` per id, a fresh secret and key,
        ``memory://`` storage. ``overrides`` are other settings (``provider_timeout=2``)."""
        if not connection_ids:
            raise ValueError("name at least one connection id")
        conns = [self.connection(c, base_url=base_url, prefix=prefix) for c in connection_ids]
        return settings_mapping(
            conns, base_url=base_url, prefix=prefix, storage_url=storage_url, overrides=overrides
        )

    def flask_config(self, *connection_ids: str, **options: Any) -> dict[str, Any]:
        """:meth:`settings` as ``OAUTH_VAULT_*`` keys, for ``app.config.update(...)``."""
        return as_prefixed(self.settings(*connection_ids, **options))

    def environ(self, *connection_ids: str, **options: Any) -> dict[str, str]:
        """:meth:`settings` as ``OAUTH_VAULT_*`` environment variables (``Settings.from_env``):
        for an app configured from the environment, with the provider :meth:`serve`-d."""
        return as_environ(self.settings(*connection_ids, **options))

    # ------------------------------------------------------------------ users and logins

    def login_as(self, login: str, **claims: Any) -> User:
        """From now on the authorization endpoint approves ``login`` (until the next call;
        a ``login_hint`` parameter still picks another). ``claims`` set or replace display
        claims (``name``, ``email``, ``email_verified``, ``preferred_username``, ``picture``,
        any other) and ``sub`` (default: the login); ``None`` removes one. Defaults are made
        up from the login (``alice`` -> ``Alice``, ``alice@example.test``)."""
        with self._lock:
            user = self._users.get(login)
            if user is None:
                user = self._users[login] = User.named(login, claims)
            else:
                merged = {**user.claims, **claims}
                user.sub = str(merged.pop("sub", None) or user.sub)
                user.claims = {k: v for k, v in merged.items() if v is not None}
            self._current = login
            return user

    def approve(self, authorize_url: str, login: str | None = None) -> str:
        """What a browser does at the authorization endpoint: returns the ``Location`` the
        provider redirects to (the app's callback with ``code``, or with ``error``), for
        ``login`` (default: the current user, or the URL's ``login_hint``). Raises
        :class:`LoginFailed` when the provider answers with a page instead (unknown client,
        unregistered redirect URI, down)."""
        with self._lock:
            try:
                request = Incoming.parse("GET", authorize_url)
            except ProtocolError as exc:
                raise LoginFailed(f"authorization request: {exc}") from None
            if self.down:
                raise LoginFailed("authorization request: the provider is down")
            self._tally.requests["authorize"] += 1
            reply = self._authorize(request, login)
        location = reply.header("location")
        if location is None:
            text = reply.body.decode("utf-8", "replace")[:500]
            raise LoginFailed(f"the authorization endpoint answered {reply.status}: {text}")
        return location

    # ------------------------------------------------------------------ switches

    def refuse_next_login(
        self, error: str = "access_denied", description: str = "the user refused"
    ) -> None:
        """The next authorization redirects back with ``error`` instead of a code."""
        with self._lock:
            self._refuse_login.append((error, description))

    def decline_next_scopes(self, *scopes: str) -> None:
        """At the next authorization the user unticks ``scopes`` (all but ``openid``): the
        grant and its tokens leave them out, as with Google's granular consent. Each call
        narrows one authorization."""
        with self._lock:
            self._declines.append(frozenset(scopes))

    def refuse_next_refresh(
        self,
        error: str = "invalid_grant",
        description: str = "the refresh token was refused",
        *,
        times: int = 1,
    ) -> None:
        """The next ``times`` refresh grants are refused with ``error`` (400). The grant itself
        stays valid: only those requests are refused."""
        with self._lock:
            self._refuse_refresh.extend([(error, description)] * times)

    def revoke_user(self, login: str) -> int:
        """The user revoked the app: every grant of ``login`` (refresh and access tokens) is
        refused from now. Returns how many grants were revoked."""
        with self._lock:
            live = [g for g in self._grants if g.user.login == login and not g.revoked]
            for grant in live:
                self._revoke_grant(grant)
            return len(live)

    def expire_access_tokens(self, login: str | None = None) -> int:
        """Access tokens (of ``login``, default all) expire now at the provider: userinfo
        answers 401 although the vault still holds them as valid. Returns how many."""
        with self._lock:
            now = self.clock()
            live = [
                a
                for a in self._access.values()
                if a.expires_at > now and (login is None or a.grant.user.login == login)
            ]
            for access in live:
                access.expires_at = now
            return len(live)

    # ------------------------------------------------------------------ counters

    @property
    def counts(self) -> ProviderCounts:
        """A snapshot of the counters (see :class:`ProviderCounts`)."""
        with self._lock:
            return self._tally.snapshot()

    def reset_counts(self) -> None:
        with self._lock:
            self._tally = Tally()

    def grants_of(self, login: str) -> int:
        """How many grants of ``login`` are live (not revoked)."""
        with self._lock:
            return sum(1 for g in self._grants if g.user.login == login and not g.revoked)
