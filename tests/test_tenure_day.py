"""Tenure counts from the start of the hire day in the department's time zone: the bid, the
rep's list and bid form, scoring, the track record and the fairness figures all agree with
what a manager in that zone counts, on the configured zone."""

from __future__ import annotations

import csv
import html
import io
import math
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bidhub.domain.errors import NotEligible
from bidhub.domain.metrics import DAYS_PER_MONTH
from bidhub.models import Bid, BidScore, Round, RoundStatus
from bidhub.scheduler import close_due_rounds_job
from bidhub.services.adjudication import decide_listing, publish_results
from bidhub.services.application_reviews import name_reviewers, review_queue, submit_review
from bidhub.services.replays import verify_round
from bidhub.services.rule_sets import adopt_rule_set, default_rules_path
from bidhub.services.track_records import fresh_track_record, snapshot_track_record
from tests.conftest import login, reload

# Beijing (the default), and a zone behind UTC: a zone the web or the scheduler forgot to
# pass would count from Beijing's day there.
ZONES = ["Asia/Shanghai", "America/New_York"]
HIRED_ON = date(2025, 9, 1)
# The checks count whole days since the start of the hire day, 30.4375 days to a month: 182
# days are 5.9795 months, 183 are 6.0123. Six months are reached 183 days after that start.
DAYS_TO_SIX_MONTHS = math.ceil(6 * DAYS_PER_MONTH)
SIX_MONTHS_ON = HIRED_ON + timedelta(days=DAYS_TO_SIX_MONTHS)  # 3 March 2026
# Bids and scoring store tenure to 4 decimals; the track record's metric keeps the quotient.
BEFORE, REACHED = round(182 / DAYS_PER_MONTH, 4), round(183 / DAYS_PER_MONTH, 4)
PLAN = {"account_plan": "A careful plan for this account, with visits.",
        "committed_revenue_yuan": "300000",
        "visit_plan": "Visit the decision maker in week one."}


def day_starts(day: date, zone: str) -> datetime:
    """The instant `day` begins in `zone`, in UTC."""
    return datetime.combine(day, time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)


@pytest.fixture
def six_months(app, session, clock):
    """The default rules with min_tenure_months = 6: rounds made from now on pin them."""
    text = default_rules_path(app.config).read_text("utf-8")
    assert "min_tenure_months = 3" in text
    adopt_rule_set(session, None, text.replace("min_tenure_months = 3", "min_tenure_months = 6"),
                   "six months", "tenure tests", clock())
    session.commit()


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def tenure_shown(page: str) -> str:
    """The tenure a track record table shows (the bid form's or the profile's)."""
    return re.search(r'Tenure \(months\)</th>\s*<td class="num">\s*([0-9.]+)', page).group(1)


def test_in_beijing_a_bid_is_taken_from_midnight_of_the_day_six_months_are_reached(
        session, clock, six_months, make_rep, make_account, make_round, make_bid):
    # Hired on 1 September 2025: six months are reached on 3 March 2026, from 00:00 in Beijing
    # (16:00 UTC on 2 March). Counted from midnight UTC, the bid was refused until 08:00.
    rep = make_rep(hired_on=HIRED_ON)
    first, second = make_round(accounts=[make_account(), make_account()]).listings
    clock.set(datetime(2026, 3, 2, 15, 59, 59, tzinfo=UTC))  # 23:59:59 on 2 March in Beijing
    with pytest.raises(NotEligible, match="5.98 months with the company; at least 6 required"):
        make_bid(rep, first)
    clock.set(datetime(2026, 3, 2, 16, 0, tzinfo=UTC))  # 00:00 on 3 March in Beijing
    assert make_bid(rep, first).track_record["tenure_months"] == 183 / DAYS_PER_MONTH
    clock.set(datetime(2026, 3, 2, 23, 59, tzinfo=UTC))  # 07:59 in Beijing
    assert make_bid(rep, second).status == "active"


def test_without_a_hire_date_tenure_counts_from_the_local_day_the_rep_was_added(
        session, clock, six_months, make_rep, make_account, make_round, make_bid):
    # Added at 23:30 UTC on 31 August: 07:30 on 1 September in Beijing, the day counted from.
    rep = make_rep()
    rep.hired_on, rep.created_at = None, datetime(2025, 8, 31, 23, 30, tzinfo=UTC)
    session.commit()
    listing = make_round(accounts=[make_account()]).listings[0]
    account = listing.account
    clock.set(datetime(2026, 3, 2, 15, 59, 59, tzinfo=UTC))  # 23:59:59 on 2 March in Beijing
    with pytest.raises(NotEligible, match="5.98 months with the company"):
        make_bid(rep, listing)
    assert snapshot_track_record(session, rep, account, clock())["tenure_months"] == \
        182 / DAYS_PER_MONTH
    assert snapshot_track_record(session, rep, account, clock()) == fresh_track_record(
        session, rep, account, clock())
    clock.set(datetime(2026, 3, 2, 16, 0, tzinfo=UTC))  # 00:00 on 3 March in Beijing
    assert make_bid(rep, listing).track_record["tenure_months"] == 183 / DAYS_PER_MONTH
    reload(session)
    assert session.scalars(select(Bid)).one().rep_id == rep.id


