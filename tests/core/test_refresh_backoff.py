"""Failure backoff: doubling delays, a cap, and a reset on success (clock injected)."""

from __future__ import annotations

from oauth_vault_mw.core.refresh import Backoff

T0 = 1000.0


def test_not_blocked_before_any_failure() -> None:
    assert Backoff(maximum=10).blocked_for("k", T0) == 0.0


def test_delays_double_up_to_the_cap() -> None:
    backoff = Backoff(maximum=10)
    delays = [backoff.failed("k", T0) for _ in range(7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_base() -> None:
    backoff = Backoff(maximum=60, base=0.5)
    assert [backoff.failed("k", T0) for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]


def test_blocked_for_counts_down() -> None:
    backoff = Backoff(maximum=10)
    backoff.failed("k", T0)
    backoff.failed("k", T0)  # second failure: 2 s from T0
    assert backoff.blocked_for("k", T0) == 2.0
    assert backoff.blocked_for("k", T0 + 1.5) == 0.5
    assert backoff.blocked_for("k", T0 + 2) == 0.0
    assert backoff.blocked_for("k", T0 + 100) == 0.0


def test_keys_are_independent() -> None:
    backoff = Backoff(maximum=10)
    backoff.failed("a", T0)
    backoff.failed("a", T0)
    assert backoff.failed("b", T0) == 1.0
    assert backoff.blocked_for("b", T0) == 1.0
    assert backoff.blocked_for("a", T0) == 2.0


def test_success_resets() -> None:
    backoff = Backoff(maximum=10)
    for _ in range(5):
        backoff.failed("k", T0)
    backoff.succeeded("k")
    assert backoff.blocked_for("k", T0) == 0.0
    assert backoff.failed("k", T0) == 1.0
    backoff.succeeded("never-failed")


def test_huge_failure_count_stays_capped() -> None:
    backoff = Backoff(maximum=10)
    for _ in range(2000):
        delay = backoff.failed("k", T0)
    assert delay == 10.0


def test_memory_is_bounded() -> None:
    backoff = Backoff(maximum=10)
    for i in range(10_001):
        backoff.failed(i, T0 + i)
    assert backoff.blocked_for(0, T0) == 0.0  # the oldest entry was dropped
    assert backoff.blocked_for(10_000, T0 + 10_000) == 1.0
