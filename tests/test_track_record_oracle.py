"""The track record, worked out again from rules/README.md's metric table, equals bidhub's.

CRM exports with Chinese headers go through the import service; the oracle reads the same
rows as plain values and follows the table's formulas and windows, nothing of bidhub's own.
"""

from __future__ import annotations

import calendar
import itertools
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bidhub.services.imports import import_file
from bidhub.services.track_records import fresh_track_record, snapshot_track_record
from tests.conftest import reload

BEIJING = ZoneInfo("Asia/Shanghai")
PROBABILITY = {"potential": 0.1, "intent": 0.3, "proposal": 0.5, "negotiation": 0.7}
PAST_POTENTIAL = {"intent", "proposal", "negotiation", "won"}
_unique = itertools.count(1)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=BEIJING).astimezone(UTC)


@dataclass
class Opp:
    account: str
    amount: int
    stage: str
    history: list[tuple[str, date]]
    closed: date | None


@dataclass
class Crm:
    hired: date
    held: int
    opportunities: list[Opp]
    forecasts: dict[tuple[int, int], tuple[int, int | None]]  # (year, month) -> (f, a)
    incidents: list[tuple[date, str]]
    industries: dict[str, str]  # account external id -> industry


def months_back(value, months: int):
    """The same day (clamped to the month's end) and clock time `months` calendar months
    earlier; an aware instant is moved on Beijing's clocks."""
    aware = isinstance(value, datetime)
    local = value.astimezone(BEIJING) if aware else value
    year, month = divmod(local.year * 12 + local.month - 1 - months, 12)
    month += 1
    last = calendar.monthrange(year, month)[1]
    moved = local.replace(year=year, month=month, day=min(local.day, last))
    return moved.astimezone(UTC) if aware else moved


def in_window(at: datetime, now: datetime, months: int) -> bool:
    return months_back(now, months) <= at <= now


def oracle(crm: Crm, now: datetime, bid_industry: str) -> dict[str, float | None]:
    """Every metric as rules/README.md states it, from the CRM rows."""
    closed = [opp for opp in crm.opportunities if opp.stage in ("won", "lost")]
    recent = [opp for opp in closed if in_window(midnight(opp.closed), now, 12)]
    won = sum(opp.stage == "won" for opp in recent)
    win_rate = won / len(recent) if recent else None

    reached = [opp for opp in closed
               if in_window(midnight(opp.history[0][1]), now, 12)
               and any(stage in PAST_POTENTIAL for stage, _ in opp.history)]
    stage_conversion = (sum(opp.stage == "won" for opp in reached) / len(reached)
                        if reached else None)

    pipeline = (sum(opp.amount * PROBABILITY[opp.stage] for opp in crm.opportunities
                    if opp.stage in PROBABILITY) if crm.opportunities else None)

    local = now.astimezone(BEIJING)
    first = date(local.year, local.month, 1)
    months = [(months_back(first, back).year, months_back(first, back).month)
              for back in range(1, 7)]
    usable = [crm.forecasts[month] for month in months
              if month in crm.forecasts and crm.forecasts[month][1] is not None]
    errors = [(0.0 if actual == 0 else 1.0) if forecast == 0
              else min(1.0, abs(actual - forecast) / forecast) for forecast, actual in usable]
    accuracy = 1 - sum(errors) / len(errors) if errors else None
    forecast_sum = sum(forecast for forecast, _ in usable)
    attainment = (min(2.0, max(0.0, sum(actual for _, actual in usable) / forecast_sum))
                  if usable and forecast_sum else None)

    won_24 = [opp for opp in closed if opp.stage == "won"
              and in_window(midnight(opp.closed), now, 24)]
    won_revenue = sum(opp.amount for opp in won_24)
    in_industry = sum(opp.amount for opp in won_24
                      if crm.industries[opp.account].strip().casefold()
                      == bid_industry.strip().casefold())
    industry = in_industry / won_revenue if won_revenue and bid_industry.strip() else None

    seen = sum(in_window(midnight(seen_on), now, 6) for seen_on, _ in crm.incidents)
    incidents = None if crm.held == 0 and seen == 0 else seen
    open_incidents = sum(status in ("open", "upheld") for _, status in crm.incidents)

    days = (now - midnight(crm.hired)) // timedelta(days=1)
    return {
        "win_rate": win_rate, "accounts_held": crm.held, "tenure_months": days / 30.4375,
        "open_incidents": open_incidents, "stage_conversion": stage_conversion,
        "forecast_accuracy": accuracy, "weighted_pipeline": pipeline,
        "revenue_attainment": attainment, "industry_experience": industry,
        "capacity_headroom": max(0, 40 - crm.held), "accountability_incidents": incidents,
        "retention": 1.0 if crm.held else None, "unreviewed_losses": 0,
    }


