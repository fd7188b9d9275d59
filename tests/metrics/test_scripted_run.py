"""The metrics after a scripted run against a real provider (the testing OpenID provider
served over HTTP on 127.0.0.1): logins, refreshes, one refused refresh, one provider outage,
a stampede of concurrent readers, and a second "process" (another vault on the same
storage) waiting for the lease. The counts are read back from the Prometheus exposition
and from the OpenTelemetry SDK's in-memory reader, and everything exported (series, span
names and attributes) is scanned for every secret the run saw."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

import oauth_vault_mw._async.telemetry as telemetry_module
from oauth_vault_mw import (
    AsyncVault,
    CredentialKey,
    ProviderUnavailable,
    ReauthenticationRequired,
    Settings,
)
from oauth_vault_mw.core.model import StoredCredential
from oauth_vault_mw.metrics import OpenTelemetryMetrics
from oauth_vault_mw.starlette import OAuthVaultMiddleware
from oauth_vault_mw.storage import AsyncStorage, async_storage_from_url
from oauth_vault_mw.testing import DEFAULT_BASE_URL, OpenIDProvider, log_in_async

from .support import (
    Clock,
    Telemetry,
    assert_no_secret,
    check_labels,
    make_telemetry,
    span_attributes,
)

TTL = 3600
STAMPEDE = 20


@dataclass
class Run:
    """The app, its vault and everything secret the run has seen so far."""

    provider: OpenIDProvider
    clock: Clock
    vault: AsyncVault
    app: Starlette
    storage: AsyncStorage
    settings: dict[str, Any]
    telemetry: Telemetry
    secrets: set[str] = field(default_factory=set)
    users: dict[str, str] = field(default_factory=dict)

    async def log_in(self, login: str) -> str:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url=DEFAULT_BASE_URL) as client:
            self.provider.login_as(login, email=f"{login}@mail.example")
            await log_in_async(client, self.provider, "demo", login=login)
            user_id = str((await client.get("/auth/me")).json()["user_id"])
            self.secrets.update(v for v in client.cookies.values() if len(v) > 8)
        self.users[login] = user_id
        self.secrets.update({user_id, f"{login}@mail.example"})
        await self.harvest()
        return user_id

    async def harvest(self) -> None:
        """Every token the provider issued, and every token stored (opened)."""
        endpoints: Any = self.provider
        for table in ("_access", "_refresh", "_codes"):
            self.secrets.update(getattr(endpoints, table, {}).keys())
        for user_id in self.users.values():
            record = await self.storage.get_credential(CredentialKey("demo", user_id))
            if record is not None:
                tokens = self.vault.opened.open(record)
                self.secrets.add(tokens.access_token)
                if tokens.refresh_token:
                    self.secrets.add(tokens.refresh_token)
                self.secrets.add(record.sealed)

    async def read(self, login: str, vault: AsyncVault | None = None) -> str:
        creds = await (vault or self.vault).get_connection_credentials("demo", self.users[login])
        self.secrets.add(creds.access_token)
        return creds.access_token


def _slow_token_endpoint(provider: OpenIDProvider, seconds: float) -> Callable[[], None]:
    """Token requests take ``seconds`` longer (the provider's own thread sleeps): concurrent
    readers all arrive while the one refresh is in flight. Returns the undo."""
    original = provider.handle

    def handle(method: str, url: str, headers: Any = None, body: bytes = b"") -> Any:
        if url.split("?", 1)[0].endswith("/token"):
            time.sleep(seconds)
        return original(method, url, headers, body)

    provider.handle = handle  # type: ignore[method-assign]
    return lambda: delattr(provider, "handle")


@pytest.fixture
def served() -> Iterator[OpenIDProvider]:
    provider = OpenIDProvider(access_token_ttl=TTL)
    with provider.serve():
        yield provider


async def _start(
    provider: OpenIDProvider, telemetry: Telemetry, storage: AsyncStorage | None = None
) -> Run:
    clock = Clock()
    provider.clock = clock
    settings = provider.settings("demo", provider_timeout=3)
    storage = storage if storage is not None else async_storage_from_url("memory://")
    vault = AsyncVault(
        Settings.from_mapping(settings), storage=storage, clock=clock, metrics=telemetry.metrics
    )
    app = Starlette()
    app.add_middleware(OAuthVaultMiddleware, vault=vault)
    run = Run(provider, clock, vault, app, storage, settings, telemetry)
    run.secrets.update({settings["secret_key"], *settings["encryption_keys"]})
    run.secrets.update({"demo-secret"})
    return run


@pytest.fixture(params=["prometheus", "otel"])
async def run(request: pytest.FixtureRequest, served: OpenIDProvider) -> AsyncIterator[Run]:
    started = await _start(served, make_telemetry(request.param))
    yield started
    await started.vault.aclose()


async def _script(run: Run) -> None:
    """The scripted run; see the module docstring for what the test expects of it."""
    provider, clock = run.provider, run.clock
    logins = ("alice", "bob", "carol", "dave", "erin", "frank", "gina")
    for login in logins:
        await run.log_in(login)
    clock.now += TTL + 1  # every access token has expired

    # three plain refreshes
    for login in ("alice", "bob", "carol"):
        await run.read(login)

    # one refused: the grant is gone, the credential is marked
    provider.refuse_next_refresh()
    with pytest.raises(ReauthenticationRequired):
        await run.read("dave")

    # one outage: three attempts, each a 503; then the backoff answers at once
    provider.down = True
    with pytest.raises(ProviderUnavailable):
        await run.read("erin")
    with pytest.raises(ProviderUnavailable):
        await run.read("erin")
    provider.down = False

    # a stampede: STAMPEDE readers of one expired token, one refresh
    undo = _slow_token_endpoint(provider, 0.3)
    try:
        tokens = await asyncio.gather(*(run.read("frank") for _ in range(STAMPEDE)))
        assert len(set(tokens)) == 1

        # two processes: a second vault on the same storage; each stampedes half
        other = AsyncVault(
            run.vault.settings, storage=run.storage, clock=clock, metrics=run.telemetry.metrics
        )
        try:
            half = STAMPEDE // 2
            reads = [run.read("gina") for _ in range(half)]
            reads += [run.read("gina", other) for _ in range(half)]
            assert len(set(await asyncio.gather(*reads))) == 1
        finally:
            await other.aclose()
    finally:
        undo()
    await run.harvest()


async def test_scripted_run_counts(run: Run) -> None:
    before = run.provider.counts
    await _script(run)
    counts = run.provider.counts
    t = run.telemetry

    refreshes = "oauth_vault_refreshes_total"
    assert t.value(refreshes, connection="demo", outcome="refreshed") == 5
    assert t.value(refreshes, outcome="reauthentication_required") == 1
    assert t.value(refreshes, outcome="failed") == 1
    assert t.value(refreshes, outcome="backoff") == 1
    assert t.value(refreshes, outcome="superseded") == 1  # the second process's
    assert t.value(refreshes) == 9
    # the provider agrees: five refresh grants issued
    assert counts.refreshes - before.refreshes == 5

    assert t.value("oauth_vault_refresh_duration_seconds_count", outcome="refreshed") == 5
    assert t.value("oauth_vault_reauthentication_required_total", connection="demo") == 1

    errors = "oauth_vault_provider_errors_total"
    assert t.value(errors, operation="refresh", error_class="invalid_grant") == 1
    assert t.value(errors, operation="refresh", error_class="http_5xx") == 3
    assert t.value(errors) == 4

    calls = "oauth_vault_provider_request_duration_seconds_count"
    # 3 refreshes + 1 refused + 3 attempts in the outage + 1 stampede + 1 of two processes
    assert t.value(calls, connection="demo", operation="refresh") == 9
    assert t.value(calls, operation="code_exchange") == 7
    assert t.value(calls, operation="code_exchange") == counts.code_exchanges
    assert t.value(calls, operation="discovery") == 1  # cached (the other vault never asked)

    joins = "oauth_vault_single_flight_joins_total"
    assert t.value(joins, connection="demo") == (STAMPEDE - 1) + (STAMPEDE - 2)

    # the second process waited for the first one's lease once, then served its tokens
    assert t.value("oauth_vault_lease_waits_total", connection="demo") == 1
    waited = t.value("oauth_vault_lease_waits_total", outcome="superseded") + t.value(
        "oauth_vault_lease_waits_total", outcome="acquired"
    )
    assert waited == 1
    assert t.value("oauth_vault_lease_wait_duration_seconds_count") == 1

    storage = "oauth_vault_storage_operation_duration_seconds_count"
    assert t.value(storage, backend="memory", operation="acquire_leases_reading") >= 6
    assert t.value(storage, operation="save_credentials_releasing") == 5
    assert t.value(storage, operation="save_credential") >= 8  # logins, the mark
    assert t.value(storage, operation="get_credential") == 0  # reads: not timed by default
    assert t.value("oauth_vault_storage_errors_total") == 0

    check_labels(t.series(), ["demo"])


async def test_scripted_run_exports_no_secret(run: Run) -> None:
    await _script(run)
    assert len(run.secrets) > 40  # tokens, codes, keys, user ids, emails, cookies
    assert_no_secret(run.telemetry, run.secrets)
    if run.telemetry.kind == "otel":
        spans = run.telemetry.spans()
        names = {span.name for span in spans}
        assert {
            "oauth_vault.refresh",
            "oauth_vault.provider.refresh",
            "oauth_vault.provider.code_exchange",
            "oauth_vault.provider.discovery",
            "oauth_vault.storage.acquire_leases_reading",
        } <= names
        for attributes in span_attributes(spans):
            assert attributes.get("oauth_vault.connection_id", "demo") == "demo"
            assert set(attributes) <= {
                "oauth_vault.connection_id",
                "oauth_vault.operation",
                "oauth_vault.outcome",
                "server.address",
                "http.response.status_code",
                "error.type",
                "db.system.name",
                "db.operation.name",
            }


async def test_refresh_spans_hold_their_provider_calls(served: OpenIDProvider) -> None:
    run = await _start(served, make_telemetry("otel"))
    try:
        await run.log_in("alice")
        run.clock.now += TTL + 1
        await run.read("alice")
    finally:
        await run.vault.aclose()
    spans = run.telemetry.spans()
    (refresh,) = [s for s in spans if s.name == "oauth_vault.refresh"]
    inside = refresh.context.span_id
    children = [s for s in spans if s.parent is not None and s.parent.span_id == inside]
    assert {s.name for s in children} >= {
        "oauth_vault.provider.refresh",
        "oauth_vault.storage.acquire_leases_reading",
        "oauth_vault.storage.save_credentials_releasing",
    }
    (call,) = [s for s in children if s.name == "oauth_vault.provider.refresh"]
    assert call.attributes is not None
    assert call.attributes["http.response.status_code"] == 200
    assert call.attributes["server.address"] == "127.0.0.1"
    assert refresh.attributes is not None
    assert refresh.attributes["oauth_vault.outcome"] == "refreshed"


async def test_reads_are_timed_only_when_asked(served: OpenIDProvider) -> None:
    telemetry = make_telemetry("prometheus", time_storage_reads=True)
    run = await _start(served, telemetry)
    try:
        await run.log_in("alice")
        for _ in range(3):
            await run.read("alice")
    finally:
        await run.vault.aclose()
    assert (
        telemetry.value(
            "oauth_vault_storage_operation_duration_seconds_count", operation="get_credential"
        )
        >= 3
    )


# -- the scan finds a leak: it is not vacuous ------------------------------------------


class LeakyMetrics(OpenTelemetryMetrics):
    """A deliberately leaking bridge: it writes a token the test hands it into a span."""

    leaked = ""

    def provider_call(self, connection_id: str, operation: str, server: str) -> Any:
        return super().provider_call(connection_id, self.leaked or operation, server)


async def test_the_scan_finds_a_token_in_a_span(served: OpenIDProvider) -> None:
    telemetry = make_telemetry("otel", cls=LeakyMetrics)
    leaky = telemetry.metrics
    assert isinstance(leaky, LeakyMetrics)
    run = await _start(served, telemetry)
    try:
        await run.log_in("alice")
        leaky.leaked = await run.read("alice")  # an access token, now a span's operation
        run.clock.now += TTL + 1
        await run.read("alice")
        await run.harvest()
    finally:
        await run.vault.aclose()
    with pytest.raises(AssertionError, match="a secret"):
        assert_no_secret(telemetry, run.secrets)


async def test_the_scan_finds_a_user_id_in_a_storage_span(
    served: OpenIDProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mutant of the library: the storage wrapper labels spans with the user id."""

    def users(args: tuple[object, ...]) -> str | None:
        first = args[0] if args else None
        if isinstance(first, StoredCredential):
            first = first.key
        return first.user_id if isinstance(first, CredentialKey) else None

    monkeypatch.setattr(telemetry_module, "connection_of", users)
    run = await _start(served, make_telemetry("otel"))
    try:
        await run.log_in("alice")
        run.clock.now += TTL + 1
        await run.read("alice")
    finally:
        await run.vault.aclose()
    with pytest.raises(AssertionError, match="a secret"):
        assert_no_secret(run.telemetry, run.secrets)
