"""commitment_kept and the list of promises, with figures worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bidhub.domain.facts import (
    AccountFacts,
    LostAccountFact,
    OpportunityFact,
    PromiseFact,
    RepHistory,
    Stage,
    StageChange,
)
from bidhub.domain.metrics import (
    MAX_COMMITMENT_KEPT,
    METRICS,
    PromiseRow,
    commitment_kept,
    months_after,
    promise_rows,
    whole_months,
)

START = datetime(2025, 9, 15, 12, 0, tzinfo=UTC)
SIX_MONTHS_ON = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
ACCOUNT = AccountFacts(account_id=99, industry="Internet", branch="BJ", annual_value_yuan=0)
_ids = iter(range(1, 10**6))


def won(account_id: int, amount: int, at: datetime, *, opened: datetime | None = None
        ) -> OpportunityFact:
    opened = opened or at - timedelta(days=20)
    return OpportunityFact(next(_ids), account_id, "Internet", amount, Stage.WON, opened, at,
                           (StageChange(Stage.PROPOSAL, opened), StageChange(Stage.WON, at)))


def promise(account_id: int, committed: int, started_at: datetime = START) -> PromiseFact:
    return PromiseFact(next(_ids), account_id, committed, started_at)


def history(*, promises=(), opportunities=(), lost=()) -> RepHistory:
    return RepHistory(rep_id=7, hired_on=date(2020, 1, 1), zone=UTC, accounts_held=30,
                      opportunities=tuple(opportunities), promises=tuple(promises),
                      lost_accounts=tuple(lost))


def kept(rep: RepHistory, now: datetime) -> float | None:
    return commitment_kept(rep, ACCOUNT, now)


def test_the_metric_is_registered_as_a_ratio_where_more_is_better():
    metric = METRICS["commitment_kept"]
    assert (metric.unit, metric.higher_is_better) == ("ratio", True)
    assert MAX_COMMITMENT_KEPT == 1.2


def test_no_history_is_no_data():
    assert kept(history(), SIX_MONTHS_ON) is None
    # Won deals without a promise say nothing about promises.
    assert kept(history(opportunities=[won(1, 500_000, START)]), SIX_MONTHS_ON) is None


def test_a_partial_year_expects_the_elapsed_share_of_the_commitment():
    # 6 months after the start: expected 1,000,000 x 6 / 12 = 500,000; 300,000 won -> 0.6.
    rep = history(promises=[promise(1, 1_000_000)],
                  opportunities=[won(1, 100_000, START + timedelta(days=30)),
                                 won(1, 200_000, datetime(2026, 2, 1, tzinfo=UTC))])
    [row] = promise_rows(rep, SIX_MONTHS_ON)
    assert row == PromiseRow(row.bid_id, 1, START, 1_000_000, 6, 300_000, 500_000.0, 0.6, None)
    assert kept(rep, SIX_MONTHS_ON) == pytest.approx(0.6)
    # One second short of six months only five are complete: 300,000 / 416,666.67 = 0.72.
    assert kept(rep, SIX_MONTHS_ON - SECOND) == pytest.approx(300_000 / (1_000_000 * 5 / 12))


def test_over_delivery_is_capped():
    rep = history(promises=[promise(1, 120_000)],
                  opportunities=[won(1, 500_000, START + timedelta(days=10))])
    # 2 months: expected 20,000, actual 500,000 -> 25 capped at 1.2.
    assert kept(rep, months_after(START, 2)) == pytest.approx(1.2)


def test_a_promise_younger_than_a_month_does_not_count_yet():
    rep = history(promises=[promise(1, 1_000_000)],
                  opportunities=[won(1, 50_000, START + timedelta(days=3))])
    [row] = promise_rows(rep, START + timedelta(days=29))
    assert (row.months_elapsed, row.expected_yuan, row.kept, row.actual_yuan) == (0, 0.0, None,
                                                                                  50_000)
    assert kept(rep, START + timedelta(days=29)) is None
    # 15 October 12:00 is one whole month on.
    assert kept(rep, datetime(2025, 10, 15, 12, tzinfo=UTC)) == pytest.approx(50_000 / 83_333.33,
                                                                               rel=1e-6)


def test_a_zero_commitment_is_not_a_promise():
    rep = history(promises=[promise(1, 0), promise(2, 600_000)],
                  opportunities=[won(1, 900_000, START + timedelta(days=5)),
                                 won(2, 150_000, START + timedelta(days=5))])
    rows = promise_rows(rep, SIX_MONTHS_ON)
    assert [row.account_id for row in rows] == [2]
    assert kept(rep, SIX_MONTHS_ON) == pytest.approx(150_000 / 300_000)
    assert kept(history(promises=[promise(1, 0)]), SIX_MONTHS_ON) is None


def test_several_promises_are_averaged_weighted_by_what_was_expected_so_far():
    # A: 1,000,000 over 6 months, 300,000 won -> kept 0.6, expected 500,000.
    # B: 240,000 that ran its 12 months (started a year before A's 6th month), 360,000 won
    #    -> 1.5 capped at 1.2, expected 240,000.
    # (0.6 x 500,000 + 1.2 x 240,000) / 740,000 = 588,000 / 740,000 (rules/README.md's example).
    b_start = datetime(2025, 1, 10, tzinfo=UTC)
    rep = history(promises=[promise(1, 1_000_000), promise(2, 240_000, b_start)],
                  opportunities=[won(1, 300_000, START + timedelta(days=40)),
                                 won(2, 360_000, datetime(2025, 6, 1, tzinfo=UTC))])
    rows = promise_rows(rep, SIX_MONTHS_ON)
    assert [(row.account_id, row.months_elapsed, row.expected_yuan, row.kept) for row in rows] == [
        (2, 12, 240_000.0, 1.2), (1, 6, 500_000.0, 0.6)]  # oldest first
    assert kept(rep, SIX_MONTHS_ON) == pytest.approx(588_000 / 740_000)


def test_revenue_outside_the_window_or_of_another_account_does_not_count():
    rep = history(promises=[promise(1, 1_200_000)], opportunities=[
        won(1, 700_000, START - SECOND),  # before the award took effect
        won(2, 700_000, START + timedelta(days=5)),  # another account
        won(1, 100_000, START),  # at the start: counts
        won(1, 100_000, months_after(START, 12)),  # the last instant of the window: counts
        won(1, 900_000, months_after(START, 12) + SECOND),  # after the 12 months
    ])
    later = datetime(2027, 6, 1, tzinfo=UTC)
    [row] = promise_rows(rep, later)
    assert (row.months_elapsed, row.actual_yuan, row.expected_yuan) == (12, 200_000, 1_200_000)
    assert kept(rep, later) == pytest.approx(200_000 / 1_200_000)


def test_facts_after_now_are_ignored():
    rep = history(promises=[promise(1, 1_200_000),
                            promise(2, 1_200_000, SIX_MONTHS_ON + SECOND)],
                  opportunities=[won(1, 100_000, START + timedelta(days=20)),
                                 won(1, 500_000, SIX_MONTHS_ON + SECOND)],
                  lost=[LostAccountFact(1, SIX_MONTHS_ON + SECOND, False)])
    rows = promise_rows(rep, SIX_MONTHS_ON)
    assert [(row.account_id, row.actual_yuan, row.months_elapsed, row.ended_at)
            for row in rows] == [(1, 100_000, 6, None)]
    assert kept(rep, SIX_MONTHS_ON) == pytest.approx(100_000 / 600_000)
    # A deal won later but still open at `now` (negotiating) does not count either.
    open_then = OpportunityFact(next(_ids), 1, "Internet", 400_000, Stage.WON,
                                START, SIX_MONTHS_ON + SECOND,
                                (StageChange(Stage.NEGOTIATION, START),
                                 StageChange(Stage.WON, SIX_MONTHS_ON + SECOND)))
    assert promise_rows(history(promises=[promise(1, 1_200_000)],
                                opportunities=[open_then]), SIX_MONTHS_ON)[0].actual_yuan == 0


def test_the_promise_ends_when_the_rep_loses_the_account():
    lost_at = months_after(START, 3) + timedelta(days=10)
    rep = history(promises=[promise(1, 1_200_000)],
                  opportunities=[won(1, 150_000, START + timedelta(days=40)),
                                 won(1, 900_000, lost_at + timedelta(days=5))],  # not theirs
                  lost=[LostAccountFact(1, START - timedelta(days=400), True),  # an old loss
                        LostAccountFact(1, lost_at, False)])
    [row] = promise_rows(rep, SIX_MONTHS_ON)
    # 3 whole months to the loss: expected 300,000; 150,000 won -> 0.5.
    assert (row.months_elapsed, row.actual_yuan, row.expected_yuan, row.ended_at) == (
        3, 150_000, 300_000.0, lost_at)
    assert kept(rep, SIX_MONTHS_ON) == pytest.approx(0.5)


def test_whole_months_follow_the_calendar_and_clamp_the_day():
    end_of_january = datetime(2026, 1, 31, 9, tzinfo=UTC)
    assert months_after(end_of_january, 1) == datetime(2026, 2, 28, 9, tzinfo=UTC)
    assert whole_months(end_of_january, datetime(2026, 2, 28, 9, tzinfo=UTC), 12) == 1
    assert whole_months(end_of_january, datetime(2026, 2, 28, 8, tzinfo=UTC), 12) == 0
    assert whole_months(end_of_january, datetime(2026, 3, 31, 9, tzinfo=UTC), 12) == 2
    assert whole_months(end_of_january, datetime(2030, 1, 1, tzinfo=UTC), 12) == 12
    assert whole_months(end_of_january, end_of_january - SECOND, 12) == 0


def test_whole_months_count_on_the_departments_calendar():
    # Awarded at 00:30 on 1 March Beijing time (16:30 UTC on 28 February): a whole month is
    # over at 00:30 on 1 April there, not at 16:30 UTC on 28 March.
    beijing = ZoneInfo("Asia/Shanghai")
    start = datetime(2026, 2, 28, 16, 30, tzinfo=UTC)
    rep = RepHistory(rep_id=7, hired_on=date(2020, 1, 1), zone=beijing, accounts_held=30,
                     promises=(promise(1, 1_200_000, start),),
                     opportunities=(won(1, 50_000, start + timedelta(days=3)),))
    month_on = datetime(2026, 4, 1, 0, 30, tzinfo=beijing)
    for now in (datetime(2026, 3, 28, 16, 30, tzinfo=UTC), datetime(2026, 3, 30, 12, 0,
                                                                      tzinfo=beijing),
                month_on - SECOND):
        [row] = promise_rows(rep, now)
        assert (row.months_elapsed, row.kept) == (0, None)
        assert kept(rep, now) is None
    [row] = promise_rows(rep, month_on)
    assert (row.months_elapsed, row.expected_yuan) == (1, 100_000.0)
    assert kept(rep, month_on) == pytest.approx(0.5)
    # Twelve months on Beijing's calendar end at 00:30 on 1 March 2027 there.
    year_on = datetime(2027, 3, 1, 0, 30, tzinfo=beijing)
    assert promise_rows(rep, year_on - SECOND)[0].months_elapsed == 11
    assert promise_rows(rep, year_on)[0].months_elapsed == 12
