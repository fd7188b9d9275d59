"""Signed cookies: the session and state values, and the attributes every cookie gets."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from itsdangerous import TimestampSigner

from oauth_vault_mw.core import cookies as cookies_module
from oauth_vault_mw.core.cookies import (
    MAX_COOKIE,
    MAX_LOGINS_IN_FLIGHT,
    MAX_STATE_COOKIE,
    SESSION_COOKIE,
    STATE_COOKIE,
    STATE_COOKIES_BUDGET,
    CookieJar,
    CookieSpec,
    hash_id,
)
from oauth_vault_mw.core.errors import BadRequest

SECRET = "cookie-secret-" + "x" * 32
T0 = 1_700_000_000


class Clock:
    """What itsdangerous reads as 'now' (its TimestampSigner calls time.time())."""

    def __init__(self, now: int) -> None:
        self.now = now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(T0)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: clock.now)
    return clock


def jar(*, secure: bool = True, secret: str = SECRET) -> CookieJar:
    return CookieJar(secret, secure=secure, prefix="/auth", session_max_age=3600, state_max_age=600)


def test_session_roundtrip(clock: Clock) -> None:
    cookies = jar()
    spec = cookies.session_cookie("session-id-1")
    assert spec.name == "__Host-" + SESSION_COOKIE  # an https jar
    assert spec.value != "session-id-1"
    assert spec.value.startswith("session-id-1.")
    assert cookies.read_session(spec.value) == "session-id-1"


def test_state_roundtrip(clock: Clock) -> None:
    cookies = jar(secure=False)
    spec = cookies.state_cookie("state-1", "v1.kid.sealed")
    assert spec.name == f"{STATE_COOKIE}_{hash_id('state-1')[:16]}"
    assert spec.name == cookies.state_name("state-1")
    assert cookies.read_state(spec.value) == "v1.kid.sealed"


def test_session_and_state_signatures_are_not_interchangeable(clock: Clock) -> None:
    cookies = jar()
    assert cookies.read_state(cookies.session_cookie("x").value) is None
    assert cookies.read_session(cookies.state_cookie("x", "x").value) is None


def test_other_secret_cannot_read(clock: Clock) -> None:
    value = jar(secret="another-secret-" + "y" * 32).session_cookie("sid").value
    assert jar().read_session(value) is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: "other" + v[5:],
        lambda v: v[:-1] + ("A" if v[-1] != "A" else "B"),
        lambda v: v.split(".")[0],
        lambda v: v + "x",
        lambda v: "",
        lambda v: "no-signature-at-all",
        lambda v: "\udcff" + v,
    ],
    ids=["value", "signature", "unsigned", "appended", "empty", "plain", "bad-unicode"],
)
def test_tampered_value_reads_as_none(clock: Clock, tamper: Callable[[str], str]) -> None:
    cookies = jar()
    value = cookies.session_cookie("session-id-1").value
    assert cookies.read_session(tamper(value)) is None


def test_missing_value_reads_as_none() -> None:
    assert jar().read_session(None) is None
    assert jar().read_state(None) is None


def test_expiry(clock: Clock) -> None:
    cookies = jar()
    session = cookies.session_cookie("sid").value
    state = cookies.state_cookie("st", "sealed").value
    clock.now = T0 + 600
    assert cookies.read_session(session) == "sid"
    assert cookies.read_state(state) == "sealed"
    clock.now = T0 + 601
    assert cookies.read_state(state) is None
    assert cookies.read_session(session) == "sid"
    clock.now = T0 + 3601
    assert cookies.read_session(session) is None


def test_signature_from_the_future_is_refused(clock: Clock) -> None:
    cookies = jar()
    clock.now = T0 + 1000
    value = cookies.session_cookie("sid").value
    clock.now = T0
    assert cookies.read_session(value) is None


def test_oversized_value_reads_as_none(clock: Clock) -> None:
    cookies = jar()
    value = cookies.session_cookie("s" * MAX_COOKIE).value
    assert len(value) > MAX_COOKIE
    assert cookies.read_session(value) is None
    fits = cookies.session_cookie("s" * (MAX_COOKIE - 60)).value
    assert len(fits) <= MAX_COOKIE
    assert cookies.read_session(fits) == "s" * (MAX_COOKIE - 60)


# -- the per-process memory of verified session cookies -------------------------------------


def test_a_remembered_cookie_still_ages_out(clock: Clock) -> None:
    cookies = jar()
    value = cookies.session_cookie("sid").value
    assert cookies.read_session(value) == "sid"  # verified, remembered
    clock.now = T0 + 3600
    assert cookies.read_session(value) == "sid"
    clock.now = T0 + 3601
    assert cookies.read_session(value) is None
    clock.now = T0  # and it is not served from memory once it was found too old
    assert value not in cookies._verified


def test_a_remembered_cookie_from_the_future_is_refused(clock: Clock) -> None:
    cookies = jar()
    clock.now = T0 + 1000
    value = cookies.session_cookie("sid").value
    assert cookies.read_session(value) == "sid"
    clock.now = T0 + 999  # the clock went back: its signature is from the future again
    assert cookies.read_session(value) is None


def test_only_verified_values_are_remembered(clock: Clock) -> None:
    cookies = jar()
    value = cookies.session_cookie("sid").value
    forged = ["other" + value[5:], value[:-1] + ("A" if value[-1] != "A" else "B"), "x.y.z"]
    for bad in forged:
        assert cookies.read_session(bad) is None
    assert cookies._verified == {}
    assert jar(secret="another-secret-" + "y" * 32).read_session(value) is None


def test_the_memory_is_bounded_and_forgets_the_oldest(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cookies_module, "VERIFIED_SESSIONS", 8)
    cookies = jar()
    values = [cookies.session_cookie(f"sid-{i}").value for i in range(20)]
    for i, value in enumerate(values):
        assert cookies.read_session(value) == f"sid-{i}"
        assert len(cookies._verified) <= 8
    assert list(cookies._verified) == values[-8:]
    assert cookies.read_session(values[0]) == "sid-0"  # forgotten: verified again


def test_logout_forgets_and_verify_checks_every_time(clock: Clock) -> None:
    cookies = jar()
    value = cookies.session_cookie("sid").value
    assert cookies.read_session(value) == "sid"
    cookies.forget_session(value)
    cookies.forget_session(None)
    assert cookies._verified == {}
    assert cookies.verify_session(value) == "sid"
    assert cookies._verified == {}
    assert cookies.verify_session(value[:-1] + ("A" if value[-1] != "A" else "B")) is None


def test_session_hash_is_the_hash_of_the_id_with_the_same_checks(clock: Clock) -> None:
    cookies = jar()
    value = cookies.session_cookie("sid").value
    assert cookies.session_hash(value) == hash_id("sid")  # verified here, then remembered
    assert cookies.session_hash(value) == hash_id("sid")
    assert cookies.read_session(value) == "sid"
    assert cookies.session_hash(None) is None
    assert cookies.session_hash(value[:-1] + ("A" if value[-1] != "A" else "B")) is None
    assert cookies.session_hash(cookies.state_cookie("x", "x").value) is None
    clock.now = T0 + 3601  # remembered, yet its age is checked on every read
    assert cookies.session_hash(value) is None
    assert value not in cookies._verified


def test_session_hash_from_memory_and_after_read_session(clock: Clock) -> None:
    cookies = jar()
    value = cookies.session_cookie("sid").value
    assert cookies.read_session(value) == "sid"
    assert cookies.session_hash(value) == hash_id("sid")
    cookies.forget_session(value)
    assert cookies.session_hash(value) == hash_id("sid")  # forgotten: verified again


def _attributes(header: str) -> tuple[str, list[str]]:
    first, *rest = header.split("; ")
    return first, rest


def test_cookie_attributes_secure(clock: Clock) -> None:
    cookies = jar(secure=True)
    first, attrs = _attributes(cookies.session_cookie("sid").header())
    assert first.startswith(f"__Host-{SESSION_COOKIE}=")
    assert "HttpOnly" in attrs
    assert "SameSite=Lax" in attrs
    assert "Path=/" in attrs
    assert "Max-Age=3600" in attrs
    assert "Secure" in attrs
    assert not any(a.startswith("Domain") for a in attrs)
    first, attrs = _attributes(cookies.state_cookie("st", "sealed").header())
    assert first.startswith(f"__Host-{STATE_COOKIE}_")
    assert "Path=/" in attrs  # __Host- requires it
    assert "Max-Age=600" in attrs
    assert {"HttpOnly", "SameSite=Lax", "Secure"} <= set(attrs)
    assert not any(a.startswith("Domain") for a in attrs)


def test_cookie_attributes_not_secure_on_http(clock: Clock) -> None:
    cookies = jar(secure=False)
    for spec in (cookies.session_cookie("sid"), cookies.state_cookie("st", "sealed")):
        first, attrs = _attributes(spec.header())
        assert not first.startswith("__Host-")
        assert "Secure" not in attrs
        assert "HttpOnly" in attrs
        assert "SameSite=Lax" in attrs
    _, attrs = _attributes(cookies.state_cookie("st", "sealed").header())
    assert "Path=/auth" in attrs  # on http, sent to the vault's routes only


def test_clearing_cookies() -> None:
    cookies = jar()
    session = cookies.clear_session()
    assert session.header() == (
        f"__Host-{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
    )
    state = cookies.clear_state("st")
    assert (state.name, state.value, state.max_age, state.path) == (
        cookies.state_name("st"),
        "",
        0,
        "/",
    )
    plain = jar(secure=False).clear_state("st")
    assert (plain.name, plain.path) == (f"{STATE_COOKIE}_{hash_id('st')[:16]}", "/auth")


# -- logins in flight: one state cookie each, bounded ---------------------------------------


def _header(*specs: CookieSpec, extra: str = "theme=dark") -> str:
    return "; ".join([extra, *(f"{s.name}={s.value}" for s in specs)])


def test_a_state_cookie_too_large_for_a_browser_is_refused(clock: Clock) -> None:
    cookies = jar()
    with pytest.raises(BadRequest):
        cookies.state_cookie("st", "x" * MAX_STATE_COOKIE)
    fits = cookies.state_cookie("st", "x" * (MAX_STATE_COOKIE - 80))
    assert len(fits.name) + len(fits.value) < 4096
    assert cookies.read_state(fits.value) == "x" * (MAX_STATE_COOKIE - 80)
    assert cookies.read_state(fits.value + "x" * 100) is None


def test_evicting_keeps_the_newest_logins(clock: Clock) -> None:
    cookies = jar()
    held = []
    for i in range(MAX_LOGINS_IN_FLIGHT + 2):
        clock.now = T0 + i
        held.append(cookies.state_cookie(f"st-{i}", "sealed"))
    # Room for one more: the oldest go until MAX_LOGINS_IN_FLIGHT - 1 remain.
    gone = cookies.evict_states(_header(*held), adding=200)
    kept = MAX_LOGINS_IN_FLIGHT - 1
    assert [c.name for c in gone] == [c.name for c in held[: len(held) - kept]]
    assert all((c.value, c.max_age, c.path) == ("", 0, "/") for c in gone)
    # Under the count, nothing goes.
    assert cookies.evict_states(_header(*held[-kept:]), adding=200) == ()
    assert cookies.evict_states(None, adding=200) == ()
    assert cookies.evict_states("", adding=200) == ()


def test_evicting_drops_invalid_and_expired_state_cookies_first(clock: Clock) -> None:
    cookies = jar()
    old = cookies.state_cookie("old", "sealed")
    clock.now = T0 + 601
    fresh = cookies.state_cookie("fresh", "sealed")
    forged = CookieSpec(cookies.state_name("forged"), "x.y.z", 600, "/", True)
    other_app = CookieSpec("oauth_vault_statement", "keep", 600, "/", True)
    gone = cookies.evict_states(_header(old, fresh, forged, other_app), adding=200)
    assert {c.name for c in gone} == {old.name, forged.name}


def test_evicting_bounds_the_bytes_of_state_cookies(clock: Clock) -> None:
    cookies = jar()
    big = "x" * (STATE_COOKIES_BUDGET // 2)
    first = cookies.state_cookie("a", big)
    clock.now += 1
    second = cookies.state_cookie("b", "small")
    gone = cookies.evict_states(_header(first, second), adding=len(big) + 100)
    assert [c.name for c in gone] == [first.name]


def test_a_cookie_header_too_large_is_refused(clock: Clock) -> None:
    with pytest.raises(BadRequest):
        jar().evict_states("a=" + "b" * 9000, adding=10)


def test_repr_shows_no_secret() -> None:
    assert SECRET not in repr(jar())


def test_hash_id() -> None:
    assert hash_id("abc") == hash_id("abc")
    assert hash_id("abc") != hash_id("abd")
    assert len(hash_id("abc")) == 64
    assert "abc" not in hash_id("abc")


def test_within_one_second_the_browser_order_decides(clock: Clock) -> None:
    """Browsers send cookies of one path in creation order (RFC 6265 5.4): the first go."""
    cookies = jar()
    held = [cookies.state_cookie(f"st-{i}", "sealed") for i in range(MAX_LOGINS_IN_FLIGHT)]
    gone = cookies.evict_states(_header(*held), adding=200)
    assert [c.name for c in gone] == [held[0].name]
