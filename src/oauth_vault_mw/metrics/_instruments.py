"""The instruments, once: their names, kinds, units, labels and buckets.

Both implementations build from this table, and ``docs/operations.md`` lists it (a test
compares them). The OpenTelemetry name is the source; the Prometheus name follows the
OpenTelemetry-to-Prometheus rules (dots to underscores, ``_seconds`` for a unit of seconds,
``_total`` for a counter), so dashboards read the same series from either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "AUDIT_BACKLOG",
    "AUDIT_EVENTS_LOST",
    "INSTRUMENTS",
    "LEASE_WAITS",
    "LEASE_WAIT_DURATION",
    "PROVIDER_ERRORS",
    "PROVIDER_REQUEST_DURATION",
    "REAUTHENTICATION_REQUIRED",
    "REFRESHES",
    "REFRESH_DURATION",
    "SINGLE_FLIGHT_JOINS",
    "STORAGE_ERRORS",
    "STORAGE_OPERATION_DURATION",
    "Instrument",
]

Kind = Literal["counter", "histogram", "gauge"]

# Seconds. A refresh or a provider call takes tens to hundreds of milliseconds and is cut at
# provider_timeout (default 10 s); a storage step takes microseconds (SQLite, memory) to
# milliseconds (PostgreSQL, Redis over a network).
CALL_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STORAGE_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


@dataclass(frozen=True)
class Instrument:
    name: str  # OpenTelemetry's
    kind: Kind
    unit: str
    labels: tuple[str, ...]
    description: str
    buckets: tuple[float, ...] = ()

    @property
    def prometheus_name(self) -> str:
        base = self.name.replace(".", "_")
        if self.unit == "s":
            base += "_seconds"
        if self.kind == "counter":
            base += "_total"
        return base


REFRESHES = Instrument(
    "oauth_vault.refreshes",
    "counter",
    "{refresh}",
    ("connection", "outcome"),
    "Refreshes of a credential (one per single flight), by how they ended.",
)
REFRESH_DURATION = Instrument(
    "oauth_vault.refresh.duration",
    "histogram",
    "s",
    ("connection", "outcome"),
    "Time a refresh took, lease wait and provider retries included.",
    CALL_BUCKETS,
)
PROVIDER_REQUEST_DURATION = Instrument(
    "oauth_vault.provider.request.duration",
    "histogram",
    "s",
    ("connection", "operation"),
    "Time of one HTTP call to a provider, whole reply read (or the failure).",
    CALL_BUCKETS,
)
PROVIDER_ERRORS = Instrument(
    "oauth_vault.provider.errors",
    "counter",
    "{error}",
    ("connection", "operation", "error_class"),
    "Provider calls that failed or answered with an error, by class.",
)
REAUTHENTICATION_REQUIRED = Instrument(
    "oauth_vault.reauthentication_required",
    "counter",
    "{credential}",
    ("connection",),
    "Credentials marked reauthentication_required (the provider refused the refresh token).",
)
SINGLE_FLIGHT_JOINS = Instrument(
    "oauth_vault.single_flight.joins",
    "counter",
    "{call}",
    ("connection",),
    "Reads that waited for a refresh already running in this process instead of starting one.",
)
LEASE_WAITS = Instrument(
    "oauth_vault.lease.waits",
    "counter",
    "{wait}",
    ("connection", "outcome"),
    "Waits for a credential's refresh lease held by another refresh (another process).",
)
LEASE_WAIT_DURATION = Instrument(
    "oauth_vault.lease.wait.duration",
    "histogram",
    "s",
    ("connection", "outcome"),
    "How long a refresh waited for a lease held by another.",
    CALL_BUCKETS,
)
STORAGE_OPERATION_DURATION = Instrument(
    "oauth_vault.storage.operation.duration",
    "histogram",
    "s",
    ("backend", "operation"),
    "Time of one storage operation.",
    STORAGE_BUCKETS,
)
STORAGE_ERRORS = Instrument(
    "oauth_vault.storage.errors",
    "counter",
    "{error}",
    ("backend", "operation"),
    "Storage operations that raised (storage unavailable).",
)
AUDIT_BACKLOG = Instrument(
    "oauth_vault.audit.backlog",
    "gauge",
    "{event}",
    (),
    "Audit events counted but not yet written to storage.",
)
AUDIT_EVENTS_LOST = Instrument(
    "oauth_vault.audit.events_lost",
    "counter",
    "{event}",
    (),
    "Audit events dropped because the storage refused their write (they are in the log).",
)

INSTRUMENTS: Final = (
    REFRESHES,
    REFRESH_DURATION,
    PROVIDER_REQUEST_DURATION,
    PROVIDER_ERRORS,
    REAUTHENTICATION_REQUIRED,
    SINGLE_FLIGHT_JOINS,
    LEASE_WAITS,
    LEASE_WAIT_DURATION,
    STORAGE_OPERATION_DURATION,
    STORAGE_ERRORS,
    AUDIT_BACKLOG,
    AUDIT_EVENTS_LOST,
)
