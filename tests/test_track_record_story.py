"""The track record tells one story: the rates on the page, the counts beside them, the funnel
and the record a bid freezes at the same moment, over generated histories."""

from __future__ import annotations

import html
import itertools
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bidhub.domain.metrics import months_before
from bidhub.models import (
    AccountabilityIncident,
    Listing,
    MonthlyForecast,
    Opportunity,
    OpportunityStageChange,
)
from bidhub.services.profiles import rep_profile
from bidhub.web.rendering import metric_amount, percent
from tests.conftest import reload

BEIJING = ZoneInfo("Asia/Shanghai")
STAGES = ["potential", "intent", "proposal", "negotiation", "won", "lost"]
_unique = itertools.count(1)


def beijing(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=BEIJING).astimezone(UTC)


# 23:59 in Beijing is 15:59 UTC the same day; 00:00 on the 1st is the day before in UTC.
NOWS = [beijing(date(2026, 3, 1), 23, 59, 59), beijing(date(2026, 3, 1)),
        beijing(date(2027, 3, 1), 0, 30), beijing(date(2028, 2, 29), 23, 59),
        beijing(date(2026, 8, 31), 9)]
SECOND = timedelta(seconds=1)


@st.composite
def moments(draw, now: datetime) -> datetime:
    """A moment before `now`: anywhere in the last two years, or a second either side of a
    window's edge (6, 12 or 24 calendar months back on Beijing's calendar)."""
    if draw(st.booleans()):
        edge = months_before(now.astimezone(BEIJING), draw(st.sampled_from([6, 12, 24])))
        return (edge + draw(st.sampled_from([-SECOND, timedelta(0), SECOND]))).astimezone(UTC)
    return now - timedelta(days=draw(st.integers(0, 800)), hours=draw(st.integers(0, 23)))


@st.composite
def paths(draw, now: datetime) -> list[tuple[str, datetime]]:
    """A deal's path: from potential through any stages, back and forth, won and then lost,
    lost and re-opened; some changes may come after `now`."""
    moment = draw(moments(now))
    path = [("potential", moment)]
    for stage in draw(st.lists(st.sampled_from(STAGES), max_size=5)):
        if stage == path[-1][0]:
            continue
        moment += timedelta(days=draw(st.integers(0, 200)))
        path.append((stage, moment))
    return path


def write_deal(session, rep, account, path, amount: int, with_close: bool,
               deal: Opportunity | None = None) -> Opportunity:
    """The deal as the CRM shows it after `path` (its stage, close date and history)."""
    final, closed = path[-1]
    if deal is None:
        deal = Opportunity(account_id=account.id, rep_id=rep.id, amount_yuan=amount,
                           opened_at=path[0][1])
        session.add(deal)
    deal.stage = final
    deal.closed_at = closed if final in ("won", "lost") and with_close else None
    session.flush()
    for change in session.scalars(select(OpportunityStageChange)
                                  .where(OpportunityStageChange.opportunity_id == deal.id)):
        session.delete(change)
    session.add_all(OpportunityStageChange(opportunity_id=deal.id, stage=stage, changed_at=at)
                    for stage, at in path)
    session.flush()
    return deal


