"""What a token endpoint's reply means: pure functions (the requests: ``token_requests.py``).

The shells send the requests ``core/token_requests.py`` builds and feed the reply back to
:func:`parse_token_response`; nothing here does I/O or reads a clock (``now`` is a parameter).

Real providers bend RFC 6749 section 5 in a small number of ways. Each is one named function
below, driven by the connection's :class:`~.dialect.TokenDialect` (never by the provider's
name), and each has its own tests (``tests/core/test_token_quirks.py``):

- :func:`decode_body`: JSON whatever the Content-Type, form-encoded replies (GitHub), a BOM;
- :func:`error_outcome`: errors in a 200 body (Slack ``ok: false``, GitHub, Reddit) exactly as
  with a 4xx, non-RFC error bodies (HubSpot, Twitch, Strava, Microsoft), re-authentication
  synonyms (``bad_refresh_token``, ``invalid_refresh_token``...), transient error codes;
- :func:`token_object`: a nested token (Slack v2 ``authed_user``);
- :func:`read_scope`: ``scope`` as a string (space or comma separated), a list, ``scopes``;
- :func:`read_expiry`: no ``expires_in``, ``expires_in: 0`` meaning never (Mailchimp), an
  absolute ``expires_at`` (Strava); :func:`read_refresh_expiry`: the refresh token's own
  lifetime (``refresh_token_expires_in`` & co);
- :func:`read_token_type`: a ``token_type`` that is not an HTTP scheme (Slack ``user``);
- :func:`kept_extra`: the non-secret fields a dialect keeps (Salesforce ``instance_url``).

Whatever the body, :func:`parse_token_response` returns one of :class:`TokenGranted`,
:class:`TokenRejected` or :class:`TokenRetryable`; it never raises.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from .dialect import REAUTH_ERRORS, STANDARD, TokenDialect
from .model import TokenSet

__all__ = [
    "MAX_EXTRA_STRING",
    "MAX_LIFETIME",
    "MAX_TOKEN_RESPONSE",
    "TokenGranted",
    "TokenOutcome",
    "TokenRejected",
    "TokenRetryable",
    "decode_body",
    "dig",
    "error_code",
    "error_codes",
    "error_outcome",
    "is_secret_key",
    "kept_extra",
    "parse_token_response",
    "pick_kept",
    "read_expiry",
    "read_refresh_expiry",
    "read_scope",
    "read_token_type",
    "token_object",
]

MAX_TOKEN_RESPONSE = 256 * 1024
MAX_EXTRA_STRING = 2048
"""Longest string kept in ``TokenSet.extra``; a longer value is dropped, not cut."""
MAX_LIFETIME = 100 * 365 * 86_400.0
"""Lifetimes beyond a century are taken as a century (no absurd floats in the record)."""
MAX_CODE = 63
MAX_DESCRIPTION = 200
_EXTRA_INT = 2**63
_TOKEN_TYPES = frozenset({"bearer", "dpop", "mac"})
_SECRET_WORDS = (
    "secret",
    "password",
    "passwd",
    "assertion",
    "private_key",
    "privatekey",
    "api_key",
    "apikey",
    "credential",
    "code_verifier",
)


@dataclass(frozen=True)
class TokenGranted:
    tokens: TokenSet
    id_token: str | None = field(repr=False, default=None)


@dataclass(frozen=True)
class TokenRejected:
    """The provider answered with an error (``invalid_grant``...): do not retry.

    ``reauthenticate``: the grant is gone and only a new login helps (the parser sets it from
    the connection's dialect). The codes of :data:`~.dialect.REAUTH_ERRORS` always set it.
    """

    error: str
    description: str = ""
    reauthenticate: bool = False

    def __post_init__(self) -> None:
        if not self.reauthenticate and self.error.lower() in REAUTH_ERRORS:
            object.__setattr__(self, "reauthenticate", True)

    @property
    def needs_reauthentication(self) -> bool:
        return self.reauthenticate


@dataclass(frozen=True)
class TokenRetryable:
    """5xx, 429, a transport failure, a transient error code, or a body that is not a token
    response."""

    reason: str
    retry_after: float | None = None


TokenOutcome = TokenGranted | TokenRejected | TokenRetryable


# -- reading a reply: one function per quirk ------------------------------------------------


def decode_body(content_type: str, body: bytes) -> dict[str, Any] | None:
    """The reply as a flat or nested object, or ``None`` when it is not one.

    The body decides, not the Content-Type: a body that starts with ``{`` is JSON (a JSON
    reply labelled ``text/plain``); any other is read as form-encoded (GitHub answers
    ``access_token=...&scope=...`` unless told otherwise, sometimes labelled JSON), except
    an HTML or XML page. A UTF-8 BOM is skipped. Over :data:`MAX_TOKEN_RESPONSE` bytes, JSON
    nested too deep for the parser (``RecursionError``), numbers with more digits than
    Python reads: ``None``.
    """
    if len(body) > MAX_TOKEN_RESPONSE:
        return None
    text = body.decode("utf-8-sig", errors="replace").lstrip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None
    lowered = content_type.lower()
    if text.startswith("<") or "html" in lowered or "xml" in lowered:
        return None
    try:
        pairs = parse_qsl(text, keep_blank_values=False)
    except ValueError:
        return None
    return dict(pairs) if pairs else None


def dig(document: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``"authed_user.id"``; a segment of digits indexes a
    list: ``"errors.0.code"``), or ``None``."""
    value = document
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isascii() and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            return None
    return value


def _token_string(value: Any) -> str | None:
    """A token as RFC 6749 A.12 allows it: non-empty printable ASCII (VSCHAR)."""
    if isinstance(value, str) and value and value.isascii() and value.isprintable():
        return value
    return None


def token_object(
    data: dict[str, Any], dialect: TokenDialect, *, refreshing: bool
) -> dict[str, Any]:
    """Where the token fields are: the object at ``dialect.token_path`` (Slack v2's user token
    in ``authed_user``), else the top level.

    At the code exchange the nested object is the only place looked at (Slack's top level
    then holds the *bot* token, not the user's): without it the reply has no token. A refresh
    reply without it is read at the top level: Slack answers a user-token refresh flat ([S]
    ``@slack/oauth``'s ``OAuthV2TokenRefreshResponse``; tolerant, as the refresh token sent
    can only be refreshed into its own kind of token).
    """
    if not dialect.token_path:
        return data
    nested = dig(data, ".".join(dialect.token_path))
    if isinstance(nested, dict) and _token_string(nested.get("access_token")):
        return nested
    return data if refreshing else {}


def _code_part(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) < 10**18:
        return str(value)
    if isinstance(value, str) and value and value.isascii() and value.isprintable():
        return value
    return None


def error_codes(data: dict[str, Any], dialect: TokenDialect) -> list[str]:
    """Every code the reply names: ``error`` when it is a string, then each of the dialect's
    ``error_fields`` that holds one (``+`` joins several fields with ``:``). A code is
    printable ASCII of at most 63 characters; a dialect field that says just ``error``
    (HubSpot's ``"status": "error"``) is not a code."""
    codes: list[str] = []
    error = data.get("error")
    if isinstance(error, str) and 0 < len(error) <= MAX_CODE and _code_part(error):
        codes.append(error)
    for entry in dialect.error_fields:
        parts = [_code_part(dig(data, path)) for path in entry.split("+")]
        if not all(parts):
            continue
        code = ":".join(p for p in parts if p)
        if len(code) <= MAX_CODE and code.lower() != "error":
            codes.append(code)
    return codes


def error_code(data: dict[str, Any], dialect: TokenDialect) -> str | None:
    """The error's code: the first of :func:`error_codes`."""
    codes = error_codes(data, dialect)
    return codes[0] if codes else None


def _clean(text: str, previous: TokenSet | None) -> str:
    """A provider string made safe for a log line: whitespace runs (Microsoft's ``\\r\\n``)
    become one space, other unprintable characters ``?``, the previous tokens are masked
    (before the text is cut: no token is left half-shown), and the result is bounded."""
    text = " ".join(text.split())
    if not text.isprintable():
        text = "".join(c if c.isprintable() else "?" for c in text)
    if previous is not None:
        for secret in (previous.refresh_token, previous.access_token):
            if secret and len(secret) >= 8 and secret in text:
                text = text.replace(secret, "[redacted]")
    return text[:MAX_DESCRIPTION]


def _describe(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and abs(value) < 10**18:
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, list):
        items = [_describe(v) for v in value[:8] if not isinstance(v, (list, dict))]
        return ",".join(i for i in items if i) or None
    return None


def error_description(
    data: dict[str, Any], dialect: TokenDialect, previous: TokenSet | None = None
) -> str:
    """``error_description``, then the dialect's ``description_fields`` as ``path=value``
    (Microsoft ``error_codes=70008``, HubSpot ``message=...``; a list as its first scalars
    joined by ``,``), joined by ``; ``, escaped and bounded (:func:`_clean`)."""
    pieces: list[str] = []
    described = data.get("error_description")
    if isinstance(described, str) and described:
        pieces.append(described)
    for path in dialect.description_fields:
        text = _describe(dig(data, path))
        if text:
            pieces.append(f"{path}={text}")
    return _clean("; ".join(pieces), previous)


def error_outcome(
    status: int,
    data: dict[str, Any],
    dialect: TokenDialect = STANDARD,
    *,
    previous: TokenSet | None = None,
    retry_after: str | None = None,
) -> TokenRejected | TokenRetryable | None:
    """What an error reply means, or ``None`` when ``data`` is not an error.

    An error is a 4xx status, an ``error`` field, Slack's ``"ok": false``, or, with a
    dialect that names ``error_fields``, a reply without an access token whose error fields
    hold a code (Twitch's ``{"status": 400, "message": ...}``). The status does not change
    the verdict: GitHub's and Reddit's errors come with HTTP 200 and mean what they would
    with a 400. A code that means the grant is gone (:meth:`TokenDialect.is_reauth_error`)
    sets ``reauthenticate``; a transient one (``temporarily_unavailable``, Slack
    ``ratelimited``) is retryable; an error without a usable code is retryable too.
    """
    signalled = status >= 400 or data.get("error") is not None or data.get("ok") is False
    codes = error_codes(data, dialect)
    code = codes[0] if codes else None
    if not signalled:
        if code is None or not dialect.error_fields:
            return None
        token = token_object(data, dialect, refreshing=previous is not None)
        if _token_string(token.get("access_token")):
            return None
    if code is None:
        return TokenRetryable(f"http {status}: error without a code")
    if dialect.is_transient_error(code):
        reason = f"http {status}: {_clean(code, previous)}"
        return TokenRetryable(reason, _retry_after(retry_after))
    return TokenRejected(
        _clean(code, previous)[:MAX_CODE],
        error_description(data, dialect, previous),
        # Any code may say the grant is gone: HubSpot sends "error": "invalid_request"
        # beside "status": "BAD_REFRESH_TOKEN".
        reauthenticate=any(dialect.is_reauth_error(c) for c in codes),
    )


def _seconds(value: Any) -> float | None:
    """A non-negative finite number of seconds, from a number or a numeric string."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str) and len(value) <= 64:
            number = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def read_expiry(
    token: dict[str, Any],
    dialect: TokenDialect,
    *,
    now: float,
    default_expires_in: int | None,
) -> float | None:
    """When the access token expires (``None``: never).

    ``expires_in`` (a number or a numeric string; unreadable means absent) wins; ``0`` means
    never with ``zero_expires_never`` (Mailchimp), else expired already. Without it, the
    dialect's ``expires_at_field`` (Strava ``expires_at``, epoch seconds), else
    ``default_expires_in`` (the connection's; ``None``: such tokens never expire). Any
    lifetime is capped at :data:`MAX_LIFETIME`.
    """
    lifetime = _seconds(token.get("expires_in"))
    if lifetime is not None:
        if lifetime == 0 and dialect.zero_expires_never:
            return None
        return now + min(lifetime, MAX_LIFETIME)
    if dialect.expires_at_field is not None:
        at = _seconds(token.get(dialect.expires_at_field))
        if at is not None:
            return min(at, now + MAX_LIFETIME)
    if default_expires_in is None:
        return None
    return now + default_expires_in


def read_refresh_expiry(
    token: dict[str, Any],
    dialect: TokenDialect,
    *,
    now: float,
    refresh_token: str | None,
    previous: TokenSet | None,
) -> float | None:
    """When the refresh token stops working (``None``: not said, or never).

    The first of the dialect's ``refresh_expires_fields`` with a readable number of seconds
    (GitHub Apps, LinkedIn ``refresh_token_expires_in``, Intuit
    ``x_refresh_token_expires_in``, Keycloak ``refresh_expires_in``, where ``0`` means an
    offline token without limit). A reply that says nothing keeps the previous value while
    the refresh token is the same one (LinkedIn's and Spotify's limits run from the first
    grant), and drops it for a new refresh token whose limit is not known.
    """
    if refresh_token is None:
        return None
    for name in dialect.refresh_expires_fields:
        seconds = _seconds(token.get(name))
        if seconds is not None:
            return None if seconds == 0 else now + min(seconds, MAX_LIFETIME)
    if previous is not None and previous.refresh_token == refresh_token:
        return previous.refresh_expires_at
    return None


def _scope_text(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = " ".join(value)
    if not isinstance(value, str):
        return None
    # Unprintable scope tokens are dropped: the scope is stored and shown in clear.
    return " ".join(t for t in value.replace(",", " ").split() if t.isprintable()) or None


def read_scope(token: dict[str, Any], previous: TokenSet | None) -> str | None:
    """The granted scope, space-separated: ``scope`` as a space- or comma-separated string
    (GitHub ``repo,gist``) or a list of strings (Twitch), else ``scopes`` in the same forms
    (Bitbucket, HubSpot); absent, empty or unreadable (Mailchimp ``null``): the previous
    scope (RFC 6749 5.1: unchanged), ``None`` at the first grant. Unprintable scope tokens
    are dropped."""
    for name in ("scope", "scopes"):
        scope = _scope_text(token.get(name))
        if scope is not None:
            return scope
    return previous.scope if previous is not None else None


def read_token_type(value: Any) -> str:
    """The token's HTTP authentication scheme: ``Bearer``, ``DPoP`` or ``MAC`` as the
    provider spells it; anything else (Slack's ``user`` and ``bot``, absent) is ``Bearer``,
    so ``Credentials.authorization_header`` stays usable."""
    if isinstance(value, str) and value.lower() in _TOKEN_TYPES:
        return value
    return "Bearer"


def is_secret_key(name: str) -> bool:
    """Whether a field name looks like it holds a credential: it ends in ``token``
    (``access_token``, ``refresh_token``, ``id_token``, ``webhook.token``) or names a secret
    (``*secret*``, ``*password*``, ``*assertion*``, ``*private_key*``, ``*api_key*``,
    ``*credential*``...). Such values are never kept in ``TokenSet.extra``, whatever a
    dialect says; ``token_type`` and ``issued_token_type`` do not end in ``token``."""
    lowered = name.lower()
    return lowered.endswith("token") or any(word in lowered for word in _SECRET_WORDS)


def _keepable(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_EXTRA_INT <= value < _EXTRA_INT
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        if len(value) > MAX_EXTRA_STRING:
            return False
        try:
            value.encode("utf-8")  # no lone surrogates: the value goes back out as JSON
        except UnicodeEncodeError:
            return False
        return True
    return False


def kept_extra(
    data: dict[str, Any], dialect: TokenDialect, previous: TokenSet | None = None
) -> tuple[tuple[str, Any], ...]:
    """``TokenSet.extra``: the previous token set's values, updated with the dialect's
    ``keep`` fields found in this reply (paths from its top level).

    Kept: JSON scalars (string, integer within 64 bits, finite number, boolean), strings of
    at most :data:`MAX_EXTRA_STRING` characters. Never kept: a value whose name or any path
    segment :func:`is_secret_key`. A refresh reply without a field keeps its previous value
    (Slack's ``team`` comes at the code exchange only; Salesforce's ``instance_url`` comes
    again, and the new value wins).
    """
    merged: dict[str, Any] = dict(previous.extra) if previous is not None else {}
    merged.update(pick_kept(data, dialect.keep))
    return tuple(merged.items())


def pick_kept(document: Any, keep: Iterable[tuple[str, str]]) -> tuple[tuple[str, Any], ...]:
    """The ``(name, dotted.path)`` values of ``document`` that may be kept as
    ``Credentials.extra``, by the rules of :func:`kept_extra`."""
    found: list[tuple[str, Any]] = []
    for name, path in keep:
        if is_secret_key(name) or any(is_secret_key(part) for part in path.split(".")):
            continue
        value = dig(document, path)
        if value is not None and _keepable(value):
            found.append((name, value))
    return tuple(found)


def parse_token_response(
    status: int,
    content_type: str,
    body: bytes,
    *,
    now: float,
    default_expires_in: int | None,
    previous: TokenSet | None = None,
    retry_after: str | None = None,
    dialect: TokenDialect = STANDARD,
) -> TokenOutcome:
    """Classify a token endpoint answer and, on success, build the new :class:`TokenSet`.

    ``previous``: the token set being refreshed (``None`` at the code exchange). 429 and 5xx
    are retryable whatever the body; then :func:`error_outcome`; then a grant needs HTTP 200
    and an access token (printable ASCII) where :func:`token_object` says. A refresh reply
    without a refresh token keeps the previous one, a new one replaces it (rotation). Never
    raises: anything unreadable is :class:`TokenRetryable`.
    """
    if status == 429 or status >= 500:
        return TokenRetryable(f"http {status}", _retry_after(retry_after))
    data = decode_body(content_type, body)
    if data is None:
        return TokenRetryable(f"http {status}: not a token response")
    failure = error_outcome(status, data, dialect, previous=previous, retry_after=retry_after)
    if failure is not None:
        return failure
    token = token_object(data, dialect, refreshing=previous is not None)
    access_token = _token_string(token.get("access_token"))
    if status != 200 or access_token is None:
        return TokenRetryable(f"http {status}: no access_token")
    refresh = _token_string(token.get("refresh_token"))
    if refresh is None and previous is not None:
        refresh = previous.refresh_token
    return TokenGranted(
        TokenSet(
            access_token=access_token,
            refresh_token=refresh,
            token_type=read_token_type(token.get("token_type")),
            expires_at=read_expiry(token, dialect, now=now, default_expires_in=default_expires_in),
            scope=read_scope(token, previous),
            obtained_at=now,
            extra=kept_extra(data, dialect, previous),
            refresh_expires_at=read_refresh_expiry(
                token, dialect, now=now, refresh_token=refresh, previous=previous
            ),
            # a refresh carries the login's profile along and counts itself
            profile=previous.profile if previous is not None else (),
            login_at=previous.login_at if previous is not None else None,
            refresh_count=previous.refresh_count + 1 if previous is not None else 0,
            asked_scope=previous.asked_scope if previous is not None else None,
            subject=previous.subject if previous is not None else None,
        ),
        id_token=_token_string(token.get("id_token")),
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if math.isnan(seconds):
        return None
    return max(0.0, min(seconds, 3600.0))
