"""Which instrument each fact the vault reports feeds, once for every implementation.

:class:`PrometheusMetrics` and :class:`OpenTelemetryMetrics` differ only in how they add to
a counter and record into a histogram (:meth:`Recording._add`, :meth:`Recording._observe`);
the mapping from a refresh's end, a provider call's, a storage call's, a lease wait and the
other events to instruments and label values lives here.
"""

from __future__ import annotations

from ._instruments import (
    AUDIT_EVENTS_LOST,
    LEASE_WAIT_DURATION,
    LEASE_WAITS,
    PROVIDER_ERRORS,
    PROVIDER_REQUEST_DURATION,
    REAUTHENTICATION_REQUIRED,
    REFRESH_DURATION,
    REFRESHES,
    SINGLE_FLIGHT_JOINS,
    STORAGE_ERRORS,
    STORAGE_OPERATION_DURATION,
    Instrument,
)

__all__ = ["Labels", "Recording"]

Labels = tuple[str, ...]


class Recording:
    """The events of :class:`~oauth_vault_mw.metrics.Metrics` recorded through two
    primitives a subclass provides. The ``_*_ended`` methods end the steps: ``labels`` are
    the ones the step was opened with."""

    def _add(self, instrument: Instrument, labels: Labels, amount: int = 1) -> None:
        raise NotImplementedError

    def _observe(self, instrument: Instrument, labels: Labels, value: float) -> None:
        raise NotImplementedError

    def _refresh_ended(self, labels: Labels, outcome: str, seconds: float) -> None:
        full = (labels[0], outcome)
        self._add(REFRESHES, full)
        self._observe(REFRESH_DURATION, full, seconds)

    def _provider_call_ended(self, labels: Labels, outcome: str, seconds: float) -> None:
        self._observe(PROVIDER_REQUEST_DURATION, labels, seconds)
        if outcome != "ok":
            self._add(PROVIDER_ERRORS, (*labels, outcome))

    def _storage_call_ended(self, labels: Labels, outcome: str, seconds: float) -> None:
        self._observe(STORAGE_OPERATION_DURATION, labels, seconds)
        if outcome == "error":
            self._add(STORAGE_ERRORS, labels)

    def lease_waited(self, connection_id: str, outcome: str, seconds: float) -> None:
        self._add(LEASE_WAITS, (connection_id, outcome))
        self._observe(LEASE_WAIT_DURATION, (connection_id, outcome), seconds)

    def reauthentication_marked(self, connection_id: str) -> None:
        self._add(REAUTHENTICATION_REQUIRED, (connection_id,))

    def single_flight_joined(self, connection_id: str) -> None:
        self._add(SINGLE_FLIGHT_JOINS, (connection_id,))

    def audit_events_lost(self, count: int) -> None:
        self._add(AUDIT_EVENTS_LOST, (), count)
