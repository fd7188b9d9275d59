"""The refresh policy (``core/refresh.py``), fed data: no I/O, no clock, no provider.

Each step the vault takes around a refresh is decided here: whether to refresh, what to do
under the lease, how to pause between attempts, what a token response means for the record,
what the caller gets when the provider fails, and what the sweep reports.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from oauth_vault_mw.core.errors import ProviderUnavailable
from oauth_vault_mw.core.model import REAUTHENTICATION_REQUIRED, TokenSet
from oauth_vault_mw.core.refresh import (
    STORE_MARGIN,
    after_response,
    decide,
    failure_reason,
    fallback,
    lease_pauses,
    lease_renewal_due,
    retry_budget,
    retry_pause,
    same_grant,
    still_forced,
    store_retry_pause,
    sweep_result,
    sweep_start,
    under_lease,
)
from oauth_vault_mw.core.tokens import TokenGranted, TokenRejected, TokenRetryable
from tests.core.tokensets import NOW, tokens

# -- decide: when to refresh ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "refresh", "expected"),
    [
        (0, True, "use"),
        (3540, True, "use"),  # exactly min_validity left
        (3541, True, "refresh"),
        (3541, False, "use"),  # cannot refresh: served while it lasts
        (3599, False, "use"),
        (3600, False, "expired"),
        (3600, True, "refresh"),
        (9999, True, "refresh"),
    ],
)
def test_decide_long_lived_token(elapsed: float, refresh: bool, expected: str) -> None:
    verdict = decide(tokens(refresh=refresh), now=NOW + elapsed, min_validity=60)
    assert verdict == expected


@pytest.mark.parametrize(
    ("lifetime", "min_validity", "elapsed", "expected"),
    [
        # a 100 s token asked for 60 s: refreshed at half-life (50 s left), not on every call
        (100, 60, 0, "use"),
        (100, 60, 50, "use"),
        (100, 60, 51, "refresh"),
        # a 300 s token asked for 10 minutes: the same, at 150 s
        (300, 600, 149, "use"),
        (300, 600, 151, "refresh"),
        # exactly twice min_validity: the ordinary rule
        (120, 60, 60, "use"),
        (120, 60, 61, "refresh"),
        # zero lifetime: always refresh
        (0, 60, 0, "refresh"),
    ],
)
def test_decide_half_life_for_short_lived_tokens(
    lifetime: float, min_validity: float, elapsed: float, expected: str
) -> None:
    verdict = decide(tokens(lifetime=lifetime), now=NOW + elapsed, min_validity=min_validity)
    assert verdict == expected


def test_decide_force() -> None:
    fresh = tokens()
    assert decide(fresh, now=NOW, min_validity=60, force=True) == "refresh"
    # nothing to refresh with: the caller must get a new grant
    assert decide(tokens(refresh=False), now=NOW, min_validity=60, force=True) == "expired"


def test_decide_never_expiring_token() -> None:
    forever = tokens(lifetime=None, refresh=False)
    assert decide(forever, now=NOW + 10**9, min_validity=10**6) == "use"
    assert decide(forever, now=NOW, min_validity=60, force=True) == "expired"
    forever_with_refresh = tokens(lifetime=None)
    assert decide(forever_with_refresh, now=NOW, min_validity=60, force=True) == "refresh"


@pytest.mark.parametrize("force", [False, True])
def test_decide_reauthentication_required(force: bool) -> None:
    marked = tokens(status=REAUTHENTICATION_REQUIRED)
    assert decide(marked, now=NOW, min_validity=60, force=force) == "reauthenticate"


def test_decide_legacy_record_without_obtained_at() -> None:
    # records written before obtained_at existed decode with 0.0: no half-life shortcut
    legacy = replace(tokens(), obtained_at=0.0)
    assert decide(legacy, now=NOW + 3540, min_validity=60) == "use"
    assert decide(legacy, now=NOW + 3541, min_validity=60) == "refresh"


# -- a forced refresh -----------------------------------------------------------------------


def test_a_forced_refresh_stays_forced_while_the_record_is_unchanged() -> None:
    assert still_forced(True, seen_version=3, current_version=3)


def test_a_forced_refresh_is_moot_once_someone_wrote_a_newer_record() -> None:
    assert not still_forced(True, seen_version=3, current_version=4)


def test_an_unforced_read_never_becomes_forced() -> None:
    assert not still_forced(False, seen_version=3, current_version=3)


def test_a_forced_refresh_stays_forced_across_a_write_that_kept_the_tokens() -> None:
    assert still_forced(True, seen_version=3, current_version=4, same_tokens=True)
    assert not still_forced(False, seen_version=3, current_version=4, same_tokens=True)


def test_same_grant_compares_the_tokens_not_the_rest() -> None:
    a = TokenSet(access_token="at", refresh_token="rt", expires_at=10.0)
    assert same_grant(a, replace(a, subject="alice", obtained_at=5.0))
    assert not same_grant(a, replace(a, access_token="at2"))
    assert not same_grant(a, replace(a, refresh_token="rt2"))


# -- under the lease ------------------------------------------------------------------------


def test_under_lease_a_token_refreshed_meanwhile_is_used() -> None:
    fresh = tokens(obtained_at=NOW)
    verdict = under_lease(
        fresh, now=NOW + 1, min_validity=60, force=False, half_life=True, leased=True
    )
    assert verdict == "use"


def test_under_lease_an_expiring_token_is_refreshed_only_with_the_lease() -> None:
    old = tokens(obtained_at=NOW - 3590)
    common = {"now": NOW, "min_validity": 60, "force": False, "half_life": True}
    assert under_lease(old, leased=True, **common) == "refresh"  # type: ignore[arg-type]
    assert under_lease(old, leased=False, **common) == "lease_missed"  # type: ignore[arg-type]


@pytest.mark.parametrize("leased", [True, False])
def test_under_lease_nothing_to_refresh_with_means_reauthentication(leased: bool) -> None:
    expired = tokens(refresh=False, obtained_at=NOW - 4000)
    marked = tokens(status=REAUTHENTICATION_REQUIRED)
    for stored in (expired, marked):
        verdict = under_lease(
            stored, now=NOW, min_validity=60, force=False, half_life=True, leased=leased
        )
        assert verdict == "reauthenticate"


def test_under_lease_a_forced_read_refreshes_a_fresh_token() -> None:
    verdict = under_lease(
        tokens(), now=NOW, min_validity=60, force=True, half_life=True, leased=True
    )
    assert verdict == "refresh"


# -- waiting for the lease, pausing between attempts ----------------------------------------


def test_lease_wait_lasts_the_lease_and_a_second_in_growing_pauses() -> None:
    budget, pauses = lease_pauses(15.0)
    assert budget == 16.0
    first = list(itertools.islice(pauses, 8))
    assert first[0] == pytest.approx(0.02)
    assert first == sorted(first)
    assert max(first) == pytest.approx(0.1)


def test_a_lease_just_taken_counts_as_renewed_for_the_first_attempt_only() -> None:
    # taken at t=100 for 15 s: until 115
    assert not lease_renewal_due(0, 115.0, now=100.0, ttl=15.0)
    assert not lease_renewal_due(0, 115.0, now=100.9, ttl=15.0)
    assert lease_renewal_due(0, 115.0, now=101.0, ttl=15.0)  # a second on: renew
    assert lease_renewal_due(1, 115.0, now=100.1, ttl=15.0)  # a retry: always
    # a short lease counts as fresh for a tenth of itself only
    assert not lease_renewal_due(0, 102.0, now=100.1, ttl=2.0)
    assert lease_renewal_due(0, 102.0, now=100.2, ttl=2.0)


def test_retry_budget_is_twice_the_provider_timeout() -> None:
    assert retry_budget(5.0) == 10.0


def test_retry_pauses_double_until_the_attempts_run_out() -> None:
    pauses = [retry_pause(a, attempts=4, remaining=100.0) for a in range(4)]
    assert pauses == [0.25, 0.5, 1.0, None]


def test_retry_pause_never_outlasts_the_budget() -> None:
    assert retry_pause(2, attempts=10, remaining=0.3) == pytest.approx(0.3)
    assert retry_pause(0, attempts=10, remaining=0.0) is None
    assert retry_pause(0, attempts=10, remaining=-1.0) is None


def test_a_single_attempt_is_never_retried() -> None:
    assert retry_pause(0, attempts=1, remaining=100.0) is None


# -- what a token response means for the record ---------------------------------------------


def test_a_grant_is_stored() -> None:
    assert after_response(TokenGranted(tokens())) == "store"


@pytest.mark.parametrize("error", ["invalid_grant", "bad_refresh_token"])
def test_a_refused_grant_demands_reauthentication(error: str) -> None:
    assert after_response(TokenRejected(error)) == "reauthenticate"


def test_other_refusals_and_outages_fail_over() -> None:
    assert after_response(TokenRejected("invalid_client")) == "failed"
    assert after_response(TokenRetryable("http 503")) == "failed"


def test_failure_reasons_are_the_provider_code_or_ours() -> None:
    assert failure_reason(TokenRejected("invalid_client", "long text")) == "invalid_client"
    assert failure_reason(TokenRetryable("http 503")) == "http 503"


# -- what the caller gets when the provider fails -------------------------------------------


def test_fallback_serves_a_token_that_is_still_valid() -> None:
    stored = tokens(obtained_at=NOW - 3590)  # 10 s left
    assert fallback(stored, now=NOW, retry_after=4.0) is stored


def test_fallback_serves_a_token_that_never_expires() -> None:
    forever = tokens(lifetime=None)
    assert fallback(forever, now=NOW + 10**9, retry_after=4.0) is forever


def test_fallback_on_an_expired_token_is_provider_unavailable_with_retry_after() -> None:
    expired = tokens(obtained_at=NOW - 3600)
    with pytest.raises(ProviderUnavailable) as caught:
        fallback(expired, now=NOW, retry_after=4.0)
    assert caught.value.headers()["Retry-After"] == "5"


# -- what the sweep reports -----------------------------------------------------------------


def test_sweep_refreshes_what_expires_within_its_window() -> None:
    expiring = tokens(lifetime=300)
    assert sweep_start(expiring, now=NOW, within=600) == "refresh"
    assert sweep_start(expiring, now=NOW, within=100) == "fresh"


def test_sweep_ignores_tokens_that_never_expire() -> None:
    assert sweep_start(tokens(lifetime=None), now=NOW, within=600) == "fresh"


def test_sweep_reports_an_expiring_token_without_refresh_token() -> None:
    stranded = tokens(lifetime=300, refresh=False)
    assert sweep_start(stranded, now=NOW, within=600) == "reauthentication_required"
    assert sweep_start(stranded, now=NOW, within=100) == "fresh"


def test_sweep_reports_a_marked_credential() -> None:
    marked = tokens(status=REAUTHENTICATION_REQUIRED)
    assert sweep_start(marked, now=NOW, within=600) == "reauthentication_required"


def test_sweep_result_tells_new_tokens_from_the_fallback() -> None:
    before = tokens()
    assert sweep_result(before, replace(before, access_token="new")) == "refreshed"
    assert sweep_result(before, before) == "failed"


def test_store_retry_pause_doubles_up_to_a_second_and_stops_before_the_lease_ends() -> None:
    pauses = [store_retry_pause(i, lease_left=60.0) for i in range(7)]
    assert pauses == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert store_retry_pause(0, lease_left=STORE_MARGIN + 0.05) is None
    assert store_retry_pause(3, lease_left=STORE_MARGIN + 0.5) is None  # 0.8 s would overrun
    assert store_retry_pause(3, lease_left=STORE_MARGIN + 0.9) == 0.8


def test_under_lease_after_a_holder_that_failed_serves_the_fallback_unless_forced() -> None:
    old = tokens(obtained_at=NOW - 3590)
    common = {"now": NOW, "min_validity": 60, "half_life": True, "leased": True}
    assert under_lease(old, force=False, holder_failed=True, **common) == "holder_failed"  # type: ignore[arg-type]
    assert under_lease(old, force=True, holder_failed=True, **common) == "refresh"  # type: ignore[arg-type]
    assert under_lease(old, force=False, holder_failed=False, **common) == "refresh"  # type: ignore[arg-type]
