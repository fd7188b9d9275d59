"""Signed cookie values (itsdangerous) and the attributes every cookie of the library gets.

The session cookie holds an opaque session id, nothing else. A state cookie holds one login
in flight: its transaction (state, PKCE verifier, nonce, return path...) sealed with the
vault's AES-GCM key and signed with a timestamp, so that starting a login stores nothing
server-side. Each login has its own state cookie, named after its state, so that logins in
several tabs do not undo each other; at most :data:`MAX_LOGINS_IN_FLIGHT` of them (and
:data:`STATE_COOKIES_BUDGET` bytes) live at once, the oldest going first.

On an https base URL every name carries the ``__Host-`` prefix, which browsers accept only
with ``Secure``, ``Path=/`` and no ``Domain``: no sibling subdomain or plain-http page can
set or overwrite these cookies.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass

from itsdangerous import BadSignature, TimestampSigner
from itsdangerous.signer import HMACAlgorithm

from .errors import BadRequest

__all__ = ["CookieJar", "CookieSpec", "hash_id"]

SESSION_COOKIE = "oauth_vault_session"
STATE_COOKIE = "oauth_vault_state"
"""The state cookies' base name: each is ``oauth_vault_state_<tag>``, the tag from its state."""
HOST_PREFIX = "__Host-"
MAX_COOKIE = 1024  # a session cookie's value
MAX_STATE_COOKIE = 3600  # a state cookie's value; with its name, under the browsers' 4096
STATE_COOKIES_BUDGET = 4096  # the values of all state cookies a browser holds at once
MAX_LOGINS_IN_FLIGHT = 3  # state cookies a browser holds at once
MAX_COOKIE_HEADER = 8192  # as the shells bound it
VERIFIED_SESSIONS = 4096  # session cookies whose signature this process has checked
_TAG = 16  # hex digits of SHA-256(state) in a state cookie's name


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


