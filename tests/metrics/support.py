"""What the metrics tests share: one reading of the series from either implementation, the
secret scan of everything exported, and the fixed vocabularies labels must come from."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from oauth_vault_mw._async.telemetry import OPERATIONS
from oauth_vault_mw.core.telemetry import (
    ERROR_CLASSES,
    LEASE_OUTCOMES,
    PROVIDER_OPERATIONS,
    REFRESH_OUTCOMES,
)
from oauth_vault_mw.metrics import INSTRUMENTS, Metrics, OpenTelemetryMetrics, PrometheusMetrics

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]

ALLOWED_LABELS: dict[str, frozenset[str]] = {
    "outcome": frozenset({*REFRESH_OUTCOMES, *LEASE_OUTCOMES}),
    "error_class": frozenset(ERROR_CLASSES),
    "operation": frozenset({*PROVIDER_OPERATIONS, *OPERATIONS, "purge_expired"}),
    "backend": frozenset({"memory", "sqlite", "postgresql", "redis"}),
    "le": frozenset(),  # numbers: checked apart
}


class Clock:
    """The one clock of the vault and the provider: a token expires without sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Telemetry:
    """One implementation under test and how to read what it recorded."""

    kind: str
    metrics: Metrics
    reader: InMemoryMetricReader | None = None
    exporter: InMemorySpanExporter | None = None
    extra: list[str] = field(default_factory=list)

    def series(self) -> Series:
        """Every counter's value and every histogram's count, by Prometheus name and labels
        (``{name}_count`` for a histogram; gauges by their name)."""
        if isinstance(self.metrics, PrometheusMetrics):
            return parse_exposition(self.metrics.render())
        assert self.reader is not None
        return otel_series(self.reader)

    def value(self, name: str, **labels: str) -> float:
        """The sum over the series of ``name`` whose labels include ``labels``."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.series().items() if n == name and want <= ls)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans()) if self.exporter else []

    def exported_text(self) -> Iterator[str]:
        """Every string the telemetry exported: names, label and attribute keys and values,
        span names, events and statuses (what a backend would store)."""
        if isinstance(self.metrics, PrometheusMetrics):
            yield self.metrics.render()
        if self.reader is not None:
            data = self.reader.get_metrics_data()
            if data is not None:
                yield data.to_json()
        for span in self.spans():
            yield span.to_json()


def make_telemetry(
    kind: str,
    *,
    time_storage_reads: bool = False,
    cls: type[OpenTelemetryMetrics] = OpenTelemetryMetrics,
) -> Telemetry:
    if kind == "prometheus":
        return Telemetry(kind, PrometheusMetrics(time_storage_reads=time_storage_reads))
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    metrics = cls(
        meter_provider=MeterProvider(metric_readers=[reader]),
        tracer_provider=tracer_provider,
        time_storage_reads=time_storage_reads,
    )
    return Telemetry(kind, metrics, reader, exporter)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> Series:
    """The samples of a Prometheus text exposition (format 0.0.4), checked line by line:
    a malformed line fails the test."""
    found: Series = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ ", line), line
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, _, labels, value = match.groups()
        pairs = frozenset(_LABEL.findall(labels or ""))
        if not name.endswith("_bucket"):
            found[(name, pairs)] = float(value)
    return found


def otel_series(reader: InMemoryMetricReader) -> Series:
    by_name = {i.name: i for i in INSTRUMENTS}
    found: Series = {}
    data = reader.get_metrics_data()
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                instrument = by_name[metric.name]
                for point in metric.data.data_points:
                    attributes = point.attributes or {}
                    labels = frozenset((k, str(v)) for k, v in attributes.items())
                    name = instrument.prometheus_name
                    if isinstance(point, HistogramDataPoint):
                        found[(name + "_count", labels)] = float(point.count)
                        found[(name + "_sum", labels)] = float(point.sum)
                    else:
                        assert isinstance(point, NumberDataPoint)
                        found[(name, labels)] = float(point.value)
    return found


def check_labels(series: Series, connections: Iterable[str]) -> None:
    """Every label value comes from a fixed vocabulary or is a configured connection id."""
    allowed = {**ALLOWED_LABELS, "connection": frozenset(connections)}
    for name, labels in series:
        for key, value in labels:
            assert key in allowed, f"{name}: unexpected label {key}"
            if key != "le":
                assert value in allowed[key], f"{name}: {key}={value!r} is not a known word"


def assert_no_secret(telemetry: Telemetry, secrets: Iterable[str]) -> None:
    """No secret (token, key, user id...) in anything the telemetry exported."""
    texts = list(telemetry.exported_text())
    assert texts
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"a secret ({secret[:4]}...) was exported"


def span_attributes(spans: list[ReadableSpan]) -> list[dict[str, Any]]:
    return [dict(span.attributes or {}) for span in spans]