STATUS_ZH = {"open": "待说明", "explained": "已说明", "accepted": "已接受", "upheld": "成立"}
STAGE_ZH = {"potential": "潜在客户", "intent": "意向客户", "proposal": "方案阶段",
            "negotiation": "商务谈判", "won": "销售实现", "lost": "丢单"}


def load(session, admin, crm: Crm, now: datetime) -> str:
    """Import `crm` as CRM exports with Chinese headers; the rep's employee id."""
    n = next(_unique)
    rep = f"R{n}"

    def run(kind, header, lines):
        text = "\n".join([header, *lines]) + "\n"
        result = import_file(session, admin, kind, f"{kind}.csv", text.encode("utf-8-sig"),
                             valid_rows_only=False, now=now)
        assert result.status == "imported", result.problems

    run("reps", "员工编号,用户名,姓名,分公司,入职日期,状态",
        [f"{rep},rep{n},销售{n},BJ,{crm.hired.isoformat()},在职"])
    held = [f"A{n}-H{i}" for i in range(crm.held)]
    run("accounts", "客户编号,客户名称,行业,所有制,分公司,年度金额,所属销售",
        [f"A{n}-{name},客户{n}{name},{industry},民营,BJ,100000," for name, industry
         in crm.industries.items()]
        + [f"{account},持有{account},能源,民营,BJ,100000,{rep}" for account in held])
    if crm.opportunities:
        run("opportunities", "商机编号,客户编号,销售,金额,阶段,创建日期,关闭日期,阶段历史",
            [f"O{n}-{i},A{n}-{opp.account},{rep},{opp.amount},{STAGE_ZH[opp.stage]},"
             f"{opp.history[0][1].isoformat()},{opp.closed.isoformat() if opp.closed else ''},"
             + ";".join(f"{stage}:{day.isoformat()}" for stage, day in opp.history)
             for i, opp in enumerate(crm.opportunities)])
    if crm.forecasts:
        run("forecasts", "销售,月份,预测金额,实际金额",
            [f"{rep},{year}-{month:02d},{forecast},{'' if actual is None else actual}"
             for (year, month), (forecast, actual) in crm.forecasts.items()])
    if crm.incidents:
        # On an account the rep holds: an incident is logged against the account's holder.
        run("incidents", "事件编号,客户编号,销售,竞争对手网站,发现日期,广告类型,页面位置,证据链接,状态,说明",
            [f"I{n}-{i},{held[0]},{rep},www.rival.example,{seen.isoformat()},logo,首页,,"
             f"{STATUS_ZH[status]}," for i, (seen, status) in enumerate(crm.incidents)])
    return rep


def compare(session, admin, make_account, crm, now, bid_industry="互联网"):
    from sqlalchemy import select

    from bidhub.models import User

    reload(session)
    rep_id = load(session, admin, crm, now)
    rep = session.scalars(select(User).where(User.external_id == rep_id)).one()
    account = make_account(industry=bid_industry)
    expected = oracle(crm, now, bid_industry)
    fresh = fresh_track_record(session, rep, account, now)
    stored = snapshot_track_record(session, rep, account, now)
    assert stored == fresh
    differ = {name: (fresh[name], value) for name, value in expected.items()
              if (value is None) != (fresh[name] is None)
              or (value is not None and not math.isclose(fresh[name], value,
                                                         rel_tol=1e-9, abs_tol=1e-12))}
    assert not differ, differ  # metric: (bidhub, documented)
    return fresh