def cookie_pairs(header: str | None) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a ``Cookie`` header (bounded as the shells bound it)."""
    if not header:
        return []
    if len(header) > MAX_COOKIE_HEADER:
        raise BadRequest("cookie header too large")
    pairs = []
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            pairs.append((name, value.strip('"')))
    return pairs


class CookieJar:
    """Signs and reads the library's cookies: the session and the logins in flight.

    ``secure`` (an https base URL) adds ``Secure`` and the ``__Host-`` prefix, and puts the
    state cookies on ``Path=/`` (the prefix requires it); on plain http (loopback
    development) they stay on the route ``prefix``, sent to the vault's routes only.
    """

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
        # value -> (session id, signed at, hash_id(session id)): a browser sends the same
        # session cookie on every request, so its HMAC is checked (and its id hashed) once per
        # process, not on each of them. Only values that verified get in; the age is checked
        # on every read; bounded (VERIFIED_SESSIONS), oldest out first.
        self._verified: dict[str, tuple[str, int, str]] = {}
        self._lock = threading.Lock()
        # another salt than the previous release's state cookie (which held the bare state)
        self._state = _Signer(secret_key, salt="oauth_vault_mw.login-transaction")
        self.secure = secure
        self.prefix = prefix
        self.session_max_age = session_max_age
        self.state_max_age = state_max_age
        name_prefix = HOST_PREFIX if secure else ""
        self.session_name = name_prefix + SESSION_COOKIE
        self.state_name_prefix = f"{name_prefix}{STATE_COOKIE}_"
        self.state_path = "/" if secure else prefix

    def __repr__(self) -> str:
        return f"CookieJar(secure={self.secure})"

    # -- the session ------------------------------------------------------------------------

    def session_cookie(self, session_id: str) -> CookieSpec:
        value = self._session.sign(session_id).decode()
        return CookieSpec(self.session_name, value, self.session_max_age, "/", self.secure)

    def clear_session(self) -> CookieSpec:
        return CookieSpec(self.session_name, "", 0, "/", self.secure)

    def read_session(self, value: str | None) -> str | None:
        """The session id a valid, unexpired session cookie holds; ``None`` otherwise."""
        found = self._read_session(value)
        return None if found is None else found[0]

    def session_hash(self, value: str | None) -> str | None:
        """``hash_id(read_session(value))``: what storage keys the cookie's session by, or
        ``None``. The same checks as :meth:`read_session` (the HMAC once per process per
        value, the age on every call); the hash is remembered with the verified value, so a
        browser's next requests do not compute it again."""
        found = self._read_session(value)
        return None if found is None else found[2]

    def _read_session(self, value: str | None) -> tuple[str, int, str] | None:
        """``(session id, signed at, its hash)`` of a valid, unexpired session cookie."""
        if not value:
            return None
        known = self._verified.get(value)
        if known is not None:
            age = self._session.get_timestamp() - known[1]
            if 0 <= age <= self.session_max_age:
                return known
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
        found = (session_id, int(signed_at.timestamp()), hash_id(session_id))
        with self._lock:  # readers above need none: a dict lookup is atomic
            verified = self._verified
            if len(verified) >= VERIFIED_SESSIONS:
                verified.pop(next(iter(verified)), None)
            verified[value] = found
        return found

    def verify_session(self, value: str | None) -> str | None:
        """:meth:`read_session` without the per-process memory: the HMAC checked every time."""
        if not value or len(value) > MAX_COOKIE:
            return None
        try:
            return self._session.unsign(value, max_age=self.session_max_age).decode()
        except (BadSignature, UnicodeError):
            return None

    def forget_session(self, value: str | None) -> None:
        """Drop a cookie from the verified memory (at logout: nothing left to look up)."""
        if value:
            with self._lock:
                self._verified.pop(value, None)

    # -- the logins in flight ---------------------------------------------------------------

    def state_name(self, state: str) -> str:
        """The name of the cookie that holds the login whose state is ``state``."""
        tag = hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()[:_TAG]
        return self.state_name_prefix + tag

    def state_cookie(self, state: str, sealed: str) -> CookieSpec:
        """The cookie holding one login: ``sealed`` (the sealed transaction), signed with
        the time; a value too large for a browser is a 400."""
        value = self._state.sign(sealed).decode()
        if len(value) > MAX_STATE_COOKIE:
            raise BadRequest("the login is too large to remember; use a shorter return_to")
        return CookieSpec(
            self.state_name(state), value, self.state_max_age, self.state_path, self.secure
        )

    def clear_state(self, state: str) -> CookieSpec:
        return self.clear_state_named(self.state_name(state))

    def clear_state_named(self, name: str) -> CookieSpec:
        return CookieSpec(name, "", 0, self.state_path, self.secure)

    def read_state(self, value: str | None) -> str | None:
        """The sealed transaction a valid, unexpired state cookie holds; ``None`` otherwise."""
        found = self._read_state(value)
        return None if found is None else found[0]

    def _read_state(self, value: str | None) -> tuple[str, float] | None:
        if not value or len(value) > MAX_STATE_COOKIE:
            return None
        try:
            raw, signed_at = self._state.unsign(
                value, max_age=self.state_max_age, return_timestamp=True
            )
            return raw.decode("ascii"), signed_at.timestamp()
        except (BadSignature, UnicodeError):
            return None

    def evict_states(self, cookie_header: str | None, adding: int) -> tuple[CookieSpec, ...]:
        """Deletions that make room for a new state cookie of ``adding`` bytes: the state
        cookies of ``cookie_header`` that are invalid or expired, then the oldest, until at
        most ``MAX_LOGINS_IN_FLIGHT - 1`` remain and they and the new one fit in
        ``STATE_COOKIES_BUDGET`` bytes."""
        live: list[tuple[float, int, str]] = []  # (signed at, size, name)
        dead: list[str] = []
        for name, value in cookie_pairs(cookie_header):
            if not name.startswith(self.state_name_prefix):
                continue
            found = self._read_state(value)
            if found is None:
                dead.append(name)
            else:
                live.append((found[1], len(value), name))
        # oldest first; within one second (the signature's resolution), the order the
        # browser sends them in, which is creation order (RFC 6265 5.4)
        live.sort(key=lambda found: found[0])
        total = adding + sum(size for _, size, _ in live)
        while live and (len(live) >= MAX_LOGINS_IN_FLIGHT or total > STATE_COOKIES_BUDGET):
            _, size, name = live.pop(0)
            total -= size
            dead.append(name)
        return tuple(self.clear_state_named(name) for name in dict.fromkeys(dead))
