"""The authorization code flow, client side: start a login, check what comes back.

State, PKCE (S256) and nonce on every login (RFC 9700 2.1.1); the callback is checked for
the state this browser holds, a provider error, and the RFC 9207 ``iss`` parameter (mix-up
defence). ``return_to`` is a same-origin path or nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from .config import ConnectionConfig
from .errors import BadRequest, CallbackError, InvalidState

__all__ = [
    "LoginTransaction",
    "authorization_url",
    "check_return_to",
    "new_transaction",
    "verify_callback",
]

MAX_RETURN_TO = 512
MAX_PARAM = 4096
Mode = Literal["login", "connect"]


@dataclass(frozen=True)
class LoginTransaction:
    """What a login remembers between the redirect out and the callback: sealed in the
    browser's state cookie (``records.seal_transaction``), never stored server-side."""

    state: str
    connection_id: str
    code_verifier: str = field(repr=False)
    nonce: str | None = field(repr=False)
    return_to: str
    mode: Mode
    user_id: str | None
    created_at: float
    scope: tuple[str, ...] | None = None
    """The scopes asked for (``None``: the connection's, as a cookie made before this was
    carried says)."""
    account: str | None = None
    """A connect's ``account``: ``"new"`` (link another account: the provider is asked to
    let the user choose), an account id (that account's grant grows), or ``None``."""

    @property
    def code_challenge(self) -> str:
        digest = hashlib.sha256(self.code_verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def asked(self, conn: ConnectionConfig) -> tuple[str, ...]:
        """The scopes this login asks for."""
        return conn.scopes if self.scope is None else self.scope

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "s": self.state,
            "c": self.connection_id,
            "v": self.code_verifier,
            "n": self.nonce,
            "r": self.return_to,
            "m": self.mode,
            "u": self.user_id,
            "t": self.created_at,
        }
        if self.scope is not None:
            data["sc"] = " ".join(self.scope)
        if self.account is not None:
            data["ac"] = self.account
        return json.dumps(
            data,
            separators=(",", ":"),
            ensure_ascii=False,  # UTF-8, not \uXXXX escapes: a cookie has ~4 KB
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LoginTransaction:
        raw: dict[str, Any] = json.loads(data)
        return cls(
            state=raw["s"],
            connection_id=raw["c"],
            code_verifier=raw["v"],
            nonce=raw["n"],
            return_to=raw["r"],
            mode=raw["m"],
            user_id=raw["u"],
            created_at=raw["t"],
            scope=tuple(raw["sc"].split()) if isinstance(raw.get("sc"), str) else None,
            account=raw["ac"] if isinstance(raw.get("ac"), str) else None,
        )


def check_return_to(value: str | None) -> str:
    """A same-origin absolute path, or ``/``. Anything else is a 400 (no open redirector)."""
    if value is None or value == "":
        return "/"
    bad = (
        len(value) > MAX_RETURN_TO
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) < 0xE000 for ch in value)
    )
    if not bad:
        parts = urlsplit(value)
        bad = bool(parts.scheme or parts.netloc) or "//" in parts.path
    if bad:
        raise BadRequest("return_to must be a path on this site, like /dashboard")
    return value


def new_transaction(
    conn: ConnectionConfig,
    *,
    mode: Mode,
    return_to: str,
    user_id: str | None,
    now: float,
    token: Callable[[int], str] = secrets.token_urlsafe,
    scope: tuple[str, ...] | None = None,
    account: str | None = None,
) -> LoginTransaction:
    """A new login; ``scope``: the scopes to ask for (default: the connection's);
    ``account``: a connect's ``account`` parameter (:attr:`LoginTransaction.account`)."""
    return LoginTransaction(
        state=token(32),
        connection_id=conn.id,
        code_verifier=token(48),
        nonce=token(32) if conn.is_oidc else None,
        return_to=return_to,
        mode=mode,
        user_id=user_id,
        created_at=now,
        scope=scope,
        account=account,
    )


def authorization_url(
    conn: ConnectionConfig, endpoint: str, redirect_uri: str, tx: LoginTransaction
) -> str:
    params: dict[str, str] = dict(conn.incremental_params)
    params.update(conn.authorize_params)  # the connection's own win
    if tx.account is not None:  # another account, or one that is not the provider's current
        params.update(conn.new_account_params)
    params.update(
        response_type="code",
        client_id=conn.client_id,
        redirect_uri=redirect_uri,
        state=tx.state,
        code_challenge=tx.code_challenge,
        code_challenge_method="S256",
    )
    scopes = tx.asked(conn)
    if scopes:
        params["scope"] = conn.scope_separator.join(scopes)
    if tx.nonce is not None:
        params["nonce"] = tx.nonce
    parts = urlsplit(endpoint)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def callback_state(params: Mapping[str, str], cookie_state: str | None) -> str:
    """The state of this callback, if it is the one this browser's cookie holds (compared
    in constant time)."""
    for name, value in params.items():
        if len(value) > MAX_PARAM or len(name) > 64:
            raise BadRequest(f"callback parameter {name[:64]!r} is too long")
    state = params.get("state")
    if not state or not cookie_state:
        raise InvalidState()
    if not hmac.compare_digest(state.encode(), cookie_state.encode()):
        raise InvalidState()
    return state


def verify_callback(
    params: Mapping[str, str],
    tx: LoginTransaction,
    *,
    connection_id: str,
    expected_issuer: str | None,
    iss_required: bool,
    now: float,
    max_age: int,
) -> str:
    """Check a callback against its (already consumed) transaction; return the code."""
    if tx.connection_id != connection_id:
        raise InvalidState("the login state belongs to another connection")
    if now - tx.created_at > max_age:
        raise InvalidState("the login took too long; start again")
    iss = params.get("iss")
    if iss is not None:
        # A plain OAuth 2.0 connection has no configured issuer to compare with: its
        # own redirect URI is its mix-up defence, and the parameter is ignored.
        if expected_issuer is not None and not hmac.compare_digest(
            iss.encode(), expected_issuer.encode()
        ):
            raise CallbackError("the iss parameter does not name this connection's issuer")
    elif iss_required:
        raise CallbackError("the provider must send iss (RFC 9207) and did not")
    error = params.get("error")
    if error is not None:
        code = error if error.isascii() and error.replace("_", "").isalnum() else "invalid"
        raise CallbackError(f"the provider refused the login: {code[:64]}", error=code[:64])
    found = params.get("code")
    if not found:
        raise CallbackError("the callback has no code")
    return found
