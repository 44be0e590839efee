"""Values a database column cannot hold, found in imports and bids: refused by row and column
alike on SQLite and PostgreSQL, never a failed write."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bidhub.models import (
    AccountabilityIncident,
    ImportRun,
    MonthlyForecast,
    Opportunity,
    User,
)
from bidhub.services.imports import import_file
from tests.conftest import reload

REPS = "external_id,username,name,branch,hire_date,status\r\nR-1,u1,Rep One,BJ,{day},active\r\n"
ACCOUNTS = ("external_id,name,industry,ownership,branch,annual_value_yuan,owner\r\n"
            "KA-1,Acme,IT,private,BJ,{yuan},R-1\r\n")
OPPORTUNITIES = ("external_id,account,rep,amount_yuan,stage,opened_on,closed_on\r\n"
                 "O-1,KA-1,R-1,{yuan},won,{day},{day}\r\n")
FORECASTS = "rep,month,forecast_yuan,actual_yuan\r\nR-1,{month},{yuan},100\r\n"
INCIDENTS = ("external_id,account,rep,competitor_site,seen_on,ad_type,page_area,evidence_url,"
             "status\r\nI-1,KA-1,R-1,www.x.com,{day},logo,首页,https://x.com/,open\r\n")
GOOD = {"day": "2025-06-02", "month": "2025-06", "yuan": "1000"}


def count(session, model) -> int:
    reload(session)
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def run(session, clock, make_branch, make_admin):
    make_branch()
    admin = make_admin()

    def run_import(kind: str, text: str, **values: str):
        return import_file(session, admin, kind, f"{kind}.csv",
                           text.format(**(GOOD | values)).encode(), valid_rows_only=False,
                           now=clock())

    return run_import


@pytest.fixture
def held(run):
    assert run("reps", REPS).status == "imported"
    assert run("accounts", ACCOUNTS).status == "imported"


def refused_cell(result, column: str) -> str:
    assert result.status == "refused", result
    reasons = [str(problem.reason) for problem in result.problems
               if (problem.row, problem.column) == (2, column)]
    assert reasons, result.problems
    return reasons[0]


@pytest.mark.parametrize("day", ["0001-01-01", "1899-12-31", "2101-01-01", "9999-12-31",
                                 "0001年1月1日", "00010101"])
def test_a_date_in_a_far_off_year_is_refused_by_row_and_column(session, run, held, day):
    """Year 1 moved into UTC fell out of datetime's range and the import failed."""
    runs = count(session, ImportRun)
    for kind, text, column in (("opportunities", OPPORTUNITIES, "opened"),
                               ("incidents", INCIDENTS, "seen")):
        result = run(kind, text, day=day)
        assert "between the years 1900 and 2100" in refused_cell(result, column), kind
    assert count(session, Opportunity) == count(session, AccountabilityIncident) == 0
    result = run("reps", REPS.replace("R-1,u1", "R-2,u2"), day=day)
    assert "between the years" in refused_cell(result, "hire_date")
    assert count(session, User) == 2  # the admin and R-1
    assert count(session, ImportRun) == runs + 3


def test_a_far_off_month_is_refused(session, run, held):
    result = run("forecasts", FORECASTS, month="0001-01")
    assert "between the years" in refused_cell(result, "month")
    assert count(session, MonthlyForecast) == 0
    assert run("forecasts", FORECASTS).status == "imported"


def test_dates_at_the_edges_of_the_years_are_taken(run, held):
    assert run("opportunities", OPPORTUNITIES, day="1900-01-01").status == "imported"
    assert run("reps", REPS, day="2100-12-31").status == "imported"
