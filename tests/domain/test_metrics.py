"""Track-record metrics: hand-computed values, window edges, missing data and as-of-now."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidhub.domain.facts import (
    AccountFacts,
    ForecastFact,
    IncidentFact,
    LostAccountFact,
    OpportunityFact,
    PromiseFact,
    RepHistory,
    Stage,
    StageChange,
)
from bidhub.domain.metrics import (
    DAYS_PER_MONTH,
    METRICS,
    OPEN_STAGES,
    ForecastRow,
    FunnelStep,
    accountability_incidents,
    capacity_headroom,
    closed_at,
    complete_months,
    forecast_accuracy,
    forecast_rows,
    funnel_conversion,
    funnel_counts,
    furthest_stage,
    incident_status_at,
    industry_experience,
    months_before,
    open_incidents,
    retention,
    revenue_attainment,
    stage_at,
    stage_conversion,
    tenure_months,
    track_record,
    weighted_pipeline,
    win_rate,
)

# T for inTent: a bare "I" reads like a 1 (ruff E741).
P, T, R, N, W, L = (Stage.POTENTIAL, Stage.INTENT, Stage.PROPOSAL, Stage.NEGOTIATION,
                    Stage.WON, Stage.LOST)
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
Y1 = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)  # NOW - 12 months
M6 = datetime(2025, 9, 15, 12, 0, tzinfo=UTC)  # NOW - 6 months
Y2 = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)  # NOW - 24 months
DAY, SECOND = timedelta(days=1), timedelta(seconds=1)
ACCOUNT = AccountFacts(account_id=1, industry="Internet", branch="BJ", annual_value_yuan=500_000)

EXPECTED_NAMES = {
    "win_rate", "accounts_held", "tenure_months", "open_incidents", "stage_conversion",
    "forecast_accuracy", "weighted_pipeline", "revenue_attainment", "industry_experience",
    "capacity_headroom", "accountability_incidents", "retention", "unreviewed_losses",
    "commitment_kept",
}

_ids = iter(range(1, 10**9))


def opp(*path: tuple[Stage, datetime], amount: int = 100_000, industry: str = "internet",
        closed: datetime | None = None) -> OpportunityFact:
    """An opportunity that went through `path` (stage, when); opened at the first step and,
    if the last step is won or lost, closed then (unless `closed` says otherwise)."""
    final = path[-1][0]
    if closed is None and final in (W, L):
        closed = path[-1][1]
    return OpportunityFact(opportunity_id=next(_ids), account_id=1, industry=industry,
                           amount_yuan=amount, stage=final, opened_at=path[0][1],
                           closed_at=closed,
                           history=tuple(StageChange(stage, at) for stage, at in path))


def rep(accounts_held: int = 30, **facts) -> RepHistory:
    return RepHistory(rep_id=7, hired_on=date(2020, 1, 1), zone=UTC, accounts_held=accounts_held,
                      **{key: tuple(value) for key, value in facts.items()})


def forecast(year: int, month: int, forecast_yuan: int, actual_yuan: int | None) -> ForecastFact:
    return ForecastFact(date(year, month, 1), forecast_yuan, actual_yuan)


# --- registry and windows ---------------------------------------------------------------


def test_the_registry_names_every_metric_and_documents_it():
    assert set(METRICS) == EXPECTED_NAMES
    for name, metric in METRICS.items():
        assert metric.name == name
        assert metric.label and metric.formula and metric.window and metric.when_missing
        assert metric.compute.__doc__, name
        assert metric.unit, name
    assert set(track_record(rep(), ACCOUNT, NOW)) == EXPECTED_NAMES


def test_months_before_keeps_the_instant_and_clamps_the_day():
    assert months_before(NOW, 12) == Y1
    assert months_before(NOW, 6) == M6
    assert months_before(datetime(2026, 3, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2024, 2, 29, tzinfo=UTC), 12) == datetime(2023, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 10, tzinfo=UTC), 1) == datetime(2025, 12, 10, tzinfo=UTC)


def test_complete_months_end_before_the_month_holding_now():
    assert complete_months(NOW, 6) == [date(2025, 9, 1), date(2025, 10, 1), date(2025, 11, 1),
                                       date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1)]
    # At midnight on 1 March, March has not ended: February is the latest complete month.
    assert complete_months(datetime(2026, 3, 1, tzinfo=UTC), 1) == [date(2026, 2, 1)]
    assert complete_months(datetime(2026, 1, 31, tzinfo=UTC), 2) == [date(2025, 11, 1),
                                                                     date(2025, 12, 1)]


# --- tenure ----------------------------------------------------------------------------


def test_tenure_counts_whole_days_from_midnight_of_the_hire_day_in_the_zone():
    beijing = RepHistory(rep_id=9, hired_on=date(2025, 9, 1), zone=ZoneInfo("Asia/Shanghai"),
                         accounts_held=0)
    # 3 March 2026 begins at 16:00 UTC on 2 March in Beijing, 183 days after 1 September
    # began there; midnight UTC of the hire day (08:00 in Beijing) is not where it counts from.
    assert tenure_months(beijing, ACCOUNT, datetime(2026, 3, 2, 15, 59, 59, tzinfo=UTC)) == \
        182 / DAYS_PER_MONTH
    assert tenure_months(beijing, ACCOUNT, datetime(2026, 3, 2, 16, 0, tzinfo=UTC)) == \
        183 / DAYS_PER_MONTH
    # New York's clocks went back on 2 November 2025: that day is still one day, so the count
    # steps at midnight there (05:00 UTC in March, 04:00 UTC in September).
    new_york = RepHistory(rep_id=9, hired_on=date(2025, 9, 1),
                          zone=ZoneInfo("America/New_York"), accounts_held=0)
    assert tenure_months(new_york, ACCOUNT, datetime(2026, 3, 3, 4, 59, 59, tzinfo=UTC)) == \
        182 / DAYS_PER_MONTH
    assert tenure_months(new_york, ACCOUNT, datetime(2026, 3, 3, 5, 0, tzinfo=UTC)) == \
        183 / DAYS_PER_MONTH
    # Hired on a later day there: none yet.
    assert tenure_months(beijing, ACCOUNT, datetime(2025, 8, 31, 15, 59, tzinfo=UTC)) == 0.0


# --- a new rep --------------------------------------------------------------------------


def test_a_new_rep_is_neither_punished_nor_rewarded():
    new = RepHistory(rep_id=8, hired_on=NOW.date(), zone=UTC, accounts_held=0)
    assert track_record(new, ACCOUNT, NOW) == {
        "win_rate": None, "accounts_held": 0.0,
        "tenure_months": 0.0,  # hired today: 0 whole days
        "open_incidents": 0.0, "stage_conversion": None, "forecast_accuracy": None,
        "weighted_pipeline": None, "revenue_attainment": None, "industry_experience": None,
        "capacity_headroom": 40.0,  # 40 - 0
        "accountability_incidents": None, "retention": None, "unreviewed_losses": 0.0,
        "commitment_kept": None,
    }
    assert funnel_conversion(new, NOW) == [FunnelStep(P, T, 0, 0, None),
                                          FunnelStep(T, R, 0, 0, None),
                                          FunnelStep(R, N, 0, 0, None),
                                          FunnelStep(N, W, 0, 0, None)]
    assert funnel_counts(new, NOW) == {P: 0, T: 0, R: 0, N: 0}
    assert forecast_rows(new, NOW) == [ForecastRow(month, None, None, None)
                                       for month in complete_months(NOW, 6)]


# --- opportunities ----------------------------------------------------------------------


def test_all_opportunities_lost_is_a_real_zero_not_missing_data():
    history = rep(opportunities=[
        opp((P, NOW - 60 * DAY), (T, NOW - 50 * DAY), (L, NOW - 20 * DAY)),
        opp((P, NOW - 90 * DAY), (L, NOW - 30 * DAY)),  # lost while potential
        opp((P, NOW - 80 * DAY), (R, NOW - 70 * DAY), (L, NOW - 10 * DAY)),
    ])
    assert win_rate(history, ACCOUNT, NOW) == 0.0  # 0 won / 3 closed
    # Qualified (reached intent+) and closed: the first and third; 0 won / 2.
    assert stage_conversion(history, ACCOUNT, NOW) == 0.0
    assert weighted_pipeline(history, ACCOUNT, NOW) == 0.0  # had opportunities, none open
    assert industry_experience(history, ACCOUNT, NOW) is None  # no won revenue
    # Furthest stages: intent, potential, proposal.
    assert funnel_conversion(history, NOW) == [
        FunnelStep(P, T, 3, 2, 2 / 3),
        FunnelStep(T, R, 2, 1, 1 / 2),
        FunnelStep(R, N, 1, 0, 0.0),
        FunnelStep(N, W, 0, 0, None),
    ]


def test_a_deal_won_and_later_lost_reached_won_in_the_funnel_as_in_stage_conversion():
    history = rep(opportunities=[
        # won straight from potential, then lost: it reached closed-won
        opp((P, NOW - 90 * DAY), (W, NOW - 60 * DAY), (L, NOW - 30 * DAY)),
        # lost while potential: it never qualified
        opp((P, NOW - 90 * DAY), (L, NOW - 30 * DAY)),
    ])
    # Closed and past potential: the first, not won -> 0 / 1.
    assert stage_conversion(history, ACCOUNT, NOW) == 0.0
    assert furthest_stage(history.opportunities[0], NOW) is W
    assert funnel_conversion(history, NOW) == [
        FunnelStep(P, T, 2, 1, 1 / 2),  # the first passed intent on its way to won
        FunnelStep(T, R, 1, 1, 1.0),
        FunnelStep(R, N, 1, 1, 1.0),
        FunnelStep(N, W, 1, 1, 1.0),
    ]


@st.composite
def closed_opportunities(draw) -> OpportunityFact:
    """Opened in the last 12 months and closed before NOW: won, lost, or won and then lost."""
    opened = NOW - timedelta(days=draw(st.integers(200, 360)))
    stages = draw(st.lists(st.sampled_from(OPEN_STAGES), min_size=1, max_size=4))
    moments = sorted(opened + timedelta(days=draw(st.integers(0, 60))) for _ in stages[1:])
    path = list(zip(stages, [opened, *moments], strict=True))
    for final in draw(st.sampled_from([(W,), (L,), (W, L)])):
        path.append((final, path[-1][1] + timedelta(days=draw(st.integers(0, 30)))))
    return opp(*path)


@settings(max_examples=100, deadline=None)
@given(st.lists(closed_opportunities(), max_size=8))
def test_the_funnel_counts_the_stages_stage_conversion_counts(opportunities):
    """Over closed opportunities, the funnel's "reached intent" is stage conversion's
    denominator and its "reached won" every deal that was won, kept or later lost."""
    history = rep(opportunities=opportunities)
    steps = funnel_conversion(history, NOW)
    won_now = sum(opportunity.stage is W for opportunity in opportunities)
    qualified = steps[1].entered
    assert stage_conversion(history, ACCOUNT, NOW) == (won_now / qualified if qualified
                                                       else None)
    assert steps[-1].advanced == sum(any(change.stage is W for change in opportunity.history)
                                     for opportunity in opportunities)


def test_only_potential_losses_leave_stage_conversion_missing():
    history = rep(opportunities=[opp((P, NOW - 60 * DAY), (L, NOW - 20 * DAY))])
    assert stage_conversion(history, ACCOUNT, NOW) is None
    assert win_rate(history, ACCOUNT, NOW) == 0.0


def without_history(stage: Stage, opened: datetime, closed: datetime | None) -> OpportunityFact:
    """An opportunity as an export of current stages alone gives it: no stage history."""
    return replace(opp((P, opened)), stage=stage, closed_at=closed, history=())


def test_a_loss_without_stage_history_counts_in_stage_conversion():
    """A file of current stages alone says a deal was lost, not that it was lost at potential:
    the loss counts, as in the win rate, so one won and three lost is 25%, not 1 of 1."""
    history = rep(opportunities=[
        without_history(W, NOW - 90 * DAY, NOW - 30 * DAY),
        *(without_history(L, NOW - 90 * DAY, NOW - 30 * DAY) for _ in range(3)),
    ])
    assert stage_conversion(history, ACCOUNT, NOW) == 0.25 == win_rate(history, ACCOUNT, NOW)
    # One whose history says it was lost while potential still stays out.
    history = rep(opportunities=[*history.opportunities,
                                 opp((P, NOW - 60 * DAY), (L, NOW - 20 * DAY))])
    assert stage_conversion(history, ACCOUNT, NOW) == 0.25
    # An open deal without history has not had its chance: it stays out as before.
    history = rep(opportunities=[*history.opportunities, without_history(N, NOW - 9 * DAY, None)])
    assert stage_conversion(history, ACCOUNT, NOW) == 0.25


def test_win_rate_window_includes_exactly_twelve_months_ago_and_now():
    history = rep(opportunities=[
        opp((P, Y1 - 90 * DAY), (W, Y1)),  # closed exactly 12 months ago: in
        opp((P, Y1 - 90 * DAY), (L, Y1 - SECOND)),  # one second earlier: out
        opp((P, NOW - 9 * DAY), (L, NOW)),  # closed at now: in
        opp((P, NOW - 9 * DAY), (N, NOW - 5 * DAY), (W, NOW + DAY)),  # won after now: open
    ])
    assert win_rate(history, ACCOUNT, NOW) == 0.5  # 1 won / (1 won + 1 lost)
    assert funnel_counts(history, NOW) == {P: 0, T: 0, R: 0, N: 1}


def test_stage_conversion_and_funnel_by_hand():
    history = rep(opportunities=[
        # 1 won through every stage
        opp((P, NOW - 200 * DAY), (T, NOW - 190 * DAY), (R, NOW - 180 * DAY),
            (N, NOW - 170 * DAY), (W, NOW - 160 * DAY)),
        # 2 won, skipping intent (skipping counts as passing it)
        opp((P, NOW - 150 * DAY), (R, NOW - 140 * DAY), (W, NOW - 100 * DAY)),
        # 3 lost in negotiation
        opp((P, NOW - 120 * DAY), (T, NOW - 110 * DAY), (R, NOW - 100 * DAY),
            (N, NOW - 90 * DAY), (L, NOW - 80 * DAY)),
        # 4 lost while potential
        opp((P, NOW - 60 * DAY), (L, NOW - 50 * DAY)),
        # 5 still open in intent
        opp((P, NOW - 40 * DAY), (T, NOW - 30 * DAY)),
        # 6 opened 13 months ago, won 11 months ago: outside the cohort, inside win_rate
        opp((P, Y1 - 30 * DAY), (T, Y1 - 20 * DAY), (W, Y1 + 30 * DAY)),
        # 7 opened exactly 12 months ago (inside), lost in intent
        opp((P, Y1), (T, Y1 + 10 * DAY), (L, Y1 + 40 * DAY)),
    ])
    # Closed and qualified (intent+) in the cohort: 1 won, 2 won, 3 lost, 7 lost -> 2 / 4.
    assert stage_conversion(history, ACCOUNT, NOW) == 0.5
    # Cohort 1,2,3,4,5,7; furthest ranks (P=0..W=4): 4, 4, 3, 0, 1, 1.
    steps = funnel_conversion(history, NOW)
    assert steps == [
        FunnelStep(P, T, 6, 5, 5 / 6),  # all 6 entered; all but #4 reached intent+
        FunnelStep(T, R, 5, 3, 3 / 5),  # 1, 2, 3 reached proposal+
        FunnelStep(R, N, 3, 3, 1.0),  # 2 skipped negotiation but was won
        FunnelStep(N, W, 3, 2, 2 / 3),  # 1 and 2 won
    ]
    # The step rates telescope: 5/6 * 3/5 * 1 * 2/3 = 1/3 = 2 won / 6 opened.
    assert math.prod(step.rate for step in steps) == pytest.approx(2 / 6)
    # Closed in the last 12 months: 1 W, 2 W, 3 L, 4 L, 6 W, 7 L -> 3 / 6.
    assert win_rate(history, ACCOUNT, NOW) == 0.5
    assert funnel_counts(history, NOW) == {P: 0, T: 1, R: 0, N: 0}


def test_weighted_pipeline_by_hand():
    history = rep(opportunities=[
        opp((P, NOW - 10 * DAY), amount=100_000),  # 100,000 x 0.1 = 10,000
        opp((P, NOW - 20 * DAY), (T, NOW - 5 * DAY), amount=200_000),  # x 0.3 = 60,000
        opp((P, NOW - 30 * DAY), (R, NOW - 5 * DAY), amount=50_000),  # x 0.5 = 25,000
        opp((P, NOW - 40 * DAY), (N, NOW - 5 * DAY), amount=300_000),  # x 0.7 = 210,000
        opp((P, NOW - 50 * DAY), (W, NOW - 5 * DAY), amount=1_000_000),  # won: not open
        opp((P, NOW - 50 * DAY), (L, NOW - 5 * DAY), amount=80_000),  # lost: not open
        opp((P, NOW + DAY), amount=500_000),  # opened after now: not yet there
    ])
    # 10,000 + 60,000 + 25,000 + 210,000 = 305,000
    assert weighted_pipeline(history, ACCOUNT, NOW) == pytest.approx(305_000.0)
    assert funnel_counts(history, NOW) == {P: 1, T: 1, R: 1, N: 1}


def test_an_opportunity_is_seen_as_it_stood_at_now():
    later_won = opp((P, NOW - 50 * DAY), (R, NOW - 20 * DAY), (W, NOW + 5 * DAY))
    assert stage_at(later_won, NOW) is R
    assert furthest_stage(later_won, NOW) is R
    assert stage_at(later_won, NOW + 6 * DAY) is W
    assert stage_at(opp((P, NOW + DAY)), NOW) is None
    # Moved back from negotiation to proposal: it stands in proposal, furthest was negotiation.
    moved_back = opp((P, NOW - 9 * DAY), (N, NOW - 5 * DAY), (R, NOW - 2 * DAY))
    assert (stage_at(moved_back, NOW), furthest_stage(moved_back, NOW)) == (R, N)
    # Lost with no close date anywhere: closed, but in no window.
    undated = OpportunityFact(1, 1, "internet", 10, L, NOW - 9 * DAY)
    assert stage_at(undated, NOW) is L and closed_at(undated) is None
    assert win_rate(rep(opportunities=[undated]), ACCOUNT, NOW) is None
    # Won without closed_at: the date of the stage change into won is used.
    assert closed_at(opp((P, NOW - 9 * DAY), (W, NOW - DAY), closed=None)) == NOW - DAY


def test_a_deal_won_and_later_lost_stood_won_in_between():
    won_at, lost_at = NOW - 60 * DAY, NOW - 30 * DAY
    between = NOW - 45 * DAY
    for closed in (lost_at, won_at):  # the close date of the loss, or left at the win
        deal = opp((P, NOW - 90 * DAY), (R, NOW - 80 * DAY), (W, won_at), (L, lost_at),
                   closed=closed)
        history = rep(opportunities=[deal])
        assert stage_at(deal, between) is W
        assert win_rate(history, ACCOUNT, between) == 1.0
        assert funnel_counts(history, between) == {P: 0, T: 0, R: 0, N: 0}
        assert weighted_pipeline(history, ACCOUNT, between) == 0.0
        assert stage_conversion(history, ACCOUNT, between) == 1.0
        # Lost from the loss on, whichever date the close column kept.
        assert stage_at(deal, NOW) is L
        assert win_rate(history, ACCOUNT, NOW) == 0.0


def test_a_deal_lost_and_re_opened_stood_lost_until_it_was_re_opened():
    lost_at, reopened_at, lost_again_at = NOW - 80 * DAY, NOW - 60 * DAY, NOW - 20 * DAY
    deal = opp((P, NOW - 90 * DAY), (L, lost_at), (T, reopened_at), (L, lost_again_at))
    undated = OpportunityFact(deal.opportunity_id, 1, "internet", 10, L, deal.opened_at,
                              None, deal.history)
    for fact in (deal, undated):
        assert stage_at(fact, lost_at + DAY) is L
        assert stage_at(fact, reopened_at + DAY) is T
        assert stage_at(fact, NOW) is L
        # It closed when it was lost the second time: that is the loss the window reads.
        assert closed_at(fact) == lost_again_at
        assert win_rate(rep(opportunities=[fact]), ACCOUNT, reopened_at + DAY) is None
        assert weighted_pipeline(rep(opportunities=[fact]), ACCOUNT,
                                 reopened_at + DAY) == pytest.approx(3.0 if fact is undated
                                                                     else 30_000.0)
    still_open = opp((P, NOW - 90 * DAY), (L, lost_at), (T, reopened_at))
    assert stage_at(still_open, lost_at + DAY) is L
    assert win_rate(rep(opportunities=[still_open]), ACCOUNT, lost_at + DAY) == 0.0


@st.composite
def stage_paths(draw) -> list[tuple[Stage, datetime]]:
    """A deal's path through any stages, back and forth, won and lost and re-opened, from
    some 400 days before NOW to some days after; no stage twice in a row."""
    moment = NOW - timedelta(days=draw(st.integers(0, 400)))
    path = [(P, moment)]
    for stage in draw(st.lists(st.sampled_from(list(Stage)), max_size=6)):
        if stage is path[-1][0]:
            continue
        moment += timedelta(days=draw(st.integers(0, 90)))
        path.append((stage, moment))
    return path


def cut_at(path: list[tuple[Stage, datetime]], moment: datetime) -> OpportunityFact | None:
    """The deal as a CRM export made at `moment` would have shown it."""
    seen = [(stage, at) for stage, at in path if at <= moment]
    if not seen:
        return None
    return opp(*seen)


@settings(max_examples=150, deadline=None)
@given(st.lists(stage_paths(), max_size=6), st.integers(0, 500), st.sampled_from([1, 7, 30]))
def test_a_past_moment_reads_each_deal_as_its_history_stood_then(paths, back, hours):
    """Every metric at a past moment equals the same metric over the deals as they stood
    then: the stage history is the one account of where a deal was."""
    moment = NOW - timedelta(days=back, hours=hours)
    deals = [opp(*path) for path in paths]
    cut = [fact for fact in (cut_at(path, moment) for path in paths) if fact is not None]
    promise = PromiseFact(1, 1, 50_000, moment - 200 * DAY)
    assert ([stage_at(deal, moment) for deal in deals if deal.opened_at <= moment]
            == [fact.stage for fact in cut])
    assert (track_record(rep(opportunities=deals, promises=[promise]), ACCOUNT, moment)
            == track_record(rep(opportunities=cut, promises=[promise]), ACCOUNT, moment))
    assert (funnel_conversion(rep(opportunities=deals), moment)
            == funnel_conversion(rep(opportunities=cut), moment))
    assert (funnel_counts(rep(opportunities=deals), moment)
            == funnel_counts(rep(opportunities=cut), moment))


# --- forecasts --------------------------------------------------------------------------


def test_forecast_accuracy_and_attainment_by_hand():
    history = rep(forecasts=[
        forecast(2025, 8, 100_000, 0),  # 7 months back: outside the window
        forecast(2025, 9, 100_000, 90_000),  # |90k - 100k| / 100k = 0.1
        forecast(2025, 10, 0, 0),  # forecast 0, actual 0: perfect, 0.0
        forecast(2025, 11, 0, 50_000),  # forecast 0, actual > 0: 1.0
        forecast(2025, 12, 200_000, None),  # no actual: skipped
        forecast(2026, 1, 100_000, 350_000),  # 2.5, capped at 1.0
        forecast(2026, 2, 100_000, 100_000),  # 0.0
        forecast(2026, 3, 100_000, 0),  # current month, not complete: outside
    ])
    # Usable errors 0.1, 0, 1, 1, 0: mean 2.1 / 5 = 0.42 -> accuracy 0.58.
    assert forecast_accuracy(history, ACCOUNT, NOW) == pytest.approx(0.58)
    # Usable months: actual 90k + 0 + 50k + 350k + 100k = 590k over
    # forecast 100k + 0 + 0 + 100k + 100k = 300k -> 590 / 300.
    assert revenue_attainment(history, ACCOUNT, NOW) == pytest.approx(590 / 300)
    rows = forecast_rows(history, NOW)
    assert [row.month for row in rows] == complete_months(NOW, 6)
    assert rows[0] == ForecastRow(date(2025, 9, 1), 100_000, 90_000, pytest.approx(0.1))
    assert rows[3] == ForecastRow(date(2025, 12, 1), 200_000, None, None)
    assert [row.abs_pct_error for row in rows[1:3]] == [0.0, 1.0]


def test_zero_forecast_with_zero_actual_is_perfect():
    history = rep(forecasts=[forecast(2026, 2, 0, 0)])
    assert forecast_accuracy(history, ACCOUNT, NOW) == 1.0
    assert revenue_attainment(history, ACCOUNT, NOW) is None  # forecasts sum to 0


def test_zero_forecast_with_an_actual_is_a_full_miss():
    history = rep(forecasts=[forecast(2026, 2, 0, 10_000)])
    assert forecast_accuracy(history, ACCOUNT, NOW) == 0.0  # 1 - 1
    assert revenue_attainment(history, ACCOUNT, NOW) is None  # forecasts sum to 0


def test_months_without_an_actual_are_not_data():
    history = rep(forecasts=[forecast(2026, 1, 100_000, None), forecast(2026, 2, 50_000, None)])
    assert forecast_accuracy(history, ACCOUNT, NOW) is None
    assert revenue_attainment(history, ACCOUNT, NOW) is None


def test_attainment_is_clipped_at_two():
    history = rep(forecasts=[forecast(2026, 2, 100_000, 500_000)])
    assert revenue_attainment(history, ACCOUNT, NOW) == 2.0  # 5.0 clipped
    assert forecast_accuracy(history, ACCOUNT, NOW) == 0.0  # error 4.0 capped at 1


def test_facts_for_the_same_month_are_added_together():
    history = rep(forecasts=[ForecastFact(date(2026, 2, 1), 60_000, 50_000),
                             ForecastFact(date(2026, 2, 15), 40_000, None)])
    # forecast 60k + 40k = 100k, actual 50k: error 0.5
    assert forecast_rows(history, NOW, months=1) == [
        ForecastRow(date(2026, 2, 1), 100_000, 50_000, 0.5)]
    assert forecast_accuracy(history, ACCOUNT, NOW) == 0.5
    assert revenue_attainment(history, ACCOUNT, NOW) == 0.5


# --- industry, capacity, incidents, retention -------------------------------------------


def test_industry_experience_by_hand():
    history = rep(opportunities=[
        opp((P, NOW - 60 * DAY), (W, NOW - 30 * DAY), amount=300_000, industry="Internet"),
        opp((P, NOW - 430 * DAY), (W, NOW - 400 * DAY), amount=100_000, industry=" internet "),
        opp((P, NOW - 130 * DAY), (W, NOW - 100 * DAY), amount=600_000, industry="Finance"),
        opp((P, Y2 - 60 * DAY), (W, Y2), amount=700_000, industry="Internet"),  # edge: in
        opp((P, Y2 - 60 * DAY), (W, Y2 - DAY), amount=1_000_000, industry="Internet"),  # out
        opp((P, NOW - 60 * DAY), (L, NOW - 9 * DAY), amount=500_000, industry="Internet"),
    ])
    # Won in window: 300k + 100k + 600k + 700k = 1,700k; Internet 300k + 100k + 700k = 1,100k.
    assert industry_experience(history, ACCOUNT, NOW) == pytest.approx(11 / 17)
    finance = AccountFacts(2, "finance", "BJ", 1)
    assert industry_experience(history, finance, NOW) == pytest.approx(6 / 17)
    assert industry_experience(history, AccountFacts(3, "Retail", "BJ", 1), NOW) == 0.0
    assert industry_experience(history, AccountFacts(4, " ", "BJ", 1), NOW) is None


@pytest.mark.parametrize(("held", "headroom"), [(0, 40.0), (35, 5.0), (40, 0.0), (45, 0.0)])
def test_capacity_headroom_counts_free_places_below_forty(held, headroom):
    assert capacity_headroom(rep(accounts_held=held), ACCOUNT, NOW) == headroom


def test_accountability_incidents_count_the_last_six_months_in_any_status():
    incidents = [
        IncidentFact(1, 1, NOW - 10 * DAY, "open"),  # in
        IncidentFact(2, 1, M6, "accepted", M6 + DAY),  # exactly 6 months ago: in
        IncidentFact(3, 1, M6 - SECOND, "upheld"),  # just outside
        IncidentFact(4, 1, NOW + DAY, "open"),  # after now: not yet seen
        IncidentFact(5, 1, NOW - 100 * DAY, "explained"),  # in
    ]
    history = rep(incidents=incidents)
    assert accountability_incidents(history, ACCOUNT, NOW) == 3.0  # 1, 2, 5
    assert open_incidents(history, ACCOUNT, NOW) == 2.0  # 1 open, 3 upheld; 4 is after now


def test_an_incident_counts_open_until_it_was_explained_or_decided():
    seen, explained, decided = NOW - 30 * DAY, NOW - 20 * DAY, NOW - 10 * DAY
    accepted = IncidentFact(1, 1, seen, "accepted", decided, explained)
    upheld_unexplained = IncidentFact(2, 1, seen, "upheld", decided)
    explained_only = IncidentFact(3, 1, seen, "explained", None, explained)
    imported = IncidentFact(4, 1, seen, "accepted")  # no dates: its status holds throughout
    # Imported as explained (no date), accepted later: it had been explained.
    accepted_later = IncidentFact(5, 1, seen, "accepted", decided)
    history = rep(incidents=[accepted, upheld_unexplained, explained_only, imported,
                             accepted_later])
    assert [incident_status_at(incident, explained - SECOND)
            for incident in history.incidents] == ["open", "open", "open", "accepted",
                                                   "explained"]
    assert [incident_status_at(incident, explained)
            for incident in history.incidents] == ["explained", "open", "explained", "accepted",
                                                   "explained"]
    assert [incident_status_at(incident, decided)
            for incident in history.incidents] == ["accepted", "upheld", "explained",
                                                   "accepted", "accepted"]
    assert open_incidents(history, ACCOUNT, explained - SECOND) == 3.0
    assert open_incidents(history, ACCOUNT, explained) == 1.0
    assert open_incidents(history, ACCOUNT, NOW) == 1.0


def test_accountability_incidents_are_missing_when_nothing_was_held():
    old = [IncidentFact(1, 1, NOW - 300 * DAY, "upheld")]  # outside the window
    assert accountability_incidents(rep(0, incidents=old), ACCOUNT, NOW) is None
    assert accountability_incidents(rep(30, incidents=old), ACCOUNT, NOW) == 0.0
    lost_recently = [LostAccountFact(9, NOW - 30 * DAY, True)]
    assert accountability_incidents(rep(0, lost_accounts=lost_recently), ACCOUNT, NOW) == 0.0


def test_retention_by_hand():
    history = rep(10, lost_accounts=[
        LostAccountFact(1, NOW - 30 * DAY, True),  # in, weight 1
        LostAccountFact(2, NOW - 60 * DAY, False),  # in, unreviewed: weight 2
        LostAccountFact(3, Y1, True),  # exactly 12 months ago: in, weight 1
        LostAccountFact(4, Y1 - SECOND, False),  # outside
        LostAccountFact(5, NOW + DAY, False),  # after now
    ])
    # 1 - (1 + 2 + 1) / (10 held + 3 lost) = 1 - 4/13 = 9/13
    assert retention(history, ACCOUNT, NOW) == pytest.approx(9 / 13)


@pytest.mark.parametrize(("held", "losses", "expected"), [
    (5, [], 1.0),  # kept everything
    (1, [True], 0.5),  # 1 - 1/2
    (1, [False], 0.0),  # 1 - 2/2
    (0, [True], 0.0),  # 1 - 1/1
    (0, [False], 0.0),  # 1 - 2/1 = -1, clipped to 0
    (0, [], None),  # never held anything
])
def test_retention_edges(held, losses, expected):
    history = rep(held, lost_accounts=[LostAccountFact(n, NOW - 10 * DAY, reviewed)
                                       for n, reviewed in enumerate(losses)])
    assert retention(history, ACCOUNT, NOW) == expected


def test_retention_without_holdings_or_recent_losses_is_missing():
    history = rep(0, lost_accounts=[LostAccountFact(1, Y1 - DAY, False)])
    assert retention(history, ACCOUNT, NOW) is None


# --- properties -------------------------------------------------------------------------

offsets = st.integers(min_value=0, max_value=900)


@st.composite
def opportunities(draw) -> OpportunityFact:
    opened = NOW - timedelta(days=draw(offsets))
    stages = draw(st.lists(st.sampled_from(OPEN_STAGES), min_size=1, max_size=4))
    moments = sorted(opened + timedelta(days=draw(st.integers(0, 120))) for _ in stages[1:])
    path = list(zip(stages, [opened, *moments], strict=True))
    final = draw(st.sampled_from([None, W, L]))
    if final is not None:
        path.append((final, path[-1][1] + timedelta(days=draw(st.integers(0, 120)))))
    return opp(*path, amount=draw(st.integers(0, 10**7)),
               industry=draw(st.sampled_from(["Internet", "Finance"])))


histories = st.builds(
    RepHistory,
    rep_id=st.just(1), hired_on=st.just(date(2022, 1, 1)),
    zone=st.sampled_from([UTC, ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")]),
    accounts_held=st.integers(0, 50),
    opportunities=st.lists(opportunities(), max_size=8).map(tuple),
    forecasts=st.lists(st.builds(ForecastFact, st.dates(date(2025, 6, 1), date(2026, 3, 31)),
                                 st.integers(0, 10**6),
                                 st.none() | st.integers(0, 10**6)), max_size=8).map(tuple),
    incidents=st.lists(st.builds(IncidentFact, st.integers(1, 99), st.integers(1, 99),
                                 offsets.map(lambda days: NOW - timedelta(days=days)),
                                 st.sampled_from(["open", "explained", "accepted", "upheld"])),
                       max_size=5).map(tuple),
    lost_accounts=st.lists(st.builds(LostAccountFact, st.integers(1, 99),
                                     offsets.map(lambda days: NOW - timedelta(days=days)),
                                     st.booleans()), max_size=5).map(tuple),
)

SHARES = {"win_rate", "stage_conversion", "forecast_accuracy", "industry_experience",
          "retention"}


@settings(max_examples=60, deadline=None)
@given(histories)
def test_every_metric_is_missing_or_a_finite_number_in_range(history):
    record = track_record(history, ACCOUNT, NOW)
    for name, value in record.items():
        assert value is None or (isinstance(value, float) and math.isfinite(value)), name
        if value is not None:
            assert value >= 0.0, name
            if name in SHARES:
                assert value <= 1.0, name
    if record["revenue_attainment"] is not None:
        assert record["revenue_attainment"] <= 2.0


@settings(max_examples=60, deadline=None)
@given(histories)
def test_facts_dated_after_now_change_nothing(history):
    later = NOW + timedelta(hours=1)
    with_future = RepHistory(
        rep_id=history.rep_id, hired_on=history.hired_on, zone=history.zone,
        accounts_held=history.accounts_held,
        opportunities=(*history.opportunities, opp((P, later), (T, later + DAY)),
                       opp((P, later), (W, later + DAY), amount=9_999_999)),
        forecasts=(*history.forecasts, forecast(2026, 4, 100, 0)),
        incidents=(*history.incidents, IncidentFact(1000, 1, later, "upheld")),
        lost_accounts=(*history.lost_accounts, LostAccountFact(1000, later, False)),
    )
    assert track_record(with_future, ACCOUNT, NOW) == track_record(history, ACCOUNT, NOW)
