"""When logins purge expired sessions: the pure schedule (core/purge.py)."""

from __future__ import annotations

from oauth_vault_mw.core.purge import PurgeSchedule

T0 = 1_700_000_000.0


def test_first_login_then_every_nth() -> None:
    schedule = PurgeSchedule(every=3, interval=600)
    runs = [schedule.due(T0 + i) for i in range(10)]
    assert runs == [True, False, False, True, False, False, True, False, False, True]


def test_or_after_the_interval_whichever_first() -> None:
    schedule = PurgeSchedule(every=100, interval=600)
    assert schedule.due(T0)
    assert not schedule.due(T0 + 599)
    assert schedule.due(T0 + 600)
    assert not schedule.due(T0 + 601)


def test_a_clock_that_went_back_runs_a_batch() -> None:
    schedule = PurgeSchedule(every=100, interval=600)
    assert schedule.due(T0)
    assert schedule.due(T0 - 5)
    assert not schedule.due(T0 - 4)


def test_the_batch_keeps_up_with_logins() -> None:
    """At most one session per login, at least ``batch`` rows purged every ``every`` logins."""
    schedule = PurgeSchedule()
    assert schedule.batch >= 2 * schedule.every