@pytest.fixture
def admin(make_admin, make_branch):
    make_branch("BJ", "Beijing")
    return make_admin()


NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Beijing


def opp(account, amount, stages_days, closed=None):
    stage = stages_days[-1][0]
    return Opp(account, amount, stage, stages_days, closed)


def test_hand_built_history_matches_the_documented_formulas(session, admin, make_account):
    d = date
    crm = Crm(
        hired=d(2024, 2, 29), held=3,
        opportunities=[
            # reopened: won, then lost; the final stage counts
            opp("I", 100_000, [("potential", d(2025, 6, 1)), ("intent", d(2025, 6, 10)),
                               ("won", d(2025, 7, 1)), ("lost", d(2025, 8, 1))], d(2025, 8, 1)),
            # stages skipped: potential straight to won
            opp("I", 200_000, [("potential", d(2025, 9, 1)), ("won", d(2025, 9, 5))], d(2025, 9, 5)),
            # a stage entered twice
            opp("E", 300_000, [("potential", d(2025, 10, 1)), ("intent", d(2025, 10, 2)),
                               ("potential", d(2025, 10, 3)), ("intent", d(2025, 10, 4)),
                               ("won", d(2026, 2, 28))], d(2026, 2, 28)),
            # lost from potential: not in stage conversion
            opp("E", 50_000, [("potential", d(2025, 11, 1)), ("lost", d(2025, 12, 31))], d(2025, 12, 31)),
            # open ones
            opp("E", 1_000_000, [("potential", d(2026, 1, 1)), ("proposal", d(2026, 2, 1))]),
            opp("I", 10_000, [("potential", d(2026, 3, 2))]),
            # old, outside every window
            opp("I", 70_000, [("potential", d(2023, 1, 1)), ("won", d(2023, 6, 1))], d(2023, 6, 1)),
        ],
        forecasts={(2025, 8): (100, 100), (2025, 9): (0, 0), (2025, 10): (0, 5),
                   (2025, 12): (200, None), (2026, 1): (400, 100), (2026, 2): (100, 300),
                   (2026, 3): (999, 1)},
        incidents=[(d(2025, 9, 3), "open"), (d(2025, 9, 2), "upheld"),
                   (d(2025, 12, 1), "explained"), (d(2026, 3, 2), "accepted")],
        industries={"I": "互联网", "E": "能源", "Q": "零售"},
    )
    compare(session, admin, make_account, crm, NOW)


# Windows' edges: Beijing midnights (so a day's midnight can be exactly a window's edge), a
# leap day, month ends, and the minute after Beijing midnight while it is still the day
# before in UTC.
EDGES = [0, 1, 181, 182, 183, 184, 364, 365, 366, 367, 729, 730, 731, 732]
NOWS = [NOW, midnight(date(2026, 3, 2)), midnight(date(2028, 2, 29)), midnight(date(2026, 8, 31)),
        midnight(date(2027, 3, 1)), midnight(date(2026, 4, 1)) + timedelta(minutes=1),
        midnight(date(2025, 12, 31)) - timedelta(seconds=1)]


