"""The seam: a vault without metrics adds nothing; with them, the storage wrapper forwards
exactly what the backend offers; the OpenTelemetry bridge without its package stays off;
the audit trail reports its backlog and its losses; the docs list every metric."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from oauth_vault_mw import AsyncVault, AuditTrail, Settings, StorageUnavailable, Vault
from oauth_vault_mw._async.audit import AsyncAuditTrail
from oauth_vault_mw._async.telemetry import AsyncInstrumentedStorage
from oauth_vault_mw._sync.telemetry import InstrumentedStorage
from oauth_vault_mw.core.model import CredentialKey
from oauth_vault_mw.metrics import (
    INSTRUMENTS,
    NO_METRICS,
    Metrics,
    NoMetrics,
    OpenTelemetryMetrics,
    PrometheusMetrics,
)
from oauth_vault_mw.storage import MemoryStorage, async_storage_from_url
from oauth_vault_mw.testing import OpenIDProvider

from .support import make_telemetry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings() -> Settings:
    return Settings.from_mapping(OpenIDProvider().settings("demo"))


async def test_a_vault_without_metrics_calls_its_storage_directly(settings: Settings) -> None:
    storage = async_storage_from_url("memory://")
    vault = AsyncVault(settings, storage=storage)
    assert vault.metrics is NO_METRICS
    assert vault.storage is storage
    assert vault._flight._on_join is None
    sync_storage = MemoryStorage()
    sync_vault = Vault(settings, storage=sync_storage)
    assert sync_vault.storage is sync_storage
    assert sync_vault._flight._on_join is None
    await vault.aclose()
    sync_vault.close()


async def test_a_vault_with_metrics_wraps_its_storage(settings: Settings) -> None:
    storage = async_storage_from_url("memory://")
    vault = AsyncVault(settings, storage=storage, metrics=PrometheusMetrics())
    assert isinstance(vault.storage, AsyncInstrumentedStorage)
    assert vault.storage.inner is storage
    assert vault.storage.backend == "memory"
    assert vault._flight._on_join is not None
    await vault.aclose()


def test_opentelemetry_absent_leaves_the_bridge_off(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import fails as if absent
    with caplog.at_level(logging.WARNING, logger="oauth_vault_mw"):
        bridge = OpenTelemetryMetrics()
    assert not bridge.enabled
    assert "pip install 'oauth-vault-mw[otel]'" in caplog.text
    with bridge.refresh("demo") as step:  # usable, records nothing
        step.note("refreshed")
    bridge.reauthentication_marked("demo")
    storage = MemoryStorage()
    vault = Vault(settings, storage=storage, metrics=bridge)
    assert vault.metrics is NO_METRICS
    assert vault.storage is storage
    vault.close()


class _Minimal:
    """A backend with the protocol's required methods only (no optional ones)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def get_credential(self, key: CredentialKey) -> None:
        self.calls.append("get_credential")

    def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        raise StorageUnavailable("down")

    def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        raise StorageUnavailable("down")


def test_the_wrapper_offers_what_the_backend_offers() -> None:
    metrics = PrometheusMetrics()
    inner = _Minimal()
    wrapped = InstrumentedStorage(inner, metrics)  # type: ignore[arg-type]
    assert getattr(wrapped, "get_session_credential", None) is None
    assert getattr(wrapped, "acquire_leases_reading", None) is None
    assert wrapped.backend == "_minimal"
    # the request path's read is the backend's own method: nothing added
    assert wrapped.get_credential == inner.get_credential
    with pytest.raises(StorageUnavailable):
        wrapped.acquire_lease(CredentialKey("demo", "u1"), "me", 15, time.time())
    assert metrics.value("oauth_vault_storage_errors_total", operation="acquire_lease") == 1
    memory = InstrumentedStorage(MemoryStorage(), metrics)
    assert memory.shared_across_processes is False
    assert getattr(memory, "get_session_credential", None) is not None
    assert memory.purge_expired(time.time(), 10).total == 0
    assert metrics.value("oauth_vault.storage.operation.duration", operation="purge_expired") == 1


def test_reads_are_timed_when_asked() -> None:
    metrics = PrometheusMetrics(time_storage_reads=True)
    inner = _Minimal()
    wrapped = InstrumentedStorage(inner, metrics)  # type: ignore[arg-type]
    wrapped.get_credential(CredentialKey("demo", "u1"))
    assert inner.calls == ["get_credential"]
    assert metrics.value("oauth_vault.storage.operation.duration", operation="get_credential") == 1


async def test_the_audit_trail_reports_its_backlog_and_its_losses() -> None:
    metrics = PrometheusMetrics()
    trail = AsyncAuditTrail(_Failing(), metrics=metrics, batch=100, max_delay=60)  # type: ignore[arg-type]
    now = time.time()
    for _ in range(3):
        trail.count(now, "app", "credentials.read", "ok", "demo", "u1")
    trail.count(now, "app", "credentials.read", "ok", "demo", "u2")
    assert trail.backlog() == 4
    await trail.flush()  # the storage refuses: lost, and logged
    assert trail.backlog() == 0
    assert metrics.value("oauth_vault_audit_events_lost_total") == 4


@pytest.mark.parametrize("kind", ["prometheus", "otel"])
def test_the_vault_reads_its_trail_backlog_when_collected(settings: Settings, kind: str) -> None:
    telemetry = make_telemetry(kind)
    vault = Vault(settings, storage=MemoryStorage(), metrics=telemetry.metrics)
    vault.audit = AuditTrail(vault.storage, batch=100, max_delay=60)
    vault.audit.count(time.time(), "app", "credentials.read", "ok", "demo", "u1")
    vault.audit.count(time.time(), "app", "credentials.read", "ok", "demo", "u1")
    assert telemetry.value("oauth_vault_audit_backlog") == 2
    vault.close()
    del vault
    assert telemetry.value("oauth_vault_audit_backlog") == 0  # the vault is gone


class _Failing:
    async def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        raise StorageUnavailable("down")


def test_implementations_follow_the_protocol() -> None:
    for metrics in (NoMetrics(), PrometheusMetrics(), OpenTelemetryMetrics()):
        assert isinstance(metrics, Metrics)


def test_the_operations_guide_lists_every_metric() -> None:
    """docs/operations.md's table: one row per instrument, with both names, kind, labels."""
    text = (ROOT / "docs" / "operations.md").read_text()
    rows = {
        match.group(1): match.group(0)
        for match in re.finditer(r"^\| `([a-z_]+)` \|.*$", text, flags=re.MULTILINE)
    }
    for instrument in INSTRUMENTS:
        row = rows.get(instrument.prometheus_name)
        assert row is not None, f"docs/operations.md: no row for {instrument.prometheus_name}"
        assert f"`{instrument.name}`" in row
        assert instrument.kind in row
        for label in instrument.labels:
            assert f"`{label}`" in row, f"{instrument.prometheus_name}: label {label}"
