"""The sync (Flask) vault's metrics after a scripted run against the testing provider served
on 127.0.0.1: refreshes, one refused, one outage, a stampede of threads; counted by the
Prometheus registry and by the OpenTelemetry SDK, and nothing exported holds a secret."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from oauth_vault_mw import CredentialKey, ProviderUnavailable, ReauthenticationRequired, Vault
from oauth_vault_mw.flask import OAuthVault
from oauth_vault_mw.testing import OpenIDProvider, log_in_flask

from .support import Clock, assert_no_secret, check_labels, make_telemetry

TTL = 3600
THREADS = 8


@pytest.fixture
def served() -> Iterator[OpenIDProvider]:
    provider = OpenIDProvider(access_token_ttl=TTL)
    with provider.serve():
        yield provider


@pytest.mark.parametrize("kind", ["prometheus", "otel"])
def test_flask_scripted_run(served: OpenIDProvider, kind: str) -> None:
    provider = served
    clock = Clock()
    provider.clock = clock
    telemetry = make_telemetry(kind)
    settings = provider.settings("demo", provider_timeout=3)
    app = Flask(__name__)
    OAuthVault(app, settings=settings, metrics=telemetry.metrics)
    vault: Vault = app.extensions["oauth_vault"]
    vault.clock = clock
    secrets: set[str] = {settings["secret_key"], *settings["encryption_keys"], "demo-secret"}
    users: dict[str, str] = {}

    def harvest() -> None:
        endpoints: Any = provider
        for table in ("_access", "_refresh", "_codes"):
            secrets.update(getattr(endpoints, table, {}).keys())
        for user_id in users.values():
            record = vault.storage.get_credential(CredentialKey("demo", user_id))
            if record is not None:
                tokens = vault.opened.open(record)
                secrets.update({tokens.access_token, tokens.refresh_token or "", record.sealed})

    try:
        for login in ("ann", "ben", "cat", "dan", "eve"):
            client = app.test_client()
            log_in_flask(client, provider, "demo", login=login)
            users[login] = client.get("/auth/me").get_json()["user_id"]
            secrets.add(users[login])
            harvest()
        clock.now += TTL + 1

        for login in ("ann", "ben"):
            vault.get_connection_credentials("demo", users[login])
        provider.refuse_next_refresh()
        with pytest.raises(ReauthenticationRequired):
            vault.get_connection_credentials("demo", users["cat"])
        provider.down = True
        with pytest.raises(ProviderUnavailable):
            vault.get_connection_credentials("demo", users["dan"])
        provider.down = False

        # a stampede of threads; the token endpoint answers slowly, so all of them arrive
        # while the one refresh is in flight
        original = provider.handle

        def slow(method: str, url: str, headers: Any = None, body: bytes = b"") -> Any:
            if url.split("?", 1)[0].endswith("/token"):
                time.sleep(0.3)
            return original(method, url, headers, body)

        provider.handle = slow  # type: ignore[method-assign]
        start = threading.Barrier(THREADS)
        tokens: list[str] = []

        def read() -> None:
            start.wait()
            tokens.append(vault.get_connection_credentials("demo", users["eve"]).access_token)

        threads = [threading.Thread(target=read) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        del provider.handle
        assert len(tokens) == THREADS
        assert len(set(tokens)) == 1
        harvest()
    finally:
        vault.close()

    value = telemetry.value
    assert value("oauth_vault_refreshes_total", outcome="refreshed") == 3
    assert value("oauth_vault_refreshes_total", outcome="reauthentication_required") == 1
    assert value("oauth_vault_refreshes_total", outcome="failed") == 1
    assert provider.counts.refreshes == 3
    assert value("oauth_vault_reauthentication_required_total", connection="demo") == 1
    errors = "oauth_vault_provider_errors_total"
    assert value(errors, operation="refresh", error_class="invalid_grant") == 1
    assert value(errors, operation="refresh", error_class="http_5xx") == 3
    assert value("oauth_vault_single_flight_joins_total", connection="demo") == THREADS - 1
    calls = "oauth_vault_provider_request_duration_seconds_count"
    assert value(calls, operation="code_exchange") == 5
    storage = "oauth_vault_storage_operation_duration_seconds_count"
    assert value(storage, backend="memory", operation="save_credential") >= 6
    check_labels(telemetry.series(), ["demo"])
    assert len(secrets) > 20
    assert_no_secret(telemetry, secrets)