@st.composite
def histories(draw, now):
    today = now.astimezone(BEIJING).date()
    opportunities = []
    for _ in range(draw(st.integers(0, 6))):
        start = today - timedelta(days=draw(st.one_of(st.integers(0, 800), st.sampled_from(EDGES))))
        reached = draw(st.integers(1, 4))
        ending = draw(st.sampled_from(["open", "won", "lost", "won, then lost"]))
        stages = ["potential", "intent", "proposal", "negotiation"][:reached]
        if ending != "open":
            stages.extend(ending.split(", then "))
        days, current = [], start
        for _stage in stages:
            days.append(current)
            current = min(today, current + timedelta(days=draw(st.integers(0, 120))))
            if draw(st.booleans()):
                current = max(current, today - timedelta(days=draw(st.sampled_from(EDGES))))
        history = list(zip(stages, days, strict=True))
        opportunities.append(Opp(draw(st.sampled_from(["I", "E"])), draw(st.integers(0, 900_000)),
                                 stages[-1], history, days[-1] if ending != "open" else None))
    forecasts = {}
    first = today.replace(day=1)
    for back in draw(st.sets(st.integers(0, 9), max_size=8)):
        month = months_back(first, back)
        forecasts[(month.year, month.month)] = (
            draw(st.sampled_from([0, 100, 250_000])),
            draw(st.one_of(st.none(), st.sampled_from([0, 90, 300_000]))))
    incidents = [(today - timedelta(days=draw(st.one_of(st.integers(0, 400),
                                                        st.sampled_from(EDGES)))),
                  draw(st.sampled_from(sorted(STATUS_ZH)))) for _ in range(draw(st.integers(0, 3)))]
    # A rep with incidents holds an account: the one they are logged on.
    return Crm(hired=today - timedelta(days=draw(st.integers(0, 3000))),
               held=draw(st.integers(1 if incidents else 0, 3)),
               opportunities=opportunities, forecasts=forecasts, incidents=incidents,
               industries={"I": "互联网", "E": "能源", "Q": "零售"})


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_imported_histories_match_the_documented_formulas(session, admin, make_account, data):
    now = data.draw(st.sampled_from(NOWS))
    compare(session, admin, make_account, data.draw(histories(now)), now)


def test_the_first_hours_of_a_month_in_beijing_count_the_month_just_ended(
        session, admin, make_account):
    # 00:30 on 1 March in Beijing is still 28 February in UTC: February is complete in the
    # department, and the forecasts file's months are the department's.
    now = midnight(date(2027, 3, 1)) + timedelta(minutes=30)
    crm = Crm(hired=date(2020, 1, 1), held=1, opportunities=[],
              forecasts={(2027, 2): (400, 300), (2026, 8): (100, 100)}, incidents=[],
              industries={"I": "互联网", "E": "能源", "Q": "零售"})
    fresh = compare(session, admin, make_account, crm, now)
    assert fresh["forecast_accuracy"] == 0.75
    assert fresh["revenue_attainment"] == 0.75


@pytest.mark.parametrize(("today", "seen", "counted"), [
    # 00:00 on 1 March in Beijing (28 February in UTC): six months back is 1 September there.
    (date(2027, 3, 1), date(2026, 8, 31), 0),
    (date(2027, 3, 1), date(2026, 9, 1), 1),
    # 00:00 on 31 March (30 March in UTC): six months back is 30 September, the month's end.
    (date(2026, 3, 31), date(2025, 9, 30), 1),
    (date(2026, 3, 31), date(2025, 9, 29), 0),
])
def test_windows_count_calendar_months_on_beijing_clocks(session, admin, make_account,
                                                         today, seen, counted):
    crm = Crm(hired=date(2020, 1, 1), held=1, opportunities=[], forecasts={},
              incidents=[(seen, "explained")], industries={"I": "互联网", "E": "能源", "Q": "零售"})
    fresh = compare(session, admin, make_account, crm, midnight(today))
    assert fresh["accountability_incidents"] == counted


