"""The appeal window: N working days later, at the announcement's local time of day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bidhub.domain.rules import RuleError, parse_rules
from bidhub.domain.standstill import WORKING_WEEKDAYS, is_window_open, standstill_end

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def local(zone, *args) -> datetime:
    return datetime(*args, tzinfo=zone)


@pytest.mark.parametrize(("announced", "days", "ends"), [
    ((2026, 11, 30, 10, 0), 3, (2026, 12, 3, 10, 0)),   # Monday -> Thursday
    ((2026, 12, 4, 10, 0), 3, (2026, 12, 9, 10, 0)),    # Friday -> Wednesday
    ((2026, 12, 5, 10, 0), 3, (2026, 12, 9, 10, 0)),    # Saturday -> Wednesday
    ((2026, 12, 6, 23, 30), 1, (2026, 12, 7, 23, 30)),  # Sunday -> Monday
    ((2026, 12, 4, 23, 59), 1, (2026, 12, 7, 23, 59)),  # Friday night -> Monday night
    ((2026, 12, 1, 9, 15), 10, (2026, 12, 15, 9, 15)),  # two working weeks
])
def test_the_window_ends_n_working_days_later_at_the_same_local_time(announced, days, ends):
    start = local(SHANGHAI, *announced).astimezone(UTC)
    assert standstill_end(start, days, SHANGHAI) == local(SHANGHAI, *ends).astimezone(UTC)


def test_working_days_are_counted_in_the_departments_zone_not_utc():
    # Monday 01:00 in Shanghai is still Sunday 17:00 in UTC: the count starts from Monday.
    start = local(SHANGHAI, 2026, 11, 30, 1, 0)
    assert start.astimezone(UTC).weekday() == 6
    assert standstill_end(start, 1, SHANGHAI) == local(SHANGHAI, 2026, 12, 1, 1, 0)


def test_a_zero_window_has_no_end():
    assert standstill_end(datetime(2026, 11, 30, tzinfo=UTC), 0, SHANGHAI) is None
    assert not is_window_open(None, datetime(2026, 11, 30, tzinfo=UTC))


def test_naive_times_and_negative_windows_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        standstill_end(datetime(2026, 11, 30), 3, SHANGHAI)
    with pytest.raises(ValueError, match="negative"):
        standstill_end(datetime(2026, 11, 30, tzinfo=UTC), -1, SHANGHAI)


def test_the_window_is_open_strictly_before_its_end():
    end = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    assert is_window_open(end, end - timedelta(microseconds=1))
    assert not is_window_open(end, end)
    assert not is_window_open(end, end + timedelta(seconds=1))


def test_a_daylight_saving_change_keeps_the_wall_clock_time():
    # Berlin leaves summer time on Sunday 25 October 2026.
    start = local(BERLIN, 2026, 10, 23, 10, 0)
    end = standstill_end(start, 1, BERLIN)
    assert end.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 10, 26, 10, 0)
    assert end - start.astimezone(UTC) == timedelta(days=3, hours=1)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(SHANGHAI)),
       st.integers(min_value=1, max_value=20))
def test_the_end_is_a_working_day_with_exactly_n_working_days_after_the_start(start, days):
    end = standstill_end(start, days, SHANGHAI).astimezone(SHANGHAI)
    assert end.time() == start.time()
    assert end.weekday() in WORKING_WEEKDAYS
    between = [start.date() + timedelta(days=offset)
               for offset in range(1, (end.date() - start.date()).days + 1)]
    assert sum(1 for day in between if day.weekday() in WORKING_WEEKDAYS) == days
    # Never more than a weekend beyond the calendar days, never fewer.
    assert days <= (end.date() - start.date()).days <= days + 2 * (days // 5 + 1)


BASE = """\
[[factors]]
metric = "win_rate"
weight = 1.0
"""


def test_the_rules_window_defaults_to_none_when_the_section_is_absent():
    assert parse_rules(BASE).appeal_window_working_days == 0


def test_the_rules_window_is_read_from_the_appeals_section():
    rules = parse_rules(BASE + "\n[appeals]\nwindow_working_days = 5\n")
    assert rules.appeal_window_working_days == 5


@pytest.mark.parametrize(("value", "message"), [
    ("-1", "appeals.window_working_days (line 6): must be at least 0, got -1"),
    ("21", "appeals.window_working_days (line 6): must be at most 20, got 21"),
    ("1.5", "appeals.window_working_days (line 6): expected a whole number, got 1.5"),
    ('"3"', "appeals.window_working_days (line 6): expected a whole number, got a string"),
])
def test_a_wrong_window_is_refused_with_its_key_and_reason(value, message):
    with pytest.raises(RuleError) as caught:
        parse_rules(BASE + f"\n[appeals]\nwindow_working_days = {value}\n")
    assert message in str(caught.value)


def test_an_unknown_appeals_key_is_refused():
    with pytest.raises(RuleError, match=r"appeals\.window_days.*unknown key"):
        parse_rules(BASE + "\n[appeals]\nwindow_days = 3\n")
