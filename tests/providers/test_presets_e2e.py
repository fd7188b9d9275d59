"""Every preset end to end, in Starlette and in Flask, against a fake provider that speaks
that provider's dialect (``fake_provider.py``, fixtures from /work/shared/providers.md).

For each preset: a login through the app's routes, a read of the credential (the token the
fake issued, the account it names, the fields the preset keeps), then for tokens that expire
the clock moves past the expiry: the next read refreshes exactly once and serves the new
token, the one after the next expiry presents the newest refresh token, and once the fake
refuses the grant (in that provider's words) the read is ``409 reauthentication_required``.
Tokens that never expire are never refreshed. The presets are read from ``PRESETS`` when
the tests are collected; each must have a fixture.

The fake itself is checked too: it refuses what the real provider refuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from oauth_vault_mw.core.preset_table import PRESETS

from .fake_provider import FakeClock, FakeProvider
from .fixtures import FIXTURES
from .fixtures.spec import ProviderFixture, Refusal
from .harness import FRAMEWORKS, Site, login, site
from .probes import Probe, redirect_query, reply_body

PRESET_NAMES = sorted(PRESETS)
DAY = 24 * 3600


def test_every_preset_has_a_fixture() -> None:
    missing = sorted(set(PRESETS) - set(FIXTURES))
    assert not missing, f"presets without a fixture in tests/providers/fixtures: {missing}"


# ---------------------------------------------------------------------------- end to end


def _fixture(preset: str) -> ProviderFixture:
    fx = FIXTURES.get(preset)
    if fx is None:
        pytest.fail(f"preset {preset!r} has no fixture in tests/providers/fixtures")
    return fx


def _values(node: Any) -> Iterator[Any]:
    """Every scalar in ``node``, through mappings and lists."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _values(value)
    elif isinstance(node, list):
        for value in node:
            yield from _values(value)
    else:
        yield node


def _read(app: Site) -> dict[str, Any]:
    answer = app.get(f"/auth/connections/{app.fixture.name}/credentials")
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    assert "refresh_token" not in data
    return data


def _check_kept(app: Site, fake: FakeProvider, data: dict[str, Any]) -> None:
    root = fake.root(app.fixture.name)
    kept = set(map(str, _values(data.get("extra") or {})))
    for field, value in app.fixture.extra.items():
        wanted = str(value).replace("$root", root)
        assert wanted in kept, (
            f"Credentials.extra must keep {field} ({wanted!r}); it holds {data.get('extra')!r}"
        )


def _check_account(app: Site, fake: FakeProvider, user_id: str) -> None:
    root = fake.root(app.fixture.name)
    subjects = [s.replace("$root", root) for s in app.fixture.subjects]
    linked = {s: app.linked(s) for s in subjects}
    assert user_id in linked.values(), (
        f"the login is linked to none of the provider's account ids {subjects}"
    )


def _expires(fx: ProviderFixture, fake: FakeProvider, data: dict[str, Any]) -> bool:
    if fx.expiry == "either":  # what the login earned (Shopify: expiring=1 or not)
        return fake.grants(fx.name)[-1].offline
    if fx.expiry == "preset":  # no lifetime in the reply nor in the catalogue
        return data["expires_at"] is not None
    return fx.expiry == "yes"


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_login_read_refresh_and_refusal(framework: str, preset: str, fake: FakeProvider) -> None:
    fx = _fixture(preset)
    fake.clock = FakeClock()
    fake.reset(preset)
    with site(framework, fake, fx) as app:
        user_id = login(app, fake)
        grant = fake.grants(preset)[-1]
        data = _read(app)
        assert data["access_token"] == grant.latest_access, "not the token the provider issued"
        assert data["user_id"] == user_id
        _check_account(app, fake, user_id)
        _check_kept(app, fake, data)

        if not _expires(fx, fake, data):
            assert data["expires_at"] is None, "this provider's tokens do not expire"
            app.clock.advance(400 * DAY)
            assert _read(app)["access_token"] == data["access_token"]
            assert fake.count(preset, "refresh") == 0, "no refresh may be attempted"
            return

        assert data["expires_at"] is not None, "this provider's tokens expire"
        assert data["expires_at"] > app.clock()
        for done in (1, 2):
            app.clock.now = data["expires_at"] + 1
            fresh = _read(app)
            assert fake.count(preset, "refused") == 0, fake.refreshes(preset)
            assert fake.count(preset, "refresh") == done, "exactly one refresh per expiry"
            assert fresh["access_token"] == grant.latest_access != data["access_token"]
            assert fresh["expires_at"] is not None
            assert fresh["expires_at"] > app.clock()
            _check_kept(app, fake, fresh)
            assert _read(app)["access_token"] == fresh["access_token"]
            assert fake.count(preset, "refresh") == done
            data = fresh
        seen = fake.refreshes(preset)
        assert all(r.newest for r in seen), "a refresh presented an older refresh token"

        fake.revoke_all(preset)
        app.clock.now = data["expires_at"] + 1
        for _ in range(2):
            refused = app.get(f"/auth/connections/{preset}/credentials")
            assert refused.status_code == 409, refused.text
            body = refused.json()
            assert body["error"] == "reauthentication_required"
            assert body["login_url"].endswith(f"/auth/login/{preset}")
            assert fake.count(preset, "refresh") == 3, "the refused grant is not asked again"
        me = app.get("/auth/me").json()
        assert [c["status"] for c in me["connections"]] == ["reauthentication_required"]