def rows_of(page: str, table: str) -> list[list[str]]:
    """The cells of each row of the page's table whose class ends with `table`, as text."""
    found = re.search(rf'<table class="grid compact{table}">.*?</table>', page, re.S).group(0)
    return [[html.unescape(re.sub(r"<[^>]*>", "", cell)).strip()
             for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", found, re.S)]


def number(text: str) -> int:
    return int(text.replace(",", "").replace("¥", ""))


def shown_from_counts(label: str, basis: str) -> str | None:
    """What a rate must read, worked out from the counts shown beside it; None for a metric
    shown without counts."""
    counted = basis.split(": ", 1)[-1]
    if match := re.fullmatch(r"(\d+) won of (\d+) closed", counted):
        won, closed = map(int, match.groups())
        return percent(won / closed) if closed else "no data"
    if match := re.fullmatch(r"(\d+) held, (\d+) lost \((\d+) without a review\)", counted):
        held, lost, unreviewed = map(int, match.groups())
        if held + lost == 0:
            return "no data"
        return percent(max(0.0, 1 - (lost + unreviewed) / (held + lost)))
    if match := re.fullmatch(r"actual (¥[\d,]+) of forecast (¥[\d,]+)", counted):
        actual, forecast = map(number, match.groups())
        if forecast <= 0:
            return "no data"
        return metric_amount(min(2.0, max(0.0, actual / forecast)), "revenue_attainment")
    if re.fullmatch(r"0 months", counted):
        return "no data"
    return None


def what_came_after(session, rep, incidents, now: datetime, data) -> None:
    """Incidents explained and decided after `now`, and months' actuals that arrive then."""
    for incident in incidents:  # explained, then decided, after the bid
        later = now + timedelta(days=data.draw(st.integers(0, 30)), seconds=1)
        if incident.status == "open":
            if data.draw(st.booleans()):
                incident.status, incident.explained_at = "explained", later
                later += timedelta(days=data.draw(st.integers(0, 30)))
            incident.status = data.draw(st.sampled_from([incident.status, "accepted", "upheld"]
                                                         if incident.explained_at else
                                                         [incident.status, "upheld"]))
            if incident.status in ("accepted", "upheld"):
                incident.resolved_at = later
        elif incident.status == "explained":  # imported so, its explanation's date unknown
            incident.status = data.draw(st.sampled_from(["accepted", "upheld"]))
            incident.resolved_at = later
    for forecast in session.scalars(select(MonthlyForecast)
                                    .where(MonthlyForecast.rep_id == rep.id)):
        if forecast.actual_yuan is None and data.draw(st.booleans()):  # its actual arrives
            forecast.actual_yuan = data.draw(st.sampled_from([0, 90, 300_000]))
            forecast.actual_known_at = now + timedelta(days=data.draw(st.integers(0, 30)),
                                                       seconds=1)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_the_page_the_counts_and_a_frozen_bid_tell_one_story(
        app, session, make_rep, make_account, make_manager, make_round, make_bid, login_as,
        clock, data):
    reload(session)
    now = data.draw(st.sampled_from(NOWS))
    clock.set(now)
    rep = make_rep(name=f"Rep {next(_unique)}", hired_on=date(2023, 1, 1))
    held = [make_account(owner=rep) for _ in range(data.draw(st.integers(0, 2)))]
    account = held[0] if held else make_account()
    deals = []
    for path in data.draw(st.lists(paths(now), max_size=6)):
        # Written as the CRM showed it at `now`; what came after is imported later.
        amount, with_close = data.draw(st.integers(0, 10**6)), data.draw(st.booleans())
        seen = [(stage, at) for stage, at in path if at <= now]
        deal = write_deal(session, rep, account, seen, amount, with_close) if seen else None
        deals.append((deal, path, amount, with_close))
    month = now.astimezone(BEIJING).date().replace(day=1)
    for back in data.draw(st.sets(st.integers(0, 8), max_size=5)):
        first = months_before(datetime.combine(month, time()), back).date()
        session.add(MonthlyForecast(rep_id=rep.id, month=first,
                                    forecast_yuan=data.draw(st.sampled_from([0, 100, 250_000])),
                                    actual_yuan=data.draw(st.sampled_from([None, 0, 90,
                                                                           300_000]))))
    # As the CRM import brings them: a status without its dates, an explanation with one
    # that was explained (and maybe with an upheld one).
    incidents = []
    for _ in range(data.draw(st.integers(0, 2))):
        status = data.draw(st.sampled_from(["open", "explained", "accepted", "upheld"]))
        explained = status in ("explained", "accepted") or (
            status == "upheld" and data.draw(st.booleans()))
        incidents.append(AccountabilityIncident(
            account_id=account.id, rep_id=rep.id, competitor_site="rival.example",
            ad_type="logo", seen_at=data.draw(moments(now)), status=status,
            explanation="Explained in the CRM." if explained else ""))
    session.add_all(incidents)
    session.commit()

    page = login_as(make_manager()).get(f"/reps/{rep.id}").get_data(as_text=True)
    metric_rows = rows_of(page, " metric-table")
    assert metric_rows
    for label, shown, basis in metric_rows:
        expected = shown_from_counts(label, basis)
        if expected is not None:
            with app.test_request_context(headers={"Accept-Language": "en"}):
                assert shown == expected, (label, basis)
    funnel = rows_of(page, " funnel")[1:]  # the header row first
    for (_, _, reached, advanced, rate), following in zip(funnel, [*funnel[1:], None],
                                                          strict=True):
        assert rate == percent(int(advanced) / int(reached) if int(reached) else None)
        if following is not None:
            assert following[2] == advanced  # went on to the next stage: reached it

    # A bid placed at this moment freezes the figures the page shows.
    profile = rep_profile(session, rep.id, now, include_sealed_bids=True,
                          zone=app.config["TIMEZONE"])
    round_ = make_round(accounts=[make_account()], opens_at=now - timedelta(hours=1),
                        closes_at=now + timedelta(days=1))
    listing = session.scalars(select(Listing).where(Listing.round_id == round_.id)).one()
    frozen = make_bid(rep, listing).track_record
    shown_values = {name: value for name, _label, value in profile.metrics}
    assert shown_values == {name: value for name, value in frozen.items()
                            if name != "industry_experience"}
    with app.test_request_context(headers={"Accept-Language": "en"}):
        expected_cells = {metric_amount(value, name) if value is not None else "no data"
                          for name, value in shown_values.items()}
    assert {shown for _label, shown, _basis in metric_rows} == expected_cells

    # Later the CRM brings what happened after the bid (a deal won then lost, a lost deal
    # re-opened, a month's actual), and incidents are explained and decided: the track record
    # at the bid's moment is still what it froze.
    for deal, path, amount, with_close in deals:
        write_deal(session, rep, account, path, amount, with_close, deal)
    what_came_after(session, rep, incidents, now, data)
    session.commit()
    again = rep_profile(session, rep.id, now, include_sealed_bids=True,
                        zone=app.config["TIMEZONE"])
    assert {name: value for name, _label, value in again.metrics} == shown_values
    assert (again.funnel, again.open_by_stage, again.metric_counts) == (
        profile.funnel, profile.open_by_stage, profile.metric_counts)


def test_an_incident_explained_and_accepted_after_a_bid_still_counts_at_the_bid(
        app, session, make_rep, make_account, make_manager, make_round, make_bid, clock):
    """The incident stood open when the bid was placed: explaining it and having the
    explanation accepted later take it off the record from then on, not back to the bid."""
    from bidhub.services.accountability import explain_incident, resolve_incident
    from bidhub.services.track_records import fresh_track_record, snapshot_track_record

    rep, manager = make_rep(hired_on=date(2023, 1, 1)), make_manager()
    held = make_account(owner=rep)
    incident = AccountabilityIncident(account_id=held.id, rep_id=rep.id,
                                      competitor_site="rival.example", ad_type="logo",
                                      seen_at=clock() - timedelta(days=5),
                                      explanation_due_at=clock() + timedelta(days=2))
    session.add(incident)
    session.commit()
    bid_at = clock()
    round_ = make_round(accounts=[make_account()], closes_at=bid_at + timedelta(days=1))
    listing = session.scalars(select(Listing).where(Listing.round_id == round_.id)).one()
    frozen = make_bid(rep, listing).track_record
    assert frozen["open_incidents"] == 1.0

    explain_incident(session, rep, incident.id, now=bid_at + timedelta(days=1),
                     explanation="The account's HR ran the banner without asking us first.")
    resolve_incident(session, manager, incident.id, outcome="accepted", note="",
                     expected_version=incident.version, now=bid_at + timedelta(days=3))
    zone = app.config["TIMEZONE"]
    profile = rep_profile(session, rep.id, bid_at, include_sealed_bids=True, zone=zone)
    assert dict((name, value) for name, _label, value in profile.metrics)["open_incidents"] == 1.0
    assert fresh_track_record(session, rep, listing.account, bid_at, zone=zone) == frozen
    assert snapshot_track_record(session, rep, listing.account, bid_at, zone=zone) == frozen
    # Explained but not yet decided: it no longer counts against the rep.
    between = bid_at + timedelta(days=2)
    assert fresh_track_record(session, rep, listing.account, between,
                              zone=zone)["open_incidents"] == 0.0
    assert snapshot_track_record(session, rep, listing.account, between,
                                 zone=zone)["open_incidents"] == 0.0


INCIDENT_HEADER = "事件编号,客户编号,销售,竞争对手网站,发现日期,广告类型,页面位置,证据链接,状态,说明"


def import_incident(session, admin, rep, account, status: str, explanation: str,
                    seen: date, now: datetime) -> None:
    from bidhub.services.imports import import_file

    text = (f"{INCIDENT_HEADER}\nINC-1,{account.external_id},{rep.username},www.rival.example,"
            f"{seen.isoformat()},logo,首页,,{status},{explanation}\n")
    result = import_file(session, admin, "incidents", "incidents.csv", text.encode(),
                         valid_rows_only=False, now=now)
    assert (result.status, result.problems) == ("imported", []), result.problems
    reload(session)


def open_incidents_at(app, session, rep, account, moment: datetime) -> set[float]:
    """The open incidents at `moment` as the stored snapshot and the rows each give them."""
    from bidhub.services.track_records import fresh_track_record, snapshot_track_record

    zone = app.config["TIMEZONE"]
    return {record(session, rep, account, moment, zone=zone)["open_incidents"]
            for record in (fresh_track_record, snapshot_track_record)}


def test_a_status_a_crm_import_changes_dates_from_the_import(
        app, session, make_rep, make_account, make_admin, make_round, make_bid, clock):
    """An incident imported open, explained in a later file: bidhub held it open until that
    file came, so the record at a bid placed before it still counts it; so does a decision
    another file brings."""
    rep, admin = make_rep(hired_on=date(2023, 1, 1)), make_admin()
    held = make_account(owner=rep)
    seen = (clock() - timedelta(days=10)).date()
    import_incident(session, admin, rep, held, "open", "", seen, clock())
    bid_at = clock()
    round_ = make_round(accounts=[make_account()], closes_at=bid_at + timedelta(days=1))
    listing = session.scalars(select(Listing).where(Listing.round_id == round_.id)).one()
    assert make_bid(rep, listing).track_record["open_incidents"] == 1.0

    explained_at = bid_at + timedelta(days=2)
    import_incident(session, admin, rep, held, "已说明", "客户自行投放，已要求撤下。", seen,
                    explained_at)
    assert open_incidents_at(app, session, rep, listing.account, bid_at) == {1.0}
    assert open_incidents_at(app, session, rep, listing.account, explained_at) == {0.0}
    decided_at = explained_at + timedelta(days=3)
    import_incident(session, admin, rep, held, "upheld", "客户自行投放，已要求撤下。", seen,
                    decided_at)
    incident = session.scalars(select(AccountabilityIncident)).one()
    assert (incident.explained_at, incident.resolved_at) == (explained_at, decided_at)
    assert open_incidents_at(app, session, rep, listing.account, bid_at) == {1.0}
    assert open_incidents_at(app, session, rep, listing.account,
                             decided_at - SECOND) == {0.0}
    assert open_incidents_at(app, session, rep, listing.account, decided_at) == {1.0}


def test_an_incident_imported_explained_and_upheld_later_stood_explained_until_then(
        app, session, make_rep, make_account, make_admin, make_manager, clock):
    """Its explanation's date is unknown, so the explanation stands from the sighting on; the
    decision taken in bidhub changes the record from the decision on, not before."""
    from bidhub.services.accountability import resolve_incident

    rep, admin = make_rep(hired_on=date(2023, 1, 1)), make_admin()
    held = make_account(owner=rep)
    seen = (clock() - timedelta(days=10)).date()
    import_incident(session, admin, rep, held, "已说明", "客户自行投放，已要求撤下。", seen, clock())
    incident = session.scalars(select(AccountabilityIncident)).one()
    assert incident.explained_at is None
    before = clock() - timedelta(days=5)
    assert open_incidents_at(app, session, rep, held, before) == {0.0}
    decided_at = clock() + timedelta(days=1)
    resolve_incident(session, make_manager(), incident.id, outcome="upheld",
                     note="截图显示仍在投放。", expected_version=incident.version, now=decided_at)
    assert open_incidents_at(app, session, rep, held, before) == {0.0}
    assert open_incidents_at(app, session, rep, held, decided_at - SECOND) == {0.0}
    assert open_incidents_at(app, session, rep, held, decided_at) == {1.0}


def import_forecasts(session, admin, rep, rows: list[tuple[date, int, int | None]],
                     now: datetime) -> None:
    from bidhub.services.imports import import_file

    lines = [f"{rep.username},{month:%Y-%m},{forecast},{'' if actual is None else actual}"
             for month, forecast, actual in rows]
    text = "销售,月份,预测金额,实际金额\n" + "\n".join(lines) + "\n"
    result = import_file(session, admin, "forecasts", "forecasts.csv", text.encode(),
                         valid_rows_only=False, now=now)
    assert (result.status, result.problems) == ("imported", []), result.problems
    reload(session)


def test_an_actual_a_later_import_brings_leaves_the_record_at_the_bid_as_it_froze(
        app, session, make_rep, make_account, make_admin, make_round, make_bid, clock):
    """November's actual arrives after a bid placed in December: the bid's record had no
    actual for November, and the record at that moment still has none; from the import on,
    November counts. An actual corrected later counts from when it first became known."""
    from bidhub.services.track_records import fresh_track_record, snapshot_track_record

    clock.set(beijing(date(2026, 12, 3), 10))
    rep, admin = make_rep(hired_on=date(2023, 1, 1)), make_admin()
    months = [date(2026, month, 1) for month in range(6, 12)]
    import_forecasts(session, admin, rep,
                     [(month, 100_000, None if month.month == 11 else 90_000)
                      for month in months], clock())
    bid_at = clock()
    round_ = make_round(accounts=[make_account()], closes_at=bid_at + timedelta(days=1))
    listing = session.scalars(select(Listing).where(Listing.round_id == round_.id)).one()
    frozen = make_bid(rep, listing).track_record
    assert frozen["forecast_accuracy"] == 0.9  # five months, each 10% off

    known_at = bid_at + timedelta(days=2)
    import_forecasts(session, admin, rep, [(date(2026, 11, 1), 100_000, 40_000)], known_at)
    zone = app.config["TIMEZONE"]
    for record in (fresh_track_record, snapshot_track_record):
        assert record(session, rep, listing.account, bid_at, zone=zone) == frozen
        later = record(session, rep, listing.account, known_at, zone=zone)
        assert later["forecast_accuracy"] == pytest.approx(1 - (5 * 0.1 + 0.6) / 6)  # 60% off
    corrected_at = known_at + timedelta(days=1)
    import_forecasts(session, admin, rep, [(date(2026, 11, 1), 100_000, 100_000)],
                     corrected_at)
    assert session.scalars(select(MonthlyForecast.actual_known_at).where(
        MonthlyForecast.month == date(2026, 11, 1))).one() == known_at
    for record in (fresh_track_record, snapshot_track_record):
        assert record(session, rep, listing.account, bid_at, zone=zone) == frozen
        assert record(session, rep, listing.account, known_at,
                      zone=zone)["forecast_accuracy"] == pytest.approx(1 - 5 * 0.1 / 6)

    # Taken back by a file with the cell blank, then given again: known from the second time.
    import_forecasts(session, admin, rep, [(date(2026, 11, 1), 100_000, None)],
                     corrected_at + timedelta(days=1))
    assert session.execute(select(MonthlyForecast.actual_yuan, MonthlyForecast.actual_known_at)
                           .where(MonthlyForecast.month == date(2026, 11, 1))).one() == (
        None, None)
    import_forecasts(session, admin, rep, [(date(2026, 11, 1), 100_000, 100_000)],
                     corrected_at + timedelta(days=2))
    assert session.scalars(select(MonthlyForecast.actual_known_at).where(
        MonthlyForecast.month == date(2026, 11, 1))).one() == corrected_at + timedelta(days=2)
