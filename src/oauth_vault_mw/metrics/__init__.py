"""Metrics and traces: refreshes and their outcomes, provider errors, re-authentications,
single-flight joins, lease waits, storage latency, the audit backlog.

Give a vault an implementation; the default records nothing and costs nothing::

    from oauth_vault_mw.metrics import PrometheusMetrics

    metrics = PrometheusMetrics()
    app.add_middleware(OAuthVaultMiddleware, settings=settings, metrics=metrics)
    app.add_route("/metrics", metrics.asgi_app())

- :class:`PrometheusMetrics`: an in-process registry and its text exposition, no dependency;
- :class:`OpenTelemetryMetrics`: metrics and spans through ``opentelemetry-api``
  (``pip install 'oauth-vault-mw[otel]'``), exported by whatever SDK the app configures;
- :class:`Metrics`: the protocol, to write another (subclass :class:`NoMetrics`).

Labels are connection ids and fixed words only (``docs/operations.md`` lists every metric,
with alerts and a dashboard): never a user id, a token, a key or a URL.
"""

from __future__ import annotations

from ._instruments import INSTRUMENTS as INSTRUMENTS
from ._instruments import Instrument as Instrument
from ._otel import OpenTelemetryMetrics as OpenTelemetryMetrics
from ._prometheus import CONTENT_TYPE as CONTENT_TYPE
from ._prometheus import PrometheusMetrics as PrometheusMetrics
from ._protocol import NO_METRICS as NO_METRICS
from ._protocol import Metrics as Metrics
from ._protocol import NoMetrics as NoMetrics
from ._protocol import Step as Step

__all__ = [
    "CONTENT_TYPE",
    "INSTRUMENTS",
    "NO_METRICS",
    "Instrument",
    "Metrics",
    "NoMetrics",
    "OpenTelemetryMetrics",
    "PrometheusMetrics",
    "Step",
]
