"""Signed cookies: the session and state values, and the attributes every cookie gets."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from itsdangerous import TimestampSigner

from oauth_vault_mw.core import cookies as cookies_module
from oauth_vault_mw.core.cookies import (
    MAX_COOKIE,
    SESSION_COOKIE,
    STATE_COOKIE,
    CookieJar,
    hash_id,
)

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
    assert spec.name == SESSION_COOKIE
    assert spec.value != "session-id-1"
    assert spec.value.startswith("session-id-1.")
    assert cookies.read_session(spec.value) == "session-id-1"


def test_state_roundtrip(clock: Clock) -> None:
    cookies = jar()
    spec = cookies.state_cookie("state-1")
    assert spec.name == STATE_COOKIE
    assert cookies.read_state(spec.value) == "state-1"


def test_session_and_state_signatures_are_not_interchangeable(clock: Clock) -> None:
    cookies = jar()
    assert cookies.read_state(cookies.session_cookie("x").value) is None
    assert cookies.read_session(cookies.state_cookie("x").value) is None


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
    state = cookies.state_cookie("st").value
    clock.now = T0 + 600
    assert cookies.read_session(session) == "sid"
    assert cookies.read_state(state) == "st"
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


def _attributes(header: str) -> tuple[str, list[str]]:
    first, *rest = header.split("; ")
    return first, rest


def test_cookie_attributes_secure(clock: Clock) -> None:
    cookies = jar(secure=True)
    first, attrs = _attributes(cookies.session_cookie("sid").header())
    assert first.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in attrs
    assert "SameSite=Lax" in attrs
    assert "Path=/" in attrs
    assert "Max-Age=3600" in attrs
    assert "Secure" in attrs
    _, attrs = _attributes(cookies.state_cookie("st").header())
    assert "Path=/auth" in attrs
    assert "Max-Age=600" in attrs
    assert {"HttpOnly", "SameSite=Lax", "Secure"} <= set(attrs)


def test_cookie_attributes_not_secure_on_http(clock: Clock) -> None:
    cookies = jar(secure=False)
    for spec in (cookies.session_cookie("sid"), cookies.state_cookie("st")):
        _, attrs = _attributes(spec.header())
        assert "Secure" not in attrs
        assert "HttpOnly" in attrs
        assert "SameSite=Lax" in attrs


def test_clearing_cookies() -> None:
    cookies = jar()
    session = cookies.clear_session()
    assert session.header() == (
        f"{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
    )
    state = cookies.clear_state()
    assert (state.name, state.value, state.max_age, state.path) == (STATE_COOKIE, "", 0, "/auth")


def test_repr_shows_no_secret() -> None:
    assert SECRET not in repr(jar())


def test_hash_id() -> None:
    assert hash_id("abc") == hash_id("abc")
    assert hash_id("abc") != hash_id("abd")
    assert len(hash_id("abc")) == 64
    assert "abc" not in hash_id("abc")
