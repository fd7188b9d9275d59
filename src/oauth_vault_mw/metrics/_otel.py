"""``OpenTelemetryMetrics``: the vault's metrics and spans through the OpenTelemetry API.

Only ``opentelemetry-api`` is imported (``pip install 'oauth-vault-mw[otel]'``): the host app
configures the SDK and its exporters (or runs under ``opentelemetry-instrument``); without an
SDK the API records nothing, as OpenTelemetry intends. Without the package at all, the bridge
logs one warning and stays disabled: the vault runs as with no metrics.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from ._instruments import (
    AUDIT_BACKLOG,
    INSTRUMENTS,
    Instrument,
)
from ._protocol import NO_METRICS, Step
from ._recording import Recording

__all__ = ["INSTRUMENTATION_NAME", "OpenTelemetryMetrics"]

logger = logging.getLogger("oauth_vault_mw")

INSTRUMENTATION_NAME = "oauth_vault_mw"
"""The meter's and the tracer's name (the instrumentation scope)."""

_FAILED_REFRESHES = frozenset({"failed", "error"})

End = Callable[[tuple[str, ...], str, float], None]


class _Step:
    """A timed step with its span: the span is current while the step runs, so the provider
    calls and storage operations of a refresh are its children."""

    __slots__ = (
        "_attributes",
        "_end",
        "_errors",
        "_kind",
        "_labels",
        "_name",
        "_owner",
        "_span",
        "_start",
        "_status_code",
        "_token",
        "outcome",
    )

    def __init__(
        self,
        owner: OpenTelemetryMetrics,
        name: str,
        kind: Any,
        attributes: Mapping[str, str],
        labels: tuple[str, ...],
        end: End,
        errors: Callable[[str], bool],
    ) -> None:
        self._owner = owner
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._labels = labels
        self._end = end
        self._errors = errors
        self._span: Any = None
        self._token: Any = None
        self._start = 0.0
        self._status_code: int | None = None
        self.outcome = ""

    def __enter__(self) -> _Step:
        owner = self._owner
        self._span = owner._tracer.start_span(
            self._name,
            kind=self._kind,
            attributes=self._attributes,
            record_exception=False,  # an exception's message is not a span's business
            set_status_on_exception=False,
        )
        self._token = owner._context.attach(owner._trace.set_span_in_context(self._span))
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        seconds = time.perf_counter() - self._start
        outcome = self.outcome or ("ok" if exc_type is None else "error")
        span = self._span
        owner = self._owner
        try:
            span.set_attribute("oauth_vault.outcome", outcome)
            if self._status_code is not None:
                span.set_attribute("http.response.status_code", self._status_code)
            if self._errors(outcome):
                error_type = exc_type.__name__ if exc_type is not None else outcome
                span.set_attribute("error.type", error_type)
                span.set_status(owner._status_error)
            span.end()
        finally:
            owner._context.detach(self._token)
            self._end(self._labels, outcome, seconds)

    def note(self, outcome: str, *, status_code: int | None = None) -> None:
        self.outcome = outcome
        self._status_code = status_code


def _version() -> str:
    try:
        return importlib.metadata.version("oauth-vault-mw")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return ""


class OpenTelemetryMetrics(Recording):
    """The vault's metrics and spans through the OpenTelemetry API::

        metrics = OpenTelemetryMetrics()  # the global providers the app's SDK set up
        app.add_middleware(OAuthVaultMiddleware, settings=..., metrics=metrics)

    ``meter_provider`` / ``tracer_provider``: others than the global ones (tests pass the
    SDK's with an in-memory reader and exporter). Spans: ``oauth_vault.refresh`` (one per
    refresh), ``oauth_vault.provider.<operation>`` (each HTTP call to a provider: token
    endpoint, user endpoint, revocation, discovery, JWKS) and ``oauth_vault.storage.<op>``
    (storage operations, the request path's reads only with ``time_storage_reads=True``).
    Their attributes: the connection id, the operation, the outcome, the provider's host
    name, the HTTP status, the storage backend; never a user id, a token, a key or a URL.
    """

    enabled: bool

    def __init__(
        self,
        *,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        time_storage_reads: bool = False,
    ) -> None:
        self.time_storage_reads = time_storage_reads
        self._watchers: list[Callable[[], int | None]] = []
        try:
            from opentelemetry import context, metrics, trace
        except ImportError:
            logger.warning(
                "oauth_vault_mw: OpenTelemetryMetrics records nothing: opentelemetry-api "
                "is not installed (pip install 'oauth-vault-mw[otel]')"
            )
            self.enabled = False
            return
        self.enabled = True
        self._context: Any = context
        self._trace: Any = trace
        self._status_error = trace.Status(trace.StatusCode.ERROR)
        self._client = trace.SpanKind.CLIENT
        self._internal = trace.SpanKind.INTERNAL
        version = _version()
        meter = metrics.get_meter(INSTRUMENTATION_NAME, version, meter_provider)
        self._tracer: Any = trace.get_tracer(INSTRUMENTATION_NAME, version, tracer_provider)
        self._instruments: dict[str, Any] = {}
        for instrument in INSTRUMENTS:
            self._instruments[instrument.name] = self._create(meter, metrics, instrument)

    def __repr__(self) -> str:
        return f"OpenTelemetryMetrics(enabled={self.enabled})"

    def _create(self, meter: Any, metrics: Any, instrument: Instrument) -> Any:
        name, unit, text = instrument.name, instrument.unit, instrument.description
        if instrument.kind == "counter":
            return meter.create_counter(name, unit=unit, description=text)
        if instrument.kind == "gauge":
            assert instrument is AUDIT_BACKLOG

            def observe(_options: Any) -> Iterable[Any]:
                return [metrics.Observation(self._audit_backlog())]

            return meter.create_observable_gauge(
                name, callbacks=[observe], unit=unit, description=text
            )
        try:
            return meter.create_histogram(
                name,
                unit=unit,
                description=text,
                explicit_bucket_boundaries_advisory=list(instrument.buckets),
            )
        except TypeError:  # opentelemetry-api before 1.23 takes no advisory
            return meter.create_histogram(name, unit=unit, description=text)

    def _add(self, instrument: Instrument, labels: tuple[str, ...], amount: int = 1) -> None:
        if not self.enabled:
            return
        attributes = dict(zip(instrument.labels, labels, strict=True))
        self._instruments[instrument.name].add(amount, attributes)

    def _observe(self, instrument: Instrument, labels: tuple[str, ...], value: float) -> None:
        if not self.enabled:
            return
        attributes = dict(zip(instrument.labels, labels, strict=True))
        self._instruments[instrument.name].record(value, attributes)

    # -- steps ----------------------------------------------------------------------------

    def refresh(self, connection_id: str) -> Step:
        if not self.enabled:
            return NO_METRICS.refresh(connection_id)
        return _Step(
            self,
            "oauth_vault.refresh",
            self._internal,
            {"oauth_vault.connection_id": connection_id},
            (connection_id,),
            self._refresh_ended,
            _FAILED_REFRESHES.__contains__,
        )

    def provider_call(self, connection_id: str, operation: str, server: str) -> Step:
        if not self.enabled:
            return NO_METRICS.provider_call(connection_id, operation, server)
        return _Step(
            self,
            f"oauth_vault.provider.{operation}",
            self._client,
            {
                "oauth_vault.connection_id": connection_id,
                "oauth_vault.operation": operation,
                "server.address": server,
            },
            (connection_id, operation),
            self._provider_call_ended,
            "ok".__ne__,
        )

    def storage_call(self, backend: str, operation: str, connection_id: str | None) -> Step:
        if not self.enabled:
            return NO_METRICS.storage_call(backend, operation, connection_id)
        attributes = {"db.system.name": backend, "db.operation.name": operation}
        if connection_id is not None:
            attributes["oauth_vault.connection_id"] = connection_id
        return _Step(
            self,
            f"oauth_vault.storage.{operation}",
            self._client,
            attributes,
            (backend, operation),
            self._storage_call_ended,
            "error".__eq__,
        )

    # -- events ---------------------------------------------------------------------------

    def watch_audit_backlog(self, read: Callable[[], int | None]) -> None:
        self._watchers.append(read)

    def _audit_backlog(self) -> int:
        total = 0
        for read in list(self._watchers):
            found = read()
            if found is None:
                with contextlib.suppress(ValueError):  # another collection dropped it first
                    self._watchers.remove(read)
            else:
                total += found
        return total
