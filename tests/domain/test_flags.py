"""The pure tests behind the flags before adjudication: stale CRM data and metric outliers."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bidhub.domain.flags import (
    DISTRIBUTION_MONTHS,
    MAD_TO_SIGMA,
    FlagRules,
    crm_age,
    distribution_since,
    is_stale,
    outlier,
    spread_of,
)

SUBMITTED = datetime(2026, 6, 15, 9, 30, tzinfo=UTC)


def test_crm_data_exactly_the_allowed_days_old_is_not_stale_one_second_more_is():
    assert not is_stale(SUBMITTED, SUBMITTED - timedelta(days=30), 30)
    assert is_stale(SUBMITTED, SUBMITTED - timedelta(days=30, seconds=1), 30)
    assert not is_stale(SUBMITTED, SUBMITTED - timedelta(days=2), 30)
    assert not is_stale(SUBMITTED, SUBMITTED, 1)  # imported the moment the bid froze it


BEIJING = ZoneInfo("Asia/Shanghai")


def test_the_distribution_window_starts_twelve_of_the_departments_months_before_the_deadline():
    # 00:30 on 1 March 2029 in Beijing is 16:30 UTC on 28 February. On UTC's calendar twelve
    # months earlier is 16:30 UTC on 28 February 2028, which is already the leap day in Beijing.
    closes_at = datetime(2029, 3, 1, 0, 30, tzinfo=BEIJING).astimezone(UTC)
    since = distribution_since(closes_at, BEIJING)
    assert since == datetime(2028, 3, 1, 0, 30, tzinfo=BEIJING)
    assert since.tzinfo is UTC  # given in the deadline's zone, as the database compares it


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31),
                    timezones=st.just(UTC)))
def test_the_distribution_window_counts_calendar_months_where_the_department_is(closes_at):
    local = closes_at.astimezone(BEIJING)
    since = distribution_since(closes_at, BEIJING).astimezone(BEIJING)
    months = local.year * 12 + local.month - 1 - (since.year * 12 + since.month - 1)
    assert months == DISTRIBUTION_MONTHS
    assert since.day == min(local.day, calendar.monthrange(since.year, since.month)[1])
    assert since.time() == local.time()


def test_no_import_before_the_bid_is_stale_and_has_no_age():
    assert is_stale(SUBMITTED, None, 3650)
    assert crm_age(SUBMITTED, None) is None
    assert crm_age(SUBMITTED, SUBMITTED - timedelta(days=45)) == timedelta(days=45)


def test_the_spread_is_the_median_and_the_normalised_median_absolute_deviation():
    # Hand-computed: median 5; deviations 4 2 0 1 5 -> sorted 0 1 2 4 5, median 2.
    spread = spread_of([1, 3, 5, 6, 10, None])
    assert spread.median == 5 and spread.size == 5
    assert spread.mad == pytest.approx(2 * MAD_TO_SIGMA)
    assert spread_of([None, None]) is None and spread_of([]) is None


def test_an_outlier_is_beyond_k_mads_in_either_direction():
    rules = FlagRules(outlier_mads=3.5, outlier_min_sample=8)
    # Median 0.5; deviations 0.1 (x4) and 0 (x4) -> MAD 0.05, normalised 0.07413.
    sample = [0.4, 0.4, 0.5, 0.5, 0.5, 0.5, 0.6, 0.6]
    spread = spread_of(sample)
    assert spread.mad == pytest.approx(0.05 * MAD_TO_SIGMA)
    high = outlier("win_rate", 0.95, spread, rules)
    assert high is not None and high.is_above and high.metric == "win_rate"
    assert high.value == 0.95 and high.median == 0.5 and high.sample == 8
    assert high.distance == pytest.approx(0.45 / (0.05 * MAD_TO_SIGMA))
    low = outlier("win_rate", 0.1, spread, rules)
    assert low is not None and not low.is_above
    # 3.5 normalised MADs is 0.2594 from the median: inside is not flagged.
    assert outlier("win_rate", 0.75, spread, rules) is None
    assert outlier("win_rate", 0.77, spread, rules) is not None


def test_too_small_a_sample_no_spread_or_no_value_is_never_an_outlier():
    rules = FlagRules(outlier_mads=3.5, outlier_min_sample=8)
    seven = spread_of([0.4, 0.4, 0.5, 0.5, 0.5, 0.6, 0.6])
    assert outlier("win_rate", 100.0, seven, rules) is None
    assert outlier("win_rate", 100.0, seven, FlagRules(outlier_min_sample=7)) is not None
    flat = spread_of([0.0] * 7 + [3.0])  # most reps have no incident: MAD 0
    assert flat.mad == 0 and outlier("open_incidents", 3.0, flat, rules) is None
    assert outlier("win_rate", None, spread_of([0.1 * n for n in range(10)]), rules) is None
    assert outlier("win_rate", 5.0, None, rules) is None


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=40),
       st.floats(min_value=0.1, max_value=20))
def test_the_median_itself_is_never_an_outlier(values, k):
    spread = spread_of(values)
    assert outlier("m", spread.median, spread, FlagRules(outlier_mads=k,
                                                         outlier_min_sample=3)) is None
