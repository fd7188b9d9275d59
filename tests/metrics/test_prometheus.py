"""``PrometheusMetrics``: the text exposition (format 0.0.4), its thread safety, and the
ASGI and WSGI apps that serve it."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from oauth_vault_mw.metrics import CONTENT_TYPE, INSTRUMENTS, PrometheusMetrics

from .support import parse_exposition


def test_every_instrument_has_help_and_type_even_before_a_sample() -> None:
    text = PrometheusMetrics().render()
    for instrument in INSTRUMENTS:
        name = instrument.prometheus_name
        assert f"# HELP {name} " in text
        assert f"# TYPE {name} {instrument.kind}\n" in text
    samples = parse_exposition(text)  # every line well formed
    assert samples == {
        ("oauth_vault_audit_backlog", frozenset()): 0.0,
        ("oauth_vault_audit_events_lost_total", frozenset()): 0.0,
    }


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    metrics = PrometheusMetrics()
    for seconds in (0.003, 0.01, 0.2, 45.0):  # 0.01 sits on a bound: counted in it (le)
        metrics.lease_waited("github", "acquired", seconds)
    lines = [
        line
        for line in metrics.render().splitlines()
        if line.startswith("oauth_vault_lease_wait_duration_seconds")
    ]
    labels = 'connection="github",outcome="acquired"'
    assert f'oauth_vault_lease_wait_duration_seconds_bucket{{{labels},le="0.005"}} 1' in lines
    assert f'oauth_vault_lease_wait_duration_seconds_bucket{{{labels},le="0.01"}} 2' in lines
    assert f'oauth_vault_lease_wait_duration_seconds_bucket{{{labels},le="0.25"}} 3' in lines
    assert f'oauth_vault_lease_wait_duration_seconds_bucket{{{labels},le="30.0"}} 3' in lines
    assert f'oauth_vault_lease_wait_duration_seconds_bucket{{{labels},le="+Inf"}} 4' in lines
    assert f"oauth_vault_lease_wait_duration_seconds_count{{{labels}}} 4" in lines
    (total,) = [line for line in lines if "_sum" in line]
    assert float(total.rsplit(" ", 1)[1]) == pytest.approx(45.213)
    assert metrics.value("oauth_vault.lease.waits", connection="github") == 4


def test_label_values_are_escaped() -> None:
    metrics = PrometheusMetrics()
    metrics.reauthentication_marked('we"ird\\conn\nid')
    text = metrics.render()
    assert 'connection="we\\"ird\\\\conn\\nid"' in text
    assert (
        metrics.value("oauth_vault.reauthentication_required", connection='we"ird\\conn\nid') == 1
    )


def test_steps_count_outcomes_and_errors() -> None:
    metrics = PrometheusMetrics()
    with metrics.provider_call("google", "refresh", "oauth2.googleapis.com") as step:
        step.note("http_5xx", status_code=503)
    with metrics.provider_call("google", "refresh", "oauth2.googleapis.com"):
        pass  # left without a note: ok
    with pytest.raises(RuntimeError), metrics.storage_call("sqlite", "save_credential", "google"):
        raise RuntimeError("storage down")
    with pytest.raises(RuntimeError), metrics.refresh("google"):
        raise RuntimeError("deleted meanwhile")
    assert metrics.value("oauth_vault_provider_errors_total", error_class="http_5xx") == 1
    assert metrics.value("oauth_vault.provider.errors") == 1
    assert metrics.value("oauth_vault.provider.request.duration", operation="refresh") == 2
    assert metrics.value("oauth_vault.storage.errors", operation="save_credential") == 1
    assert metrics.value("oauth_vault.refreshes", outcome="error") == 1


def test_counts_are_exact_under_threads() -> None:
    metrics = PrometheusMetrics()

    def work() -> None:
        for _ in range(2000):
            metrics.single_flight_joined("demo")
            with metrics.storage_call("memory", "acquire_lease", None):
                pass

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert metrics.value("oauth_vault.single_flight.joins") == 16000
    assert metrics.value("oauth_vault.storage.operation.duration") == 16000


def test_audit_backlog_sums_its_readers_and_forgets_the_gone() -> None:
    metrics = PrometheusMetrics()
    metrics.watch_audit_backlog(lambda: 3)
    gone: list[int | None] = [4]
    metrics.watch_audit_backlog(lambda: gone[0])
    assert metrics.value("oauth_vault_audit_backlog") == 7
    gone[0] = None
    assert "\noauth_vault_audit_backlog 3.0\n" in metrics.render()
    assert len(metrics._backlog) == 1


async def test_the_asgi_app_serves_the_exposition() -> None:
    metrics = PrometheusMetrics()
    metrics.reauthentication_marked("demo")
    transport = httpx.ASGITransport(app=metrics.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        got = await client.get("/metrics")
        head = await client.head("/metrics")
        post = await client.post("/metrics")
    assert got.status_code == 200
    assert got.headers["content-type"] == CONTENT_TYPE
    assert got.headers["cache-control"] == "no-store"
    assert 'oauth_vault_reauthentication_required_total{connection="demo"} 1.0' in got.text
    assert head.status_code == 200
    assert head.content == b""
    assert post.status_code == 405


def test_the_wsgi_app_serves_the_exposition() -> None:
    metrics = PrometheusMetrics()
    metrics.single_flight_joined("demo")
    started: list[Any] = []
    body = b"".join(metrics.wsgi_app()({"REQUEST_METHOD": "GET"}, lambda *a: started.append(a)))
    assert started[0][0] == "200 OK"
    assert ("Content-Type", CONTENT_TYPE) in started[0][1]
    assert b'oauth_vault_single_flight_joins_total{connection="demo"} 1.0' in body
    refused: list[Any] = []
    metrics.wsgi_app()({"REQUEST_METHOD": "DELETE"}, lambda *a: refused.append(a))
    assert refused[0][0].startswith("405")
