"""The department's monthly forecasts (月度预测): the reps' forecasts summed per month, the known
actuals beside them against the same reps' forecasts, per branch, and each rep's for a month."""

from __future__ import annotations

import random
import re
from datetime import date

from bidhub.models import MonthlyForecast, Role
from bidhub.services.forecasts import department_forecasts, month_forecasts
from tests.conftest import login

CHINESE = {"Accept-Language": "zh-CN"}


def forecast(session, rep, month: date, forecast_yuan: int, actual_yuan: int | None = None):
    session.add(MonthlyForecast(rep_id=rep.id, month=month, forecast_yuan=forecast_yuan,
                                actual_yuan=actual_yuan))


def test_the_months_sum_every_reps_forecast_and_the_known_actuals_against_theirs(
        session, make_rep, make_branch):
    """Against an independent sum over generated forecasts: per month, every forecast; the
    actuals only where known, compared with those same reps' forecasts; per branch too."""
    rng = random.Random(7)
    beijing, shanghai = make_branch("BJ", "Beijing"), make_branch("SH", "Shanghai")
    reps = [make_rep(branch=rng.choice((beijing, shanghai))) for _ in range(8)]
    months = [date(2026, month, 1) for month in range(1, 11)]
    written = []
    for rep in reps:
        for month in rng.sample(months, 6):
            amount = rng.randrange(0, 900_000, 10_000)
            actual = rng.choice((None, rng.randrange(0, 900_000, 10_000)))
            forecast(session, rep, month, amount, actual)
            written.append((rep, month, amount, actual))
    session.commit()
    for branch in (None, beijing, shanghai):
        kept = [row for row in written if branch is None or row[0].branch_id == branch.id]
        expected = {}
        for month in sorted({row[1] for row in kept}, reverse=True):
            rows = [row for row in kept if row[1] == month]
            known = [row for row in rows if row[3] is not None]
            expected[month] = (len(rows), sum(row[2] for row in rows), len(known),
                               sum(row[3] for row in known), sum(row[2] for row in known))
        totals = department_forecasts(session, branch_id=branch.id if branch else None)
        assert {total.month: (total.reps, total.forecast_yuan, total.reported,
                              total.actual_yuan, total.reported_forecast_yuan)
                for total in totals} == expected
        assert [total.month for total in totals] == sorted(expected, reverse=True)
        for total in totals:
            share = (total.actual_yuan / total.reported_forecast_yuan
                     if total.reported and total.reported_forecast_yuan else None)
            assert total.attainment == share
    rows = month_forecasts(session, months[0])
    assert {(row.rep.id, row.forecast_yuan, row.actual_yuan) for row in rows} == {
        (rep.id, amount, actual) for rep, month, amount, actual in written if month == months[0]}


def test_management_reads_the_page_in_chinese_with_a_months_reps(client, session, make_rep,
                                                                 make_manager, make_branch):
    beijing, shanghai = make_branch("BJ", "Beijing"), make_branch("SH", "Shanghai")
    wang, li = make_rep(name="王伟", branch=beijing), make_rep(name="李娜", branch=shanghai)
    forecast(session, wang, date(2026, 10, 1), 500_000, 450_000)
    forecast(session, li, date(2026, 10, 1), 300_000)
    forecast(session, wang, date(2026, 11, 1), 600_000)
    session.commit()
    login(client, make_manager())
    page = client.get("/reps/forecasts", headers=CHINESE).get_data(as_text=True)
    october = re.search(r'<tr id="month-2026-10">(.*?)</tr>', page, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", cell).strip()
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", october, re.S)]
    assert cells == ["2026-10", "2", "¥800,000", "1", "¥450,000", "90%"]
    assert page.index('id="month-2026-11"') < page.index('id="month-2026-10"')
    assert "月度预测" in page and "预测合计" in page

    only_beijing = client.get(f"/reps/forecasts?branch={beijing.id}&month=2026-10",
                              headers=CHINESE).get_data(as_text=True)
    october = re.search(r'<tr id="month-2026-10"[^>]*>(.*?)</tr>', only_beijing, re.S).group(1)
    assert "¥500,000" in october and "¥800,000" not in october
    reps = only_beijing[only_beijing.index('id="month-reps"'):]
    assert "王伟" in reps and "李娜" not in reps
    assert "-¥50,000" in reps, reps[:1500]

    garbage = client.get("/reps/forecasts?branch=abc&month=2026-13", headers=CHINESE)
    assert garbage.status_code == 200
    text = garbage.get_data(as_text=True)
    assert "“abc”不是列表中的分公司" in text and "“2026-13”不是月份" in text
    assert 'id="month-2026-10"' in text and 'id="month-reps"' not in text


def test_only_management_reads_the_departments_forecasts(app, make_rep, make_user,
                                                         make_admin):
    for user, status in ((make_rep(), 403), (make_user(Role.EXECUTIVE), 403),
                         (make_admin(), 200)):
        client = app.test_client()
        login(client, user)
        assert client.get("/reps/forecasts").status_code == status, user.role