@pytest.mark.parametrize("zone", ZONES)
def test_a_rep_may_bid_from_the_start_of_the_local_day_the_minimum_is_reached(
        app, session, clock, zone, six_months, make_rep, make_account, make_round, login_as):
    app.config["TIMEZONE"] = zone
    rep = make_rep(hired_on=HIRED_ON)
    first, second = make_round(accounts=[make_account(), make_account()]).listings
    client = login_as(rep)
    starts = day_starts(SIX_MONTHS_ON, zone)
    clock.set(starts - timedelta(seconds=1))
    refused = client.post(f"/listings/{first.id}/bid", data=PLAN)
    assert refused.status_code == 422
    assert "5.98 months with the company; at least 6 required" in text_of(refused)
    reload(session)
    assert session.scalars(select(Bid)).all() == []
    clock.set(starts)
    assert client.post(f"/listings/{first.id}/bid", data=PLAN).status_code == 303
    clock.set(starts + timedelta(hours=7, minutes=59))
    assert client.post(f"/listings/{second.id}/bid", data=PLAN).status_code == 303
    reload(session)
    assert [bid.track_record["tenure_months"] for bid in session.scalars(
        select(Bid).order_by(Bid.id))] == [183 / DAYS_PER_MONTH] * 2


@pytest.mark.parametrize("zone", ZONES)
def test_the_list_and_the_bid_form_count_to_the_local_midnight(
        app, session, clock, zone, six_months, make_rep, make_account, make_round, login_as):
    app.config["TIMEZONE"] = zone
    rep = make_rep(hired_on=HIRED_ON)
    round_ = make_round(accounts=[make_account()])
    listing = round_.listings[0]
    client = login_as(rep)
    starts = day_starts(SIX_MONTHS_ON, zone)
    clock.set(starts - timedelta(minutes=1))
    listed = text_of(client.get(f"/rounds/{round_.id}"))
    assert f"Wait until {SIX_MONTHS_ON.isoformat()} 00:00, when you reach 6 months" in listed
    assert f"/listings/{listing.id}/bid" not in listed
    form = text_of(client.get(f"/listings/{listing.id}/bid"))
    assert f"Wait until {SIX_MONTHS_ON.isoformat()} 00:00" in form
    assert tenure_shown(form) == "5.98"
    clock.set(starts)
    listed = text_of(client.get(f"/rounds/{round_.id}"))
    assert f"/listings/{listing.id}/bid" in listed and "Wait until" not in listed
    form = text_of(client.get(f"/listings/{listing.id}/bid"))
    assert "Wait until" not in form and tenure_shown(form) == "6.01"


@pytest.mark.parametrize("zone", ZONES)
def test_the_track_record_page_counts_from_the_local_day(app, clock, zone, make_rep,
                                                         make_manager, login_as):
    app.config["TIMEZONE"] = zone
    rep = make_rep(hired_on=HIRED_ON)
    starts = day_starts(SIX_MONTHS_ON, zone)
    client = login_as(make_manager())
    clock.set(starts - timedelta(seconds=1))
    assert tenure_shown(text_of(client.get(f"/reps/{rep.id}"))) == "5.98"
    clock.set(starts)
    assert tenure_shown(text_of(client.get(f"/reps/{rep.id}"))) == "6.01"
    own = app.test_client()
    login(own, rep)
    assert tenure_shown(text_of(own.get("/my/track-record"))) == "6.01"


def stored_tenure(session, round_id: int) -> list[float]:
    reload(session)
    return [score.inputs["tenure_months"] for score in session.scalars(
        select(BidScore).join(BidScore.bid).where(Bid.listing.has(round_id=round_id)))]


@pytest.mark.parametrize("zone", ZONES)
def test_scoring_counts_tenure_from_the_local_day_and_replays_as_stored(
        app, session, clock, zone, make_rep, make_manager, make_account, make_round, make_bid):
    # The default rules ask for 3 months, met when the bids go in; scoring reads tenure again.
    app.config["TIMEZONE"] = zone
    rep, manager = make_rep(hired_on=HIRED_ON), make_manager()
    starts = day_starts(SIX_MONTHS_ON, zone)
    early, late = (make_round(accounts=[make_account()], manager=manager,
                              closes_at=starts - timedelta(seconds=1)) for _ in range(2))
    for round_ in (early, late):
        make_bid(rep, round_.listings[0])
    client = app.test_client()
    login(client, manager)
    clock.set(starts - timedelta(seconds=1))
    assert client.post(f"/manage/rounds/{early.id}/score").status_code == 303
    clock.set(starts)
    assert client.post(f"/manage/rounds/{late.id}/score").status_code == 303
    assert stored_tenure(session, early.id) == [BEFORE]
    assert stored_tenure(session, late.id) == [REACHED]
    for round_ in (early, late):
        assert verify_round(session, round_.id) == []
        result = app.test_cli_runner().invoke(args=["rescore", "--verify", str(round_.id)])
        assert result.exit_code == 0, result.output


