"""The seam: what the vault reports, and the default that records nothing.

The vault calls these methods where it already knows the facts (``_async/refresh.py``,
``_async/provider.py``, the single flight, the audit trail, the storage wrapper). Every
argument is a configured connection id, a storage backend's name or a word of the fixed
vocabularies in ``core/telemetry.py``: an implementation never receives a user id, a token,
a key or a URL, so it cannot leak one.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol, runtime_checkable

from ..core.model import CredentialKey, StoredCredential

__all__ = ["NO_METRICS", "Metrics", "NoMetrics", "Step", "backend_name", "connection_of"]


@runtime_checkable
class Step(Protocol):
    """One timed step (a refresh, a provider call, a storage operation), used as a context
    manager: timed from ``__enter__`` to ``__exit__`` (a span, where the implementation
    traces). The vault calls :meth:`note` with how it ended; a step left by an exception
    without a note ended in ``"error"``, one left normally in ``"ok"``."""

    def __enter__(self) -> Step: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def note(self, outcome: str, *, status_code: int | None = None) -> None:
        """How the step ended (``refreshed``, ``http_5xx``...); ``status_code``: the HTTP
        status of a provider's reply."""


@runtime_checkable
class Metrics(Protocol):
    """What the vault reports. Implementations: :class:`NoMetrics` (the default: nothing),
    :class:`~oauth_vault_mw.metrics.PrometheusMetrics`,
    :class:`~oauth_vault_mw.metrics.OpenTelemetryMetrics`. Write your own (StatsD...) by
    subclassing :class:`NoMetrics` and overriding what you need::

        class Statsd(NoMetrics):
            enabled = True

            def reauthentication_marked(self, connection_id: str) -> None:
                statsd.incr(f"oauth_vault.reauth.{connection_id}")
    """

    enabled: bool
    """False: the vault adds nothing to any path (no storage wrapper, no single-flight hook)."""
    time_storage_reads: bool
    """True: the request path's storage reads are timed too (about 1 us each); else only
    writes, leases, scans and the audit trail's steps are."""

    def refresh(self, connection_id: str) -> Step:
        """One refresh (the single flight's body): outcome from ``REFRESH_OUTCOMES``."""

    def provider_call(self, connection_id: str, operation: str, server: str) -> Step:
        """One HTTP call to a provider (``operation`` from ``PROVIDER_OPERATIONS``; ``server``:
        the host name only). Outcome ``ok`` or one of ``ERROR_CLASSES``."""

    def storage_call(self, backend: str, operation: str, connection_id: str | None) -> Step:
        """One storage operation (the protocol's method name); outcome ``ok``, ``error``."""

    def lease_waited(self, connection_id: str, outcome: str, seconds: float) -> None:
        """A refresh waited for a lease another held (outcome from ``LEASE_OUTCOMES``)."""

    def reauthentication_marked(self, connection_id: str) -> None:
        """A credential was marked ``reauthentication_required`` (once per refusal)."""

    def single_flight_joined(self, connection_id: str) -> None:
        """A read joined the refresh another task or thread of this process runs."""

    def audit_events_lost(self, count: int) -> None:
        """The audit trail could not write ``count`` events."""

    def watch_audit_backlog(self, read: Callable[[], int | None]) -> None:
        """Register a reader of an audit trail's pending events (called at collection time,
        so the request path pays nothing; ``None`` once its vault is gone)."""


class _NoStep:
    __slots__ = ()

    def __enter__(self) -> _NoStep:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def note(self, outcome: str, *, status_code: int | None = None) -> None:
        return None


_NO_STEP = _NoStep()


class NoMetrics:
    """Records nothing, and is not asked on the request path (``enabled`` is False)."""

    enabled: bool = False
    time_storage_reads: bool = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def refresh(self, connection_id: str) -> Step:
        return _NO_STEP

    def provider_call(self, connection_id: str, operation: str, server: str) -> Step:
        return _NO_STEP

    def storage_call(self, backend: str, operation: str, connection_id: str | None) -> Step:
        return _NO_STEP

    def lease_waited(self, connection_id: str, outcome: str, seconds: float) -> None:
        return None

    def reauthentication_marked(self, connection_id: str) -> None:
        return None

    def single_flight_joined(self, connection_id: str) -> None:
        return None

    def audit_events_lost(self, count: int) -> None:
        return None

    def watch_audit_backlog(self, read: Callable[[], int | None]) -> None:
        return None


NO_METRICS = NoMetrics()
"""The default of every vault."""


def backend_name(storage: object) -> str:
    """A storage's label: its URL's scheme (``sqlite``, ``postgresql``), else its class's
    name (``memory``, ``redis``); an async adapter is named after the backend it adapts."""
    inner = getattr(storage, "sync", storage)
    url = getattr(inner, "url", None)
    if isinstance(url, str) and "://" in url:
        scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
        return {"rediss": "redis", "postgres": "postgresql"}.get(scheme, scheme)
    name = type(inner).__name__.removeprefix("Async").removesuffix("Storage").lower()
    return name or "custom"


def connection_of(args: tuple[object, ...]) -> str | None:
    """The connection a storage operation's arguments are about (a span attribute): the
    key's or the record's, never the user's."""
    if args:
        first = args[0]
        if isinstance(first, CredentialKey):
            return first.connection_id
        if isinstance(first, StoredCredential):
            return first.key.connection_id
    return None