def test_the_track_record_page_shows_each_metric_with_its_unit_window_and_counts(
        session, admin, make_account, make_manager, login_as):
    d = date
    crm = Crm(
        hired=d(2024, 3, 2), held=2,
        opportunities=[
            opp("I", 100_000, [("potential", d(2025, 6, 1)), ("intent", d(2025, 6, 2)),
                               ("won", d(2025, 7, 1))], d(2025, 7, 1)),
            opp("I", 100_000, [("potential", d(2025, 6, 1)), ("intent", d(2025, 6, 2)),
                               ("lost", d(2025, 7, 1))], d(2025, 7, 1)),
            opp("E", 100_000, [("potential", d(2025, 6, 1)), ("lost", d(2025, 7, 1))],
                d(2025, 7, 1)),
        ],
        forecasts={(2026, 2): (400, 300)}, incidents=[],
        industries={"I": "互联网", "E": "能源", "Q": "零售"})
    fresh = compare(session, admin, make_account, crm, NOW)
    assert fresh["win_rate"] == pytest.approx(1 / 3)
    from sqlalchemy import select

    from bidhub.models import User
    rep = session.scalars(select(User).where(User.display_name.like("销售%"))).all()[-1]
    client = login_as(make_manager())
    page = client.get(f"/reps/{rep.id}").get_data(as_text=True)
    assert "1 won of 3 closed" in page  # win rate: opportunities closed in the window
    assert "1 won of 2 closed" in page  # stage conversion: the one lost as potential is out
    assert "opportunities closed in the last 12 months" in page
    # 730 days are 23.98 months: two decimals, so a rep short of 24 months does not read 24.
    assert "2 accounts" in page and "23.98 months" in page
    assert "actual ¥300 of forecast ¥400" in page
    assert "2 held, 0 lost (0 without a review)" in page
    chinese = client.get(f"/reps/{rep.id}", headers={"Accept-Language": "zh-CN"}).get_data(
        as_text=True)
    assert "近 12 个月内关闭的商机：已关闭 3 个，赢单 1 个" in chinese
    assert "2 个客户" in chinese and "23.98 个月" in chinese
    assert "无数据" in chinese or "暂无数据" in chinese  # industry_experience is left out;
    # a rep without incidents still has 0 of them, a number rather than "no data"



def test_the_track_record_page_writes_large_numbers_out_in_both_languages(
        app, make_rep, make_manager, login_as):
    # 38,777 days since 1 January 1920 are 1,273.9877 months.
    rep = make_rep(hired_on=date(1920, 1, 1))
    client = login_as(make_manager())
    page = client.get(f"/reps/{rep.id}").get_data(as_text=True)
    assert "1,273.99 months" in page and "e+0" not in page
    chinese = client.get(f"/reps/{rep.id}", headers={"Accept-Language": "zh-CN"}).get_data(
        as_text=True)
    assert "1,273.99 个月" in chinese and "e+0" not in chinese
    from bidhub.web.rendering import metric_amount
    for language, held, seen in (("en", "1,234 accounts", "12,345 incidents"),
                                 ("zh-CN", "1,234 个客户", "12,345 条问责")):
        with app.test_request_context(headers={"Accept-Language": language}):
            assert metric_amount(1234.0, "accounts_held") == held
            assert metric_amount(12_345.0, "accountability_incidents") == seen


def test_the_bid_form_shows_the_track_record_with_its_units(
        app, make_rep, make_account, make_round, login_as):
    import re

    # Hired 730 days before the clock (23.98 months), holding two accounts.
    rep = make_rep(hired_on=date(2024, 3, 2))
    make_account(owner=rep), make_account(owner=rep)
    listing = make_round(accounts=[make_account()]).listings[0]
    client = login_as(rep)

    def shown(language: str) -> dict[str, str]:
        page = client.get(f"/listings/{listing.id}/bid",
                          headers={"Accept-Language": language}).get_data(as_text=True)
        card = page[page.index('class="card track-record"'):]
        return dict(re.findall(r'<th class="term">([^<]+)</th><td class="num">\s*(.+?)\s*</td>',
                               card[:card.index("</aside>")]))

    english = shown("en")
    assert english["Accounts held"] == "2 accounts"
    assert english["Tenure (months)"] == "23.98 months"
    assert english["Open accountability incidents"] == "0 incidents"
    chinese = shown("zh-CN")
    assert "2 个客户" in chinese.values() and "23.98 个月" in chinese.values()

@pytest.mark.parametrize("now", [midnight(date(2027, 3, 1)) + timedelta(minutes=30),
                                 midnight(date(2027, 3, 1)) + timedelta(hours=9)])