def test_the_scheduler_the_command_and_an_early_close_score_in_the_configured_zone(
        app, session, clock, make_rep, make_manager, make_account, make_round, make_bid,
        adopt_review_rules):
    # One second before 3 March begins in New York a rep hired on 1 September 2025 has 182
    # whole days; counted from Beijing's day, or from midnight UTC, 183.
    zone = "America/New_York"
    app.config["TIMEZONE"] = zone
    rep, manager = make_rep(hired_on=HIRED_ON), make_manager()
    starts = day_starts(SIX_MONTHS_ON, zone)
    by_job, by_command = (make_round(accounts=[make_account()], manager=manager,
                                     closes_at=starts - timedelta(seconds=seconds))
                          for seconds in (3, 2))
    adopt_review_rules()
    reviewed = make_round(accounts=[make_account()], manager=manager,
                          closes_at=starts - timedelta(seconds=4))
    for round_ in (by_job, by_command, reviewed):
        make_bid(rep, round_.listings[0])
    clock.set(starts - timedelta(seconds=4))
    assert close_due_rounds_job(app) == [reviewed.id]  # into its blind review
    clock.set(starts - timedelta(seconds=3))
    assert close_due_rounds_job(app) == [by_job.id]
    clock.set(starts - timedelta(seconds=2))
    result = app.test_cli_runner().invoke(args=["close-due-rounds"])
    assert result.exit_code == 0, result.output
    clock.set(starts - timedelta(seconds=1))
    client = app.test_client()
    login(client, manager)
    response = client.post(f"/manage/rounds/{reviewed.id}/review/close",
                           data={"reason": "The reviewers are away for the whole week."})
    assert response.status_code == 303, text_of(response)[:2000]
    reload(session)
    assert session.get(Round, reviewed.id).status == RoundStatus.SCORED
    for round_ in (by_job, by_command, reviewed):
        assert stored_tenure(session, round_.id) == [BEFORE], round_.title


def test_the_review_that_completes_a_blind_review_scores_in_the_configured_zone(
        app, session, clock, make_rep, make_manager, make_account, make_round, make_bid,
        adopt_review_rules):
    zone = "America/New_York"
    app.config["TIMEZONE"] = zone
    rep, manager = make_rep(hired_on=HIRED_ON), make_manager()
    first, second = make_manager(name="Reviewer One"), make_manager(name="Reviewer Two")
    starts = day_starts(SIX_MONTHS_ON, zone)
    adopt_review_rules()  # two reviews per application
    round_ = make_round(accounts=[make_account()], manager=manager,
                        closes_at=starts - timedelta(seconds=3))
    name_reviewers(session, manager, round_.id, [first.id, second.id], clock())
    make_bid(rep, round_.listings[0])
    clock.set(starts - timedelta(seconds=3))
    assert close_due_rounds_job(app) == [round_.id]
    reload(session)
    [code] = [item.code for item in review_queue(session, first, round_.id)]
    submit_review(session, first, round_.id, code, {"plan_quality": 4, "feasibility": 3},
                  "Concrete visits, a sound plan.", clock())
    clock.set(starts - timedelta(seconds=1))
    client = app.test_client()
    login(client, second)
    response = client.post(f"/review/rounds/{round_.id}/{code}", data={
        "criterion_plan_quality": "3", "criterion_feasibility": "3", "note": "Thin on visits."})
    assert response.status_code == 303, text_of(response)[:2000]
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.SCORED
    assert stored_tenure(session, round_.id) == [BEFORE]


@pytest.mark.parametrize("zone", ZONES)
def test_the_fairness_bands_count_tenure_at_the_deadline_from_the_local_day(
        app, session, clock, zone, make_rep, make_manager, make_account, make_round, make_bid):
    # A year is 366 whole days (365 are 11.99 months): hired on 4 March 2025, the rep has 12
    # months from the start of 5 March 2026 in the zone.
    app.config["TIMEZONE"] = zone
    rep, manager = make_rep(hired_on=date(2025, 3, 4)), make_manager()
    starts = day_starts(date(2026, 3, 5), zone)
    rounds = [make_round(accounts=[make_account()], manager=manager, closes_at=closes_at)
              for closes_at in (starts - timedelta(seconds=1), starts)]
    for round_ in rounds:
        make_bid(rep, round_.listings[0])
    clock.set(starts + timedelta(hours=1))
    client = app.test_client()
    login(client, manager)
    for round_ in rounds:
        assert client.post(f"/manage/rounds/{round_.id}/score").status_code == 303
        decide_listing(session, manager, round_.listings[0].id, kind="accepted", bid_id=None,
                       reason="", now=clock())
        round_ = session.get(Round, round_.id)
        publish_results(session, manager, round_.id, expected_version=round_.version,
                        now=clock())
        reload(session)
    rows = list(csv.reader(io.StringIO(
        client.get("/manage/fairness.csv?lang=en").get_data().decode("utf-8-sig"))))
    assert ["under 12 months", "1", "1", "1.0"] in rows
    assert ["12 to 36 months", "1", "1", "1.0"] in rows
