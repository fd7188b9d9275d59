"""Every refresh decision, pure: the vault performs I/O in the order these functions say.

A read of a credential goes through these steps (``_async/refresh.py`` is the I/O around them):

1. :func:`decide`: serve the stored token, refresh it, or ask the user to log in again;
2. :class:`Backoff`: a credential whose provider failed lately is not asked again yet;
3. :func:`lease_pauses`: how to wait for the cross-process lease held by someone else;
4. under the lease, :func:`under_lease`: the record re-read there may be fresh already
   (:func:`still_forced`: a forced refresh is moot once the record changed);
5. :func:`lease_renewal_due`: the lease renewed before each attempt at the token endpoint;
   :func:`retry_pause` between attempts, within :func:`retry_budget`;
6. :func:`after_response`: store the new tokens, mark the grant revoked, or fail over;
7. :func:`fallback`: when the provider failed, the still-valid token or ``ProviderUnavailable``.

The proactive sweep reports with :func:`sweep_start` and :func:`sweep_result`. Nothing here
reads a clock or does I/O: ``now`` is always a parameter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Literal

from .errors import ProviderUnavailable
from .model import REAUTHENTICATION_REQUIRED, TokenSet
from .tokens import TokenGranted, TokenOutcome, TokenRejected

__all__ = [
    "Backoff",
    "Decision",
    "LeaseVerdict",
    "RefreshOutcome",
    "ResponseVerdict",
    "SweepStart",
    "after_response",
    "decide",
    "failure_reason",
    "fallback",
    "lease_pauses",
    "lease_renewal_due",
    "retry_budget",
    "retry_pause",
    "same_grant",
    "still_forced",
    "sweep_result",
    "sweep_start",
    "under_lease",
]

Decision = Literal["use", "refresh", "reauthenticate", "expired"]
LeaseVerdict = Literal["use", "refresh", "reauthenticate", "lease_missed", "holder_failed"]
ResponseVerdict = Literal["store", "reauthenticate", "failed"]
SweepStart = Literal["refresh", "fresh", "reauthentication_required"]
RefreshOutcome = Literal["refreshed", "fresh", "reauthentication_required", "failed"]

LEASE_MISSED_RETRY_AFTER = 1.0
"""Seconds to tell a caller to wait when the lease holder neither finished nor let go."""


def decide(
    tokens: TokenSet,
    *,
    now: float,
    min_validity: float,
    force: bool = False,
    half_life: bool = True,
) -> Decision:
    """What to do with a stored token for a caller that needs ``min_validity`` seconds.

    A token whose whole lifetime is shorter than twice ``min_validity`` is refreshed at half
    its lifetime instead, so a provider issuing 5-minute tokens is not asked on every call
    by a caller asking for 10 minutes. ``half_life=False`` drops that rule: the refresh sweep
    refreshes whatever expires within the window the operator asked for. Without a refresh
    token an expiring token is served while it lasts (``use``), then ``expired``.
    """
    if tokens.status == REAUTHENTICATION_REQUIRED:
        return "reauthenticate"
    if tokens.expires_at is None and not force:
        return "use"
    if not force and tokens.expires_at is not None:
        wanted = float(min_validity)
        lifetime = tokens.lifetime
        if lifetime and half_life:
            wanted = min(wanted, lifetime / 2)
        if tokens.expires_at - now >= wanted:
            return "use"
    if tokens.refresh_token:
        return "refresh"
    if not force and tokens.expires_at is not None and tokens.expires_at > now:
        return "use"
    return "expired"


def still_forced(
    force: bool, *, seen_version: int, current_version: int, same_tokens: bool = False
) -> bool:
    """A forced refresh asks for a token other than the one the caller saw (the provider
    refused it). Once the record has changed since, its token is already another one,
    unless the change kept the tokens (``same_tokens``: :func:`same_grant`)."""
    return force and (seen_version == current_version or same_tokens)


def same_grant(a: TokenSet, b: TokenSet) -> bool:
    """Whether two versions of a record hold the same tokens: a write that sealed it again
    (key rotation) or annotated it (the accounts migration) without refreshing it. A
    reader waiting for a refresh must not take such a write for one."""
    return a.access_token == b.access_token and a.refresh_token == b.refresh_token


def under_lease(
    tokens: TokenSet,
    *,
    now: float,
    min_validity: float,
    force: bool,
    half_life: bool,
    leased: bool,
    holder_failed: bool = False,
) -> LeaseVerdict:
    """The decision on the record re-read after waiting for the lease.

    ``use``: someone refreshed meanwhile, or the token is fine after all; ``refresh``: ask the
    provider (only ever with the lease held); ``reauthenticate``: nothing left to refresh
    with; ``lease_missed``: a refresh is due but another holder kept the lease past its time,
    so no refresh token may be sent now; ``holder_failed``: the lease was taken after another
    holder let it go without writing a new version (its refresh failed, moments ago, with the
    same refresh token), so this caller does not try again at once (unless forced: its token
    was refused). For the last two :func:`fallback` decides what
    the caller gets: the still-valid token, or a 503.
    """
    verdict = decide(tokens, now=now, min_validity=min_validity, force=force, half_life=half_life)
    if verdict == "use":
        return "use"
    if verdict != "refresh" or tokens.refresh_token is None:
        return "reauthenticate"
    if not leased:
        return "lease_missed"
    return "holder_failed" if holder_failed and not force else "refresh"


def lease_pauses(lease_ttl: float) -> tuple[float, Iterator[float]]:
    """How long to wait for another holder's lease (its TTL and a second), and the pauses
    between attempts: 20 ms growing by half each time up to 100 ms."""

    def pauses() -> Iterator[float]:
        pause = 0.02
        while True:
            yield pause
            pause = min(pause * 1.5, 0.1)

    return lease_ttl + 1.0, pauses()


LEASE_FRESH_FOR = 1.0
"""Seconds (at most a tenth of the TTL) for which a lease just taken counts as renewed for
the first attempt at the token endpoint."""


def lease_renewal_due(attempt: int, lease_until: float, *, now: float, ttl: float) -> bool:
    """Before ``attempt`` (0-based) at the token endpoint: renew the lease (and learn whether
    it is still ours)? Always before a retry; before the first attempt unless the lease was
    taken within the last :data:`LEASE_FRESH_FOR` seconds: the acquisition was the renewal.

    ``lease_until`` and ``now`` are on one monotonic clock. A lease so fresh has at least
    ``0.9 * ttl`` left, more than the attempt's ``provider_timeout`` (the settings keep
    ``ttl > 2 * provider_timeout``): a renewal would change nothing but cost a write.
    """
    return attempt > 0 or lease_until - now <= ttl - min(LEASE_FRESH_FOR, ttl / 10)


def retry_budget(provider_timeout: float) -> float:
    """Seconds the retries of one refresh may add up to, from the first attempt."""
    return 2 * provider_timeout


def retry_pause(attempt: int, *, attempts: int, remaining: float) -> float | None:
    """Seconds to wait after failed ``attempt`` (0-based) before the next, or ``None``: stop.

    Backs off 0.25 s, 0.5 s, 1 s... never past the retry budget's ``remaining`` seconds.
    Only a retryable outcome (5xx, 429, transport failure, garbled body) is retried.
    """
    pause = min(0.25 * 2.0**attempt, max(0.0, remaining))
    if attempt + 1 >= attempts or pause <= 0:
        return None
    return pause


STORE_MARGIN = 1.0
"""Seconds before the lease ends by which a retried write of refreshed tokens must be done."""


def store_retry_pause(attempt: int, *, lease_left: float) -> float | None:
    """Seconds to wait before writing refreshed tokens again after the store failed on
    ``attempt`` (0-based), or ``None``: give up, the lease is about to end.

    The provider has already rotated the refresh token: losing the write loses the grant,
    so the write is retried (0.1 s, 0.2 s... up to 1 s apart) for as long as the lease keeps
    every other process from refreshing with the old token, less :data:`STORE_MARGIN`.
    """
    pause = min(0.1 * 2.0**attempt, 1.0)
    if lease_left - pause <= STORE_MARGIN:
        return None
    return pause


def after_response(outcome: TokenOutcome) -> ResponseVerdict:
    """What the token endpoint's answer to a refresh means for the stored credential.

    ``store``: new tokens (rotation applied by ``parse_token_response``); ``reauthenticate``:
    the grant is gone (``invalid_grant``); ``failed``: anything else, which is backed off and
    answered by :func:`fallback`.
    """
    if isinstance(outcome, TokenGranted):
        return "store"
    if isinstance(outcome, TokenRejected) and outcome.needs_reauthentication:
        return "reauthenticate"
    return "failed"


def failure_reason(outcome: TokenOutcome) -> str:
    """A short, log-safe reason for a failed refresh."""
    if isinstance(outcome, TokenRejected):
        return outcome.error
    if isinstance(outcome, TokenGranted):
        return "granted"
    return outcome.reason


def fallback(tokens: TokenSet, *, now: float, retry_after: float) -> TokenSet:
    """The provider failed: serve the current token while it is valid at all, else raise
    :class:`ProviderUnavailable` with a ``Retry-After`` covering ``retry_after``."""
    if tokens.expires_at is None or tokens.expires_at > now:
        return tokens
    raise ProviderUnavailable(retry_after=int(retry_after) + 1)


def sweep_start(tokens: TokenSet, *, now: float, within: float) -> SweepStart:
    """The sweep's view of a credential: refresh what expires within ``within`` seconds
    (no half-life rule); a token expiring with no refresh token needs the user again."""
    verdict = decide(tokens, now=now, min_validity=within, half_life=False)
    if verdict == "refresh":
        return "refresh"
    if verdict == "use":
        expiring = tokens.expires_at is not None and tokens.expires_at - now < within
        return "reauthentication_required" if expiring else "fresh"
    return "reauthentication_required"


def sweep_result(before: TokenSet, after: TokenSet) -> RefreshOutcome:
    """A sweep's refresh handed back ``after``: new tokens, or the unchanged ones that
    :func:`fallback` serves when the provider failed."""
    return "refreshed" if after != before else "failed"


class Backoff:
    """Per-credential delay after consecutive failures: 1 s, 2 s, 4 s... capped at ``maximum``,
    so a failing provider is not hammered. The clock is the caller's (``now``)."""

    def __init__(self, maximum: float, base: float = 1.0) -> None:
        self.maximum = maximum
        self.base = base
        self._state: dict[object, tuple[int, float]] = {}
        self._lock = threading.Lock()  # the sync vault shares one Backoff across threads

    def blocked_for(self, key: object, now: float) -> float:
        """Seconds before the provider may be asked again for ``key`` (0: now)."""
        entry = self._state.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry[1] - now)

    def failed(self, key: object, now: float) -> float:
        with self._lock:
            count = self._state.get(key, (0, 0.0))[0] + 1
            delay = float(min(self.maximum, self.base * 2.0 ** min(count - 1, 64)))
            self._state[key] = (count, now + delay)
            if len(self._state) > 10_000:  # bounded memory under many failing credentials
                oldest = min(self._state, key=lambda k: self._state[k][1])
                del self._state[oldest]
        return delay

    def succeeded(self, key: object) -> None:
        with self._lock:
            self._state.pop(key, None)
