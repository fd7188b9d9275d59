"""The host app's hooks: what a login, a refused refresh and a disconnect tell the app.

::

    async def on_login(event: LoginEvent) -> None:
        if event.new_user and not event.profile.get("email_verified"):
            raise LoginRefused("verify your email address at the provider first")

    app.add_middleware(OAuthVaultMiddleware, hooks=Hooks(on_login=on_login))

Each hook takes one event and may be a plain function or a coroutine function (in Flask
too: a coroutine is run to completion on its own event loop). What a hook that raises does:

* ``on_login`` runs after the provider vouched for the account and before anything is
  stored. :class:`LoginRefused` refuses the login: a 403 ``login_refused`` with its
  description, no session, no credential, no link to the account. Any other exception also
  fails the login (a 500 ``server_error``, logged with its traceback): nothing is stored.
* ``on_reauthentication_required`` and ``on_disconnect`` run after the fact (the credential
  is already marked or deleted); an exception there is logged and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import PermissionDenied

__all__ = [
    "DisconnectEvent",
    "Hooks",
    "LoginEvent",
    "LoginRefused",
    "ReauthenticationEvent",
]


class LoginRefused(PermissionDenied):
    """Raised by an ``on_login`` hook to refuse the login (HTTP 403 ``login_refused``); the
    description is shown to the user, so keep it plain and free of secrets."""

    error = "login_refused"
    default_description = "this login was refused by the application"


@dataclass(frozen=True)
class LoginEvent:
    """A login or connect the provider vouched for, before it is stored."""

    user_id: str
    """The app's user: new (from the ``new_user_id`` hook) or the one the account is linked to."""
    connection_id: str
    mode: str
    """``"login"`` or ``"connect"`` (an account added to a logged-in user)."""
    new_user: bool
    """True when this provider account was never linked before (a first login)."""
    subject: str
    """The provider's id of the account."""
    profile: Mapping[str, Any] = field(default_factory=dict)
    """The account's display claims (``name``, ``email``...; see ``current_user``)."""
    scopes: tuple[str, ...] = ()
    """The scopes the provider granted (from its token reply; may be fewer than asked)."""


@dataclass(frozen=True)
class ReauthenticationEvent:
    """A credential the provider stopped honouring: the user must log in again."""

    user_id: str
    connection_id: str
    reason: str
    """The provider's error code (``invalid_grant``...)."""


@dataclass(frozen=True)
class DisconnectEvent:
    """A credential deleted at the user's request."""

    user_id: str
    connection_id: str
    revoked: bool
    """Whether the provider confirmed the revocation of the grant."""


@dataclass(frozen=True)
class Hooks:
    """The host app's hooks (each optional; see the module's documentation)."""

    on_login: Callable[[LoginEvent], Awaitable[None] | None] | None = None
    on_reauthentication_required: (
        Callable[[ReauthenticationEvent], Awaitable[None] | None] | None
    ) = None
    on_disconnect: Callable[[DisconnectEvent], Awaitable[None] | None] | None = None