def test_a_bid_freezes_the_documented_track_record(session, admin, make_account, make_round,
                                                   clock, make_bid, now):
    from sqlalchemy import select

    from bidhub.models import Listing, User

    crm = Crm(hired=date(2025, 1, 31), held=1,
              opportunities=[opp("I", 500, [("potential", date(2026, 9, 1)),
                                            ("won", date(2026, 9, 2))], date(2026, 9, 2))],
              forecasts={(2027, 2): (400, 300), (2026, 2): (100, 100)},
              incidents=[(date(2026, 8, 31), "open"), (date(2026, 9, 1), "explained")],
              industries={"I": "互联网", "E": "能源", "Q": "零售"})
    fresh = compare(session, admin, make_account, crm, now)
    rep = session.scalars(select(User).where(User.id == max(
        session.scalars(select(User.id).where(User.display_name.like("销售%")))))).one()
    clock.set(now)
    account = make_account(industry="互联网")
    round_ = make_round(accounts=[account], opens_at=now - timedelta(hours=1),
                        closes_at=now + timedelta(days=1))
    listing = session.scalars(select(Listing).where(Listing.round_id == round_.id)).one()
    bid = make_bid(rep, listing)
    assert bid.track_record == fresh


def test_a_deal_won_and_later_lost_reached_past_intent(session, admin, make_account):
    # Won straight from potential, then lost (the customer backed out): it reached closed-won,
    # a stage past intent, so stage conversion counts it as a closed opportunity not won.
    d = date
    crm = Crm(hired=d(2020, 1, 1), held=1,
              opportunities=[opp("I", 100_000, [("potential", d(2025, 6, 1)), ("won", d(2025, 7, 1)),
                                                ("lost", d(2025, 8, 1))], d(2025, 8, 1)),
                             opp("E", 100_000, [("potential", d(2025, 6, 1)), ("intent", d(2025, 6, 5)),
                                                ("won", d(2025, 7, 1))], d(2025, 7, 1))],
              forecasts={}, incidents=[], industries={"I": "互联网", "E": "能源", "Q": "零售"})
    fresh = compare(session, admin, make_account, crm, NOW)
    assert fresh["stage_conversion"] == 0.5
    assert fresh["win_rate"] == 0.5


def test_an_account_moved_away_by_import_is_a_loss_without_a_review(
        session, admin, make_account, clock):
    from sqlalchemy import select

    from bidhub.models import User

    def run(kind, header, lines, now):
        text = "\n".join([header, *lines]) + "\n"
        result = import_file(session, admin, kind, f"{kind}.csv", text.encode("utf-8-sig"),
                             valid_rows_only=False, now=now)
        assert result.status == "imported", result.problems

    reps = ["员工编号,用户名,姓名,分公司,入职日期,状态",
            ["L1,loser,流失者,BJ,2020-01-01,在职", "L2,keeper,接手者,BJ,2020-01-01,在职"]]
    header = "客户编号,客户名称,行业,所有制,分公司,年度金额,所属销售"
    run("reps", *reps, NOW - timedelta(days=400))
    run("accounts", header, [f"LA{i},客户LA{i},能源,民营,BJ,100000,L1" for i in range(3)],
        NOW - timedelta(days=400))
    lost_at = NOW - timedelta(days=30)
    run("accounts", header, ["LA0,客户LA0,能源,民营,BJ,100000,L2"], lost_at)
    rep = session.scalars(select(User).where(User.external_id == "L1")).one()
    account = make_account(industry="能源")
    record = fresh_track_record(session, rep, account, NOW)
    assert snapshot_track_record(session, rep, account, NOW) == record
    assert record["accounts_held"] == 2
    assert record["unreviewed_losses"] == 1
    assert record["retention"] == pytest.approx(1 - 2 / 3)  # (0 + 2 x 1) / (2 held + 1 lost)
    assert record["accountability_incidents"] == 0
    # Thirteen months on, the loss is out of the window: nothing lost in the last 12 months.
    later = lost_at + timedelta(days=400)
    record = fresh_track_record(session, rep, account, later)
    assert record["unreviewed_losses"] == 0 and record["retention"] == 1.0
