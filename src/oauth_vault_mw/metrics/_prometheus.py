"""``PrometheusMetrics``: an in-process registry and its text exposition (format 0.0.4).

No third-party dependency: counters, histograms and one gauge behind one lock, rendered by
:meth:`PrometheusMetrics.render` for a ``GET /metrics`` route, or served by
:meth:`PrometheusMetrics.asgi_app` / :meth:`PrometheusMetrics.wsgi_app`.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from ._instruments import (
    AUDIT_BACKLOG,
    INSTRUMENTS,
    Instrument,
)
from ._protocol import Step
from ._recording import Labels, Recording

__all__ = ["CONTENT_TYPE", "PrometheusMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The exposition's media type (what a ``/metrics`` route answers with)."""


class _Histogram:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size  # per bucket, not cumulative (the last one: +Inf)
        self.sum = 0.0
        self.count = 0


class _Step:
    """A refresh or a provider call: timed, counted by outcome when it ends."""

    __slots__ = ("_end", "_labels", "_start", "outcome")

    def __init__(self, end: Callable[[Labels, str, float], None], labels: Labels) -> None:
        self._end = end
        self._labels = labels
        self._start = 0.0
        self.outcome = ""

    def __enter__(self) -> _Step:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        outcome = self.outcome or ("ok" if exc_type is None else "error")
        self._end(self._labels, outcome, time.perf_counter() - self._start)

    def note(self, outcome: str, *, status_code: int | None = None) -> None:
        self.outcome = outcome


