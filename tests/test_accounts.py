"""Several accounts per connection at the vault level, with the in-process testing provider:
where logins store tokens, records written before accounts existed, an interrupted change of
default (a copy left in a slot is never read nor refreshed), and the lease of a change.
The end-to-end scenarios in both frameworks are ``tests/conformance/test_accounts.py``."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import Depends, FastAPI

from oauth_vault_mw import AsyncVault, CredentialKey, CredentialNotFound, Credentials, Settings
from oauth_vault_mw.core.accounts import (
    DEFAULT_SLOT,
    account_id,
    account_param,
    default_account_id,
    legacy_account_id,
    login_slot,
    qualifier_of,
)
from oauth_vault_mw.core.errors import AccountBusy, BadRequest
from oauth_vault_mw.core.model import TokenSet
from oauth_vault_mw.core.records import open_record, seal_record
from oauth_vault_mw.fastapi import ConnectionCredentials
from oauth_vault_mw.starlette import OAuthVaultMiddleware
from oauth_vault_mw.testing import OpenIDProvider, log_in_async


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def op() -> OpenIDProvider:
    return OpenIDProvider()


@pytest.fixture
async def vault(op: OpenIDProvider) -> Any:
    made = AsyncVault(
        Settings.from_mapping(op.settings("demo")), http_transport=op.transport(), clock=Clock()
    )
    await made.startup()
    yield made
    await made.aclose()


async def log_in(
    vault: AsyncVault, op: OpenIDProvider, login: str, *, user_id: str | None = None, **kw: Any
) -> str:
    url, cookie = await vault.begin_login("demo", return_to="/", user_id=user_id, **kw)
    back = op.approve(url, login)
    params = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    done = await vault.complete_login(
        "demo", params, state_cookie=cookie.value, session_cookie=None
    )
    return done.user_id


async def token(vault: AsyncVault, user_id: str, account: str | None = None) -> str:
    creds = await vault.get_connection_credentials("demo", user_id, account=account)
    return creds.access_token


async def as_before_accounts(vault: AsyncVault, key: CredentialKey, **changes: Any) -> TokenSet:
    """The record at ``key`` stored again as the previous release stored it (no subject),
    with ``changes``; its token set."""
    stored = await vault.storage.get_credential(key)
    assert stored is not None
    legacy = replace(open_record(vault.sealer, stored), subject=None, **changes)
    await vault.put_tokens(key, legacy)
    return legacy


def test_account_ids_are_stable_distinct_and_hide_the_subject() -> None:
    one = account_id("google", "alice@example.com")
    assert one == account_id("google", "alice@example.com")
    assert one != account_id("google2", "alice@example.com")
    assert one != account_id("google", "bob@example.com")
    assert "alice" not in one
    assert len(one) == 25
    assert one.startswith("a")
    # length-prefixed parts: moving a character from one part to the other changes the id
    assert account_id("ab", "c") != account_id("a", "bc")
    assert account_param(one) == one
    assert account_param(None) is None
    assert account_param("") is None
    for bad in ("default", "new", one.upper(), one + "0", "a" * 24, "../" + one, one + "\n"):
        with pytest.raises(BadRequest):
            account_param(bad)


def test_login_slot_rules() -> None:
    alice = TokenSet(access_token="x", subject="alice")
    legacy = TokenSet(access_token="x")
    assert login_slot("demo", "alice", None) == DEFAULT_SLOT  # the first account
    assert login_slot("demo", "alice", alice) == DEFAULT_SLOT
    assert login_slot("demo", "bob", alice) == account_id("demo", "bob")
    # a record stored before accounts: the one linked subject is its account
    assert login_slot("demo", "alice", legacy, ["alice"]) == DEFAULT_SLOT
    assert login_slot("demo", "bob", legacy, ["alice"]) == account_id("demo", "bob")
    # several linked, none told apart: the login takes it over (as before accounts)
    assert login_slot("demo", "bob", legacy, ["alice", "bob"]) == DEFAULT_SLOT
    assert legacy_account_id("demo", "u1") != legacy_account_id("demo", "u2")


async def test_a_second_account_goes_to_its_own_slot_and_each_refreshes_once(
    vault: AsyncVault, op: OpenIDProvider
) -> None:
    user = await log_in(vault, op, "alice")
    assert await log_in(vault, op, "bob", user_id=user, account="new") == user
    listed = await vault.accounts("demo", user)
    assert [(a.account_id, a.default) for a in listed] == [
        (account_id("demo", "alice"), True),
        (account_id("demo", "bob"), False),
    ]
    bob = account_id("demo", "bob")
    first = {None: await token(vault, user), bob: await token(vault, user, bob)}
    assert first[None] != first[bob]
    before = op.counts.refreshes
    vault.clock.offset = 3600  # type: ignore[attr-defined]
    renewed = {a: await token(vault, user, a) for a in (None, bob)}
    assert {a: await token(vault, user, a) for a in (None, bob)} == renewed
    assert op.counts.refreshes - before == 2
    assert renewed[None] != first[None]
    assert renewed[bob] != first[bob]
    with pytest.raises(CredentialNotFound):
        await token(vault, user, account_id("demo", "carol"))


async def test_the_connect_of_account_new_asks_the_provider_to_let_the_user_choose(
    vault: AsyncVault,
) -> None:
    url, _ = await vault.begin_login("demo", return_to="/", user_id="u1", account="new")
    assert parse_qs(urlsplit(url).query)["prompt"] == ["login"]
    url, _ = await vault.begin_login("demo", return_to="/", user_id="u1")
    assert "prompt" not in parse_qs(urlsplit(url).query)
    with pytest.raises(BadRequest):
        await vault.begin_login("demo", return_to="/", account="new")  # a login: no account


async def test_a_record_from_before_accounts_is_the_default_of_its_one_linked_subject(
    vault: AsyncVault, op: OpenIDProvider
) -> None:
    user = await log_in(vault, op, "alice")
    key = CredentialKey("demo", user)
    old = await as_before_accounts(vault, key)
    alice = account_id("demo", "alice")
    assert [a.account_id for a in await vault.accounts("demo", user)] == [alice]
    assert await token(vault, user, alice) == old.access_token
    me = await vault.me(user)
    assert me["connections"][0]["account_id"] == alice
    # a second account is linked beside it, not over it
    await log_in(vault, op, "bob", user_id=user, account="new")
    assert await token(vault, user) == old.access_token
    # the migration names it
    report = await vault.migrate_accounts()
    assert (report.migrated, report.already) == (1, 1)
    record = await vault.storage.get_credential(key)
    assert record is not None
    assert open_record(vault.sealer, record).subject == "alice"
    assert (await vault.migrate_accounts()).migrated == 0


async def test_a_copy_left_by_an_interrupted_change_is_never_read_nor_refreshed(
    vault: AsyncVault, op: OpenIDProvider
) -> None:
    user = await log_in(vault, op, "alice")
    alice = account_id("demo", "alice")
    default = await vault.storage.get_credential(CredentialKey("demo", user))
    assert default is not None
    tokens = open_record(vault.sealer, default)
    # the first step of a change of default, then a crash: alice's tokens in her own slot too
    copy_key = CredentialKey("demo", user, alice)
    await vault.storage.save_credential(
        seal_record(vault.sealer, copy_key, replace(tokens, access_token="stale"), now=0.0), 0
    )
    assert await token(vault, user, alice) == tokens.access_token
    assert [a.account_id for a in await vault.accounts("demo", user)] == [alice]
    copy = await vault.storage.get_credential(copy_key)
    before = op.counts.refreshes
    outcome = await vault.refresh_if_expiring("demo", user, within=10**9, record=copy)
    assert outcome == "fresh"
    assert op.counts.refreshes == before
    # the next change of default overwrites it; the default is then alice again
    await log_in(vault, op, "bob", user_id=user, account="new")
    bob = account_id("demo", "bob")
    await vault.set_default_account("demo", user, bob)
    assert [(a.account_id, a.default) for a in await vault.accounts("demo", user)] == [
        (bob, True),
        (alice, False),
    ]
    assert await token(vault, user, alice) == tokens.access_token
    await vault.set_default_account("demo", user, alice)
    assert await token(vault, user) == tokens.access_token
    slots = sorted(r.key.account for r in await vault.storage.list_credentials(user))
    assert slots == sorted([DEFAULT_SLOT, bob])


async def test_a_change_of_default_waits_for_a_refresh_and_gives_up_with_409(
    vault: AsyncVault, op: OpenIDProvider
) -> None:
    user = await log_in(vault, op, "alice")
    await log_in(vault, op, "bob", user_id=user, account="new")
    bob = account_id("demo", "bob")
    # another process holds bob's lease (a refresh in flight) for longer than a change waits
    now = vault.clock()
    assert await vault.storage.acquire_lease(CredentialKey("demo", user, bob), "other", 600, now)
    vault.settings = replace(vault.settings, lease_ttl=0.3)
    with pytest.raises(AccountBusy):
        await vault.set_default_account("demo", user, bob)
    assert [a.default for a in await vault.accounts("demo", user)] == [True, False]
    assert (await vault.accounts("demo", user))[0].account_id == account_id("demo", "alice")


def test_a_preset_qualifier_tells_one_subject_in_two_workspaces_apart() -> None:
    """Slack: one user id may be in two workspaces of an Enterprise Grid: two accounts."""
    one = TokenSet(access_token="x", subject="U1", extra=(("team_id", "T1"),))
    other = TokenSet(access_token="x", subject="U1", extra=(("team_id", "T2"),))
    assert qualifier_of("team_id", one) == "T1"
    assert qualifier_of(None, one) is None
    assert qualifier_of("team_id", TokenSet(access_token="x")) is None
    assert account_id("slack", "U1", "T1") != account_id("slack", "U1", "T2")
    assert account_id("slack", "U1", "T1") != account_id("slack", "U1")
    # the second workspace's login goes to its own slot; the first's stays the default
    assert login_slot("slack", "U1", one, qualifiers=("T2", "T1")) == account_id(
        "slack", "U1", "T2"
    )
    assert login_slot("slack", "U1", one, qualifiers=("T1", "T1")) == DEFAULT_SLOT
    assert default_account_id("slack", "u", other, account_extra="team_id") == account_id(
        "slack", "U1", "T2"
    )


async def test_a_connect_for_one_account_starts_from_its_grant_and_lets_the_user_choose(
    vault: AsyncVault, op: OpenIDProvider
) -> None:
    user = await log_in(vault, op, "alice")
    await log_in(vault, op, "bob", user_id=user, account="new")
    bob = account_id("demo", "bob")
    stored = await vault.locate_account("demo", user, bob)
    url, _ = await vault.begin_login(
        "demo", return_to="/", user_id=user, account=bob, scopes=["more"]
    )
    query = parse_qs(urlsplit(url).query)
    assert query["prompt"] == ["login"]
    assert set(query["scope"][0].split()) >= {*(stored.scope or "").split(), "more"}
    with pytest.raises(CredentialNotFound):
        await vault.begin_login(
            "demo", return_to="/", user_id=user, account=account_id("demo", "carol")
        )


async def test_fastapi_dependency_takes_the_account_from_a_query_parameter(
    op: OpenIDProvider,
) -> None:
    settings = Settings.from_mapping(op.settings("demo"))
    app = FastAPI()
    app.add_middleware(OAuthVaultMiddleware, settings=settings, http_transport=op.transport())

    @app.get("/token")
    async def token_view(
        creds: Annotated[Credentials, Depends(ConnectionCredentials("demo", account_query="acct"))],
    ) -> dict[str, str]:
        return {"token": creds.access_token}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=settings.base_url) as client:
        await log_in_async(client, op, "demo", login="alice")
        await log_in_async(client, op, "demo", login="bob", connect=True, account="new")
        default = (await client.get("/token")).json()["token"]
        bob = (await client.get("/token", params={"acct": account_id("demo", "bob")})).json()
        assert bob["token"] != default
        alice = account_id("demo", "alice")
        assert (await client.get("/token", params={"acct": alice})).json()["token"] == default
        bad = await client.get("/token", params={"acct": "nope"})
        assert (bad.status_code, bad.json()["error"]) == (400, "invalid_request")
        unknown = await client.get("/token", params={"acct": account_id("demo", "carol")})
        assert (unknown.status_code, unknown.json()["error"]) == (404, "credential_not_found")


async def test_a_reader_waiting_for_a_refresh_is_not_misled_by_a_write_that_keeps_the_tokens(
    vault: AsyncVault, op: OpenIDProvider
) -> None:
    """The accounts migration (or a key rotation) rewrites a record under its lease with the
    same tokens: a reader waiting for that lease to refresh an expired token keeps waiting,
    then refreshes (before: it took the write for a refresh and answered 503)."""
    import asyncio

    user = await log_in(vault, op, "alice")
    key = CredentialKey("demo", user)
    record = await vault.storage.get_credential(key)
    assert record is not None
    old = open_record(vault.sealer, record)
    vault.clock.offset = 7200  # type: ignore[attr-defined]  # the token has expired
    now = vault.clock()
    assert await vault.storage.acquire_lease(key, "migration", 30, now)
    before = op.counts.refreshes
    reader = asyncio.create_task(vault.get_connection_credentials("demo", user))
    await asyncio.sleep(0.1)  # the reader is waiting for the lease
    assert not reader.done()
    rewritten = seal_record(vault.sealer, key, replace(old, subject="alice"), now=now)
    assert await vault.storage.save_credential(rewritten, record.version)
    await vault.storage.release_lease(key, "migration")
    creds = await asyncio.wait_for(reader, 10)
    assert creds.access_token != old.access_token
    assert op.counts.refreshes == before + 1
    stored = await vault.storage.get_credential(key)
    assert stored is not None
    assert open_record(vault.sealer, stored).subject == "alice"  # kept through the refresh


async def test_the_migration_leaves_tokens_a_reader_may_be_refreshing_for_a_later_run(
    vault: AsyncVault, op: OpenIDProvider
) -> None:
    user = await log_in(vault, op, "alice")
    key = CredentialKey("demo", user)
    await as_before_accounts(vault, key, expires_at=vault.clock() + 30)
    report = await vault.migrate_accounts()
    assert (report.due, report.migrated) == (1, 0)
    vault.clock.offset = 30 + 601  # type: ignore[attr-defined]  # nobody read it since
    report = await vault.migrate_accounts()
    assert (report.due, report.migrated) == (0, 1)


async def test_a_login_of_the_previous_release_during_the_migration_is_named_too(
    vault: AsyncVault, op: OpenIDProvider
) -> None:
    """A login takes no lease: its write makes the migration's compare-and-set miss; the
    migration looks again and names what that login stored."""
    user = await log_in(vault, op, "alice")
    key = CredentialKey("demo", user)
    legacy = await as_before_accounts(vault, key)
    storage = vault.storage
    save = storage.save_credential
    interfered: list[bool] = []

    async def login_first(rec: Any, expected: int) -> bool:
        if not interfered:  # the previous release's login lands just before the write
            interfered.append(True)
            await vault.put_tokens(key, replace(legacy, access_token="from-a-login"))
        return await save(rec, expected)

    storage.save_credential = login_first  # type: ignore[method-assign,assignment]
    try:
        report = await vault.migrate_accounts()
    finally:
        del storage.save_credential
    assert (report.migrated, report.already) == (1, 0)
    stored = await vault.storage.get_credential(key)
    assert stored is not None
    opened = open_record(vault.sealer, stored)
    assert (opened.access_token, opened.subject) == ("from-a-login", "alice")


async def test_the_migration_of_many_records_several_at_once(vault: AsyncVault) -> None:
    now = vault.clock()
    for i in range(60):
        user = f"u{i:03d}"
        await vault.storage.link_identity("demo", f"s{i}", user)
        legacy = TokenSet(access_token=f"at{i}", expires_at=now + 3600, obtained_at=now)
        await vault.put_tokens(CredentialKey("demo", user), legacy)
    report = await vault.migrate_accounts(batch=7, concurrency=8)
    assert (report.scanned, report.migrated) == (60, 60)
    for i in range(60):
        record = await vault.storage.get_credential(CredentialKey("demo", f"u{i:03d}"))
        assert record is not None
        assert open_record(vault.sealer, record).subject == f"s{i}"
    assert (await vault.migrate_accounts(concurrency=8)).already == 60
