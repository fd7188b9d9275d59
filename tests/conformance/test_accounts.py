"""Several accounts of one connection per user, end to end against the real provider, in
Starlette and Flask alike: a user links two provider accounts (two subjects) of one
connection; both are listed; each is read and refreshed on its own; the default changes;
removing one leaves the other; the service route and the token exchange read a chosen one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from oauth_vault_mw.core.accounts import DEFAULT_SLOT, account_id
from oauth_vault_mw.core.model import CredentialKey
from tests.support.suite import TOKEN_TTL

from .conftest import Site, error
from .test_scenarios import bearer, client_name, grant

pytestmark = pytest.mark.integration

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


def link_another(site: Site, login: str, **params: str) -> None:
    """``GET /auth/connect/demo?account=new``: the provider asks to log in again, as
    ``login`` this time."""
    start = site.client.get("/auth/connect/demo", params={"account": "new", **params})
    assert start.status_code == 302, start.text
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["prompt"] == ["login"]  # an OpenID provider: sign in again, choose another
    done = site.client.get(site.authorize(start.headers["location"], login))
    assert done.status_code == 303, done.text


def accounts(site: Site) -> list[dict[str, Any]]:
    me = site.client.get("/auth/me").json()
    (entry,) = [c for c in me["connections"] if c["connection_id"] == "demo"]
    listed: list[dict[str, Any]] = entry["accounts"]
    assert entry["account_id"] == listed[0]["account_id"]  # the entry shows the default
    assert entry["profile"] == listed[0]["profile"]
    return listed


def token_of(site: Site, account: str | None = None) -> str:
    params = {"account": account} if account else {}
    answer = site.client.get("/auth/connections/demo/credentials", params=params)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def test_two_accounts_listed_read_refreshed_defaulted_and_removed(
    site: Site, unique_user: Callable[[], str]
) -> None:
    work, personal = unique_user(), unique_user()
    assert site.login(user=work).status_code == 303
    user_id = site.client.get("/auth/me").json()["user_id"]
    link_another(site, personal)

    listed = accounts(site)
    work_id, personal_id = account_id("demo", work), account_id("demo", personal)
    assert [(a["account_id"], a["default"]) for a in listed] == [
        (work_id, True),
        (personal_id, False),
    ]
    assert [a["profile"]["preferred_username"] for a in listed] == [work, personal]
    assert work not in work_id
    assert personal not in personal_id
    # both subjects stay linked to the one user
    assert site.linked(work) == site.linked(personal) == user_id

    # each is read on its own; the default without an account
    default_token = token_of(site)
    assert token_of(site, work_id) == default_token
    personal_token = token_of(site, personal_id)
    assert personal_token != default_token
    fn = site.client.get("/fn/demo")  # the host's view, default account
    assert fn.json()["access_token"] == default_token

    # each is refreshed on its own: one refresh per account per expiry
    before = site.provider.stats()["refresh_grants"]
    time.sleep(TOKEN_TTL + 0.2)
    renewed = {account: token_of(site, account) for account in (work_id, personal_id)}
    for _ in range(3):
        assert token_of(site, work_id) == renewed[work_id]
        assert token_of(site, personal_id) == renewed[personal_id]
    assert site.provider.stats()["refresh_grants"] - before == 2
    assert renewed[work_id] != default_token
    assert renewed[personal_id] != personal_token

    # another default: reads without an account now get the personal account
    changed = site.client.put("/auth/connections/demo/default", params={"account": personal_id})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"connection_id": "demo", "default_account_id": personal_id}
    assert token_of(site) == renewed[personal_id]
    assert token_of(site, work_id) == renewed[work_id]
    assert [(a["account_id"], a["default"]) for a in accounts(site)] == [
        (personal_id, True),
        (work_id, False),
    ]
    with site.storage() as storage:  # the slots: default, and the work account's own
        slots = sorted(r.key.account for r in storage.list_credentials(user_id))
    assert slots == sorted([DEFAULT_SLOT, work_id])

    # a login of the work account updates its own slot, not the default
    site.client.cookies.clear()
    site.browser.cookies.clear()
    assert site.login(user=work).status_code == 303
    assert site.client.get("/auth/me").json()["user_id"] == user_id
    assert token_of(site) == renewed[personal_id]
    assert token_of(site, work_id) != renewed[work_id]

    # removing the work account leaves the personal one
    gone = site.client.delete("/auth/connections/demo", params={"account": work_id})
    assert gone.status_code == 200, gone.text
    assert gone.json()["account_id"] == work_id
    assert [a["account_id"] for a in accounts(site)] == [personal_id]
    assert token_of(site) == renewed[personal_id]
    error(
        site.client.get("/auth/connections/demo/credentials", params={"account": work_id}),
        404,
        "credential_not_found",
    )


def test_removing_the_default_account_makes_the_other_the_default(
    site: Site, unique_user: Callable[[], str]
) -> None:
    first, second = unique_user(), unique_user()
    site.login(user=first)
    link_another(site, second)
    second_token = token_of(site, account_id("demo", second))
    gone = site.client.delete(
        "/auth/connections/demo", params={"account": account_id("demo", first)}
    )
    assert gone.status_code == 200, gone.text
    listed = accounts(site)
    assert [(a["account_id"], a["default"]) for a in listed] == [(account_id("demo", second), True)]
    assert token_of(site) == second_token
    # and removing without an account removes every one left
    assert site.client.delete("/auth/connections/demo").status_code == 200
    assert site.client.get("/auth/me").json()["connections"] == []


def test_bad_account_parameters_are_400s_and_change_nothing(
    site: Site, unique_user: Callable[[], str]
) -> None:
    login = unique_user()
    site.login(user=login)
    user_id = site.client.get("/auth/me").json()["user_id"]
    with site.storage() as storage:
        before = storage.list_credentials(user_id)
    for bad in ("x", "default", "a" * 26, "b" * 25, "a" + "G" * 24, "../a", "a" * 4000):
        for answer in (
            site.client.get("/auth/connections/demo/credentials", params={"account": bad}),
            site.client.get("/auth/connect/demo", params={"account": bad}),
            site.client.put("/auth/connections/demo/default", params={"account": bad}),
            site.client.delete("/auth/connections/demo", params={"account": bad}),
        ):
            assert answer.status_code in (400, 414), (bad, answer.text)
            assert answer.json()["error"] in ("invalid_request", "request_too_large")
    error(site.client.get("/auth/login/demo", params={"account": "new"}), 400, "invalid_request")
    error(site.client.put("/auth/connections/demo/default"), 400, "invalid_request")
    mine = account_id("demo", login)
    cross_site = site.client.put(
        "/auth/connections/demo/default",
        params={"account": mine},
        headers={"Origin": "https://evil.example"},
    )
    error(cross_site, 403, "forbidden_origin")
    unknown = account_id("demo", "nobody-" + login)
    for answer in (
        site.client.get("/auth/connections/demo/credentials", params={"account": unknown}),
        site.client.put("/auth/connections/demo/default", params={"account": unknown}),
        site.client.delete("/auth/connections/demo", params={"account": unknown}),
    ):
        error(answer, 404, "credential_not_found")
    with site.storage() as storage:
        assert storage.list_credentials(user_id) == before


def test_service_route_and_token_exchange_read_a_chosen_account(
    site: Site, unique_user: Callable[[], str]
) -> None:
    first, second = unique_user(), unique_user()
    site.login(user=first)
    link_another(site, second)
    user_id = site.client.get("/auth/me").json()["user_id"]
    app_token = site.client.get("/auth/app-token").json()["access_token"]
    first_id, second_id = account_id("demo", first), account_id("demo", second)
    tokens = {a: token_of(site, a) for a in (first_id, second_id)}
    site.client.cookies.clear()
    base = f"Connections/demo/Users/{user_id}"
    with site.service() as service:
        every = service.create_client(client_name("all"), [grant(f"{base}/Credentials")]).value
        only_second = service.create_client(
            client_name("second"), [grant(f"{base}/Accounts/{second_id}/Credentials")]
        ).value
        default_only = service.create_client(
            client_name("default"), [grant(f"{base}/Accounts/default/Credentials")]
        ).value

    def read(key: str, account: str | None) -> Any:
        params = {"account": account} if account else {}
        return site.client.get(
            f"/auth/connections/demo/users/{user_id}/credentials",
            params=params,
            headers=bearer(key),
        )

    assert read(every, None).json()["access_token"] == tokens[first_id]
    assert read(every, first_id).json()["access_token"] == tokens[first_id]
    assert read(every, second_id).json()["access_token"] == tokens[second_id]
    assert read(only_second, second_id).json()["access_token"] == tokens[second_id]
    error(read(only_second, first_id), 403, "forbidden")
    error(read(only_second, None), 403, "forbidden")
    assert read(default_only, None).json()["access_token"] == tokens[first_id]
    error(read(default_only, second_id), 403, "forbidden")
    error(read(every, account_id("demo", "nobody")), 404, "credential_not_found")
    error(read(every, "nope"), 400, "invalid_request")

    def exchange(key: str, account: str | None) -> Any:
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": app_token,
            "subject_token_type": JWT_TYPE,
            "resource": "connection:demo",
        }
        if account is not None:
            form["account"] = account
        return site.client.post("/auth/token", data=form, headers=bearer(key))

    assert exchange(every, second_id).json()["access_token"] == tokens[second_id]
    assert exchange(every, None).json()["access_token"] == tokens[first_id]
    assert exchange(only_second, second_id).json()["access_token"] == tokens[second_id]
    refused = exchange(only_second, first_id)
    assert (refused.status_code, refused.json()["error"]) == (403, "unauthorized_client")
    unknown = exchange(every, account_id("demo", "nobody"))
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_grant")
    malformed = exchange(every, "nope")
    assert (malformed.status_code, malformed.json()["error"]) == (400, "invalid_request")


def test_a_connect_without_account_new_of_another_subject_adds_it_too(
    site: Site, unique_user: Callable[[], str]
) -> None:
    """Before accounts, a connect with another provider account replaced the credential;
    now it is linked beside the first, which stays the default."""
    first, second = unique_user(), unique_user()
    site.login(user=first)
    site.browser.cookies.clear()  # the provider's session: log in there as another account
    assert site.login(user=second, path="connect").status_code == 303
    assert [(a["account_id"], a["default"]) for a in accounts(site)] == [
        (account_id("demo", first), True),
        (account_id("demo", second), False),
    ]


def test_the_stored_key_names_the_slot(site: Site, unique_user: Callable[[], str]) -> None:
    first, second = unique_user(), unique_user()
    site.login(user=first)
    link_another(site, second)
    user_id = site.client.get("/auth/me").json()["user_id"]
    assert site.stored("demo", user_id).subject == first
    with site.storage() as storage:
        other = storage.get_credential(CredentialKey("demo", user_id, account_id("demo", second)))
    assert other is not None