class PrometheusMetrics(Recording):
    """Counts and times what the vault does, for Prometheus to scrape::

        metrics = PrometheusMetrics()
        vault = AsyncVault(settings, metrics=metrics)  # or OAuthVaultMiddleware(metrics=...)
        app.add_route("/metrics", metrics.asgi_app())  # Flask: metrics.render() in a view

    Thread-safe; one instance may serve several vaults (their series add up). The metric
    names and labels are listed in ``docs/operations.md``. ``time_storage_reads=True`` also
    times the request path's storage reads (about 1 us more per request).
    """

    enabled = True

    def __init__(self, *, time_storage_reads: bool = False) -> None:
        self.time_storage_reads = time_storage_reads
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = {
            i.name: {} for i in INSTRUMENTS if i.kind == "counter"
        }
        self._histograms: dict[str, dict[Labels, _Histogram]] = {
            i.name: {} for i in INSTRUMENTS if i.kind == "histogram"
        }
        self._backlog: list[Callable[[], int | None]] = []

    def __repr__(self) -> str:
        return "PrometheusMetrics()"

    # -- recording ------------------------------------------------------------------------

    def _add(self, instrument: Instrument, labels: Labels, amount: int = 1) -> None:
        series = self._counters[instrument.name]
        with self._lock:
            series[labels] = series.get(labels, 0.0) + amount

    def _observe(self, instrument: Instrument, labels: Labels, value: float) -> None:
        series = self._histograms[instrument.name]
        index = bisect_left(instrument.buckets, value)  # le: a value on a bound counts in it
        with self._lock:
            hist = series.get(labels)
            if hist is None:
                hist = series[labels] = _Histogram(len(instrument.buckets) + 1)
            hist.buckets[index] += 1
            hist.sum += value
            hist.count += 1

    def refresh(self, connection_id: str) -> Step:
        return _Step(self._refresh_ended, (connection_id,))

    def provider_call(self, connection_id: str, operation: str, server: str) -> Step:
        return _Step(self._provider_call_ended, (connection_id, operation))

    def storage_call(self, backend: str, operation: str, connection_id: str | None) -> Step:
        return _Step(self._storage_call_ended, (backend, operation))

    def watch_audit_backlog(self, read: Callable[[], int | None]) -> None:
        with self._lock:
            self._backlog.append(read)

    # -- reading --------------------------------------------------------------------------

    def value(self, name: str, **labels: str) -> float:
        """A counter's or gauge's current value (a histogram's count), by the OpenTelemetry
        or the Prometheus name, summed over the labels not given: for tests and health
        checks (``metrics.value("oauth_vault.refreshes", outcome="failed")``)."""
        instrument = _instrument(name)
        if instrument.kind == "gauge":
            return float(self._audit_backlog())
        with self._lock:
            if instrument.kind == "counter":
                items: Iterable[tuple[Labels, float]] = list(
                    self._counters[instrument.name].items()
                )
            else:
                items = [(k, float(h.count)) for k, h in self._histograms[instrument.name].items()]
        wanted = [(instrument.labels.index(k), v) for k, v in labels.items()]
        return sum(v for key, v in items if all(key[i] == want for i, want in wanted))

    def _audit_backlog(self) -> int:
        with self._lock:
            readers = list(self._backlog)
        total, gone = 0, []
        for read in readers:
            found = read()
            if found is None:
                gone.append(read)
            else:
                total += found
        if gone:
            with self._lock:
                self._backlog = [r for r in self._backlog if r not in gone]
        return total

    def render(self) -> str:
        """The registry in the Prometheus text format 0.0.4 (:data:`CONTENT_TYPE`)."""
        backlog = self._audit_backlog()
        with self._lock:
            counters = {name: dict(series) for name, series in self._counters.items()}
            histograms = {
                name: {k: (list(h.buckets), h.sum, h.count) for k, h in series.items()}
                for name, series in self._histograms.items()
            }
        lines: list[str] = []
        for instrument in INSTRUMENTS:
            name = instrument.prometheus_name
            lines.append(f"# HELP {name} {_escape_help(instrument.description)}")
            lines.append(f"# TYPE {name} {instrument.kind}")
            if instrument is AUDIT_BACKLOG:
                lines.append(f"{name} {_number(backlog)}")
            elif instrument.kind == "counter":
                series = counters[instrument.name]
                if not instrument.labels and not series:
                    series = {(): 0.0}  # an unlabelled counter is there from the start
                for key, value in sorted(series.items()):
                    lines.append(f"{name}{_labels(instrument.labels, key)} {_number(value)}")
            else:
                for key, (buckets, total, count) in sorted(histograms[instrument.name].items()):
                    lines.extend(_histogram_lines(name, instrument, key, buckets, total, count))
        return "\n".join(lines) + "\n"

    # -- serving --------------------------------------------------------------------------

    def asgi_app(self) -> Callable[..., Any]:
        """An ASGI app answering any GET with the exposition (Starlette:
        ``Route("/metrics", metrics.asgi_app())``; FastAPI: ``app.mount("/metrics", ...)``)."""
        return _AsgiExposition(self)

    def wsgi_app(self) -> Callable[..., Iterable[bytes]]:
        """A WSGI app answering any GET with the exposition (``DispatcherMiddleware``, or a
        port of its own with ``wsgiref``)."""
        ref = weakref.ref(self)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            metrics = ref()
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or metrics is None:
                start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
                return [b""]
            body = metrics.render().encode()
            start_response("200 OK", _headers(len(body)))
            return [body] if environ["REQUEST_METHOD"] == "GET" else [b""]

        return app


class _AsgiExposition:
    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            headers = [(b"allow", b"GET, HEAD"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 405, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = self._metrics.render().encode()
        headers = [(k.lower().encode(), v.encode()) for k, v in _headers(len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": body if scope["method"] == "GET" else b""}
        )


def _headers(length: int) -> list[tuple[str, str]]:
    return [
        ("Content-Type", CONTENT_TYPE),
        ("Content-Length", str(length)),
        ("Cache-Control", "no-store"),
    ]


def _instrument(name: str) -> Instrument:
    for instrument in INSTRUMENTS:
        if name in (instrument.name, instrument.prometheus_name):
            return instrument
    raise KeyError(name)


def _histogram_lines(
    name: str,
    instrument: Instrument,
    key: Labels,
    buckets: list[int],
    total: float,
    count: int,
) -> Iterator[str]:
    cumulative = 0
    bounds = [*instrument.buckets, math.inf]
    for bound, seen in zip(bounds, buckets, strict=True):
        cumulative += seen
        le = _labels((*instrument.labels, "le"), (*key, _number(bound)))
        yield f"{name}_bucket{le} {cumulative}"
    own = _labels(instrument.labels, key)
    yield f"{name}_sum{own} {_number(total)}"
    yield f"{name}_count{own} {count}"


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{_escape_value(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