# ---------------------------------------------------------------------------- the fake


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def _refused(answer: httpx.Response) -> bool:
    if answer.status_code != 200:
        return True
    body = reply_body(answer)
    return "access_token" not in body or "error" in body or body.get("ok") is False


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_the_fake_checks_what_every_provider_checks(
    name: str, fake: FakeProvider, http: httpx.Client
) -> None:
    """A good login works; a reused code, a wrong PKCE verifier, a wrong secret, a foreign
    redirect URI and an unknown refresh token do not."""
    fake.clock = FakeClock()
    probe = Probe(fake, FIXTURES[name], http)
    assert "access_token" in probe.tokens()
    code, verifier = probe.code()
    assert not _refused(probe.exchange(code, verifier))
    assert _refused(probe.exchange(code, verifier)), "a code is good once"
    code, _ = probe.code()
    assert _refused(probe.exchange(code, "x" * 43)), "the PKCE verifier must match"
    code, verifier = probe.code()
    assert _refused(probe.exchange(code, verifier, secret="wrong")), "the secret must match"
    answer, _ = probe.authorize(redirect="https://evil.example/cb")
    assert answer.status_code == 400, "a foreign redirect URI gets an error page, no redirect"
    unknown = probe.refresh("not-a-refresh-token")
    fx = FIXTURES[name]
    assert unknown.status_code == fx.refused_status, unknown.text
    assert reply_body(unknown) == dict(fx.refused_refresh)


def _refusals() -> list[tuple[str, Refusal]]:
    return [(f.name, r) for f in FIXTURES.values() for r in f.refuses]


@pytest.mark.parametrize(
    ("name", "refusal"), _refusals(), ids=[f"{n}-{r.kind}" for n, r in _refusals()]
)
def test_the_fake_refuses_as_the_provider_does(
    name: str, refusal: Refusal, fake: FakeProvider, http: httpx.Client
) -> None:
    fake.clock = FakeClock()
    fx = FIXTURES[name]
    probe = Probe(fake, fx, http)
    kind = refusal.kind
    if kind == "without_offline":
        code, verifier = probe.code(base=probe.without_offline())
        answer = probe.exchange(code, verifier, token_params=False)
        assert answer.status_code == 200, answer.text
        body = reply_body(answer)
        assert "access_token" in body
        assert not set(fx.offline_only) & set(body), f"{refusal.why}: {body}"
        return
    if kind in ("missing_authorize_param", "no_pkce", "form_post_required"):
        scopes = " ".join(fx.form_post_scopes)
        answer, _ = probe.authorize(
            drop=[refusal.param] if refusal.param else (),
            pkce=kind != "no_pkce",
            extra={"scope": scopes} if kind == "form_post_required" else None,
        )
        assert answer.status_code == refusal.status, answer.text
        query = redirect_query(answer)
        assert "code" not in query
        assert {k: query.get(k) for k in refusal.body} == dict(refusal.body), refusal.why
        return
    if kind == "without_audience":
        code, verifier = probe.code(drop=["audience"])
        tokens = reply_body(probe.exchange(code, verifier))
        answer = http.get(
            f"{probe.root}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
    elif kind in ("refresh_at_token_url", "refresh_without_redirect_uri"):
        tokens = probe.tokens()
        if kind == "refresh_at_token_url":
            answer = probe.refresh(tokens["refresh_token"], url=f"{probe.root}/token")
        else:
            answer = probe.refresh(tokens["refresh_token"], redirect=False)
    elif kind == "bad_code":
        answer = probe.exchange("no-such-code", "x" * 43)
    else:
        code, verifier = probe.code()
        table: dict[str, dict[str, Any]] = {
            "no_basic": {"how": "post"},
            "no_user_agent": {"user_agent": False},
            "no_accept_json": {"accept_json": False},
            "json_body": {"as_json": True},
            "secret_not_a_jwt": {"how": "post", "secret": "apple-client-secret"},
        }
        answer = probe.exchange(code, verifier, **table[kind])
    assert answer.status_code == refusal.status, f"{refusal.why}: {answer.text}"
    body = reply_body(answer)
    assert {k: body.get(k) for k in refusal.body} == dict(refusal.body), refusal.why
    if kind == "no_accept_json":
        assert answer.headers["content-type"].startswith("application/x-www-form-urlencoded")
        assert body["access_token"]
