"""Signed cookie values (itsdangerous) and the attributes every cookie of the library gets.

The session cookie holds an opaque session id, nothing else; the state cookie holds the
login's state, binding the callback to the browser that started it.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass

from itsdangerous import BadSignature, TimestampSigner
from itsdangerous.signer import HMACAlgorithm

__all__ = ["CookieJar", "CookieSpec", "hash_id"]

SESSION_COOKIE = "oauth_vault_session"
STATE_COOKIE = "oauth_vault_state"
MAX_COOKIE = 1024
VERIFIED_SESSIONS = 4096  # session cookies whose signature this process has checked


def hash_id(value: str) -> str:
    """Storage keeps session ids and states only as hashes: a leaked table opens nothing."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class CookieSpec:
    """A ``Set-Cookie`` to send: a value (``""`` with ``max_age=0`` deletes)."""

    name: str
    value: str
    max_age: int
    path: str
    secure: bool

    def header(self) -> str:
        parts = [
            f"{self.name}={self.value}",
            f"Path={self.path}",
            f"Max-Age={self.max_age}",
            "HttpOnly",
            "SameSite=Lax",
        ]
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


class _HMACSHA256(HMACAlgorithm):
    """HMAC-SHA256 through the one-shot ``hmac.digest`` (C), not a new HMAC object per call."""

    def __init__(self) -> None:
        super().__init__(hashlib.sha256)

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.digest(key, value, "sha256")


class _Signer(TimestampSigner):
    """A timestamp signer (HMAC-SHA256) that derives its key once, not on every request."""

    def __init__(self, secret_key: str, salt: str) -> None:
        super().__init__(
            secret_key, salt=salt, digest_method=hashlib.sha256, algorithm=_HMACSHA256()
        )
        self._derived: dict[object, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        cached = self._derived.get(secret_key)
        if cached is None:
            cached = self._derived[secret_key] = super().derive_key(secret_key)
        return cached


class CookieJar:
    """Signs and reads the library's two cookies."""

    def __init__(
        self,
        secret_key: str,
        *,
        secure: bool,
        prefix: str,
        session_max_age: int,
        state_max_age: int,
    ) -> None:
        self._session = _Signer(secret_key, salt="oauth_vault_mw.session")
        # value -> (session id, signed at): a browser sends the same session cookie on every
        # request, so its HMAC is checked once per process, not on each of them. Only values
        # that verified get in; the age is checked on every read; bounded, oldest out first.
        self._verified: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._state = _Signer(secret_key, salt="oauth_vault_mw.state")
        self.secure = secure
        self.prefix = prefix
        self.session_max_age = session_max_age
        self.state_max_age = state_max_age

    def __repr__(self) -> str:
        return f"CookieJar(secure={self.secure})"

    def session_cookie(self, session_id: str) -> CookieSpec:
        value = self._session.sign(session_id).decode()
        return CookieSpec(SESSION_COOKIE, value, self.session_max_age, "/", self.secure)

    def clear_session(self) -> CookieSpec:
        return CookieSpec(SESSION_COOKIE, "", 0, "/", self.secure)

    def state_cookie(self, state: str) -> CookieSpec:
        value = self._state.sign(state).decode()
        return CookieSpec(STATE_COOKIE, value, self.state_max_age, self.prefix, self.secure)

    def clear_state(self) -> CookieSpec:
        return CookieSpec(STATE_COOKIE, "", 0, self.prefix, self.secure)

    def read_session(self, value: str | None) -> str | None:
        """The session id a valid, unexpired session cookie holds; ``None`` otherwise."""
        if not value:
            return None
        known = self._verified.get(value)
        if known is not None:
            age = self._session.get_timestamp() - known[1]
            if 0 <= age <= self.session_max_age:
                return known[0]
            with self._lock:
                self._verified.pop(value, None)
            return None
        if len(value) > MAX_COOKIE:
            return None
        try:
            raw, signed_at = self._session.unsign(
                value, max_age=self.session_max_age, return_timestamp=True
            )
            session_id = raw.decode()
        except (BadSignature, UnicodeError):
            return None
        with self._lock:  # readers above need none: a dict lookup is atomic
            verified = self._verified
            if len(verified) >= VERIFIED_SESSIONS:
                verified.pop(next(iter(verified)), None)
            verified[value] = (session_id, int(signed_at.timestamp()))
        return session_id

    def verify_session(self, value: str | None) -> str | None:
        """:meth:`read_session` without the per-process memory: the HMAC checked every time."""
        return self._read(self._session, value, self.session_max_age)

    def forget_session(self, value: str | None) -> None:
        """Drop a cookie from the verified memory (at logout: nothing left to look up)."""
        if value:
            with self._lock:
                self._verified.pop(value, None)

    def read_state(self, value: str | None) -> str | None:
        return self._read(self._state, value, self.state_max_age)

    @staticmethod
    def _read(signer: TimestampSigner, value: str | None, max_age: int) -> str | None:
        if not value or len(value) > MAX_COOKIE:
            return None
        try:
            return signer.unsign(value, max_age=max_age).decode()
        except (BadSignature, UnicodeError):
            return None
