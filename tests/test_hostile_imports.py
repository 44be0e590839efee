"""Values a database column cannot hold, found in imports and bids: refused by row and column
alike on SQLite and PostgreSQL, never a failed write."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bidhub.domain.errors import InvalidRequest
from bidhub.domain.imports import MAX_YUAN
from bidhub.models import (
    Account,
    AccountabilityIncident,
    Bid,
    ImportRun,
    MonthlyForecast,
    Opportunity,
    User,
)
from bidhub.services import limits
from bidhub.services.bidding import submit_bid
from bidhub.services.imports import import_file
from tests.conftest import login, reload

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

    def run_import(kind: str, text: str | bytes, **values: str):
        data = text if isinstance(text, bytes) else text.format(**(GOOD | values)).encode()
        return import_file(session, admin, kind, f"{kind}.csv", data, valid_rows_only=False,
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
    # A hire date is said with its own range, as the user form says it.
    assert "Enter a hire date between 1950-01-01 and today" in refused_cell(result, "hire_date")
    assert count(session, User) == 2  # the admin and R-1
    assert count(session, ImportRun) == runs + 3


def test_a_far_off_month_is_refused(session, run, held):
    result = run("forecasts", FORECASTS, month="0001-01")
    assert "between the years" in refused_cell(result, "month")
    assert count(session, MonthlyForecast) == 0
    assert run("forecasts", FORECASTS).status == "imported"


def test_dates_at_the_edges_of_the_years_are_taken(run, held):
    assert run("opportunities", OPPORTUNITIES, day="1900-01-01").status == "imported"
    # A hire date has narrower edges, the users page's: from 1950 to the import's day.
    assert run("reps", REPS, day="1950-01-01").status == "imported"
    result = run("reps", REPS, day="2100-12-31")
    assert refused_cell(result, "hire_date").startswith("Enter a hire date between 1950-01-01")



# --- days that record what happened, after the day of the import ---------------------------------

HISTORY = ("external_id,account,rep,amount_yuan,stage,opened_on,closed_on,stage_history\r\n"
           "O-1,KA-1,R-1,1000,{stage},{opened},{closed},{history}\r\n")


def opportunity(opened, stage="intent", closed="", history=""):
    return HISTORY.format(stage=stage, opened=opened, closed=closed, history=history)


def test_an_opportunity_dated_after_the_import_is_refused_by_row_and_column(session, run,
                                                                             held):
    """An opening, a close or a stage reached records what happened: a day after the import's
    (in the department's time zone; the clock's 09:00 in Beijing is 2026-03-02 there) has not
    come to pass, as a sighting has not, and nothing of the file is written."""
    today, tomorrow = "2026-03-02", "2026-03-03"
    for text, column, reason in (
            (opportunity(tomorrow), "opened", "The opened date cannot be in the future."),
            (opportunity(today, "won", tomorrow, f"intent:{today};won:{tomorrow}"), "closed",
             "The closed date cannot be in the future."),
            (opportunity(today, "intent", history=f"potential:{today};intent:{tomorrow}"),
             "stage_history", "A stage change cannot be in the future.")):
        result = run("opportunities", text)
        assert refused_cell(result, column) == reason
        assert [problem.value for problem in result.problems] == [tomorrow]
    assert count(session, Opportunity) == 0
    result = run("opportunities", opportunity(today, "won", today, f"intent:{today};won:{today}"))
    assert (result.status, result.added) == ("imported", 1)


def test_a_month_not_yet_begun_has_no_actual(session, run, held):
    result = run("forecasts", FORECASTS, month="2026-04")
    assert refused_cell(result, "actual_yuan") == "A month not yet begun has no actual."
    assert count(session, MonthlyForecast) == 0
    # A forecast for it is what a forecast is; the month under way may have its actual so far.
    text = "rep,month,forecast_yuan,actual_yuan\r\nR-1,2026-04,5000,\r\nR-1,2026-03,5000,100\r\n"
    assert (run("forecasts", text).status, count(session, MonthlyForecast)) == ("imported", 2)


# --- amounts past the INTEGER columns they are stored in -----------------------------------------

@pytest.mark.parametrize("yuan", [str(2**31), '"3,000,000,000"', "30亿", "9999999999999"])
def test_an_amount_past_what_a_row_holds_is_refused_by_row_and_column(session, run, held, yuan):
    """PostgreSQL's INTEGER stops at 2**31 - 1: a larger amount failed the import's write there
    (a 500) while SQLite stored it."""
    result = run("accounts", ACCOUNTS.replace("KA-1", "KA-2"), yuan=yuan)
    assert refused_cell(result, "annual_value_yuan") == "Too large for an amount in yuan."
    result = run("opportunities", OPPORTUNITIES, yuan=yuan)
    assert refused_cell(result, "amount_yuan") == "Too large for an amount in yuan."
    result = run("forecasts", FORECASTS, yuan=yuan)
    assert refused_cell(result, "forecast_yuan") == "Too large for an amount in yuan."
    assert count(session, Account) == 1
    assert count(session, Opportunity) == count(session, MonthlyForecast) == 0


def test_the_largest_amount_a_row_holds_is_imported(session, run, held):
    result = run("accounts", ACCOUNTS, yuan=str(MAX_YUAN))
    assert (result.status, result.updated) == ("imported", 1)
    reload(session)
    assert session.scalar(select(Account.annual_value_yuan)) == MAX_YUAN


@pytest.fixture
def listing(make_rep, make_account, make_round):
    return make_round(accounts=[make_account(owner=make_rep())]).listings[0]


def test_a_bid_past_what_a_row_holds_is_refused_by_the_service(session, clock, make_rep,
                                                                listing):
    assert limits.MAX_REVENUE_YUAN <= MAX_YUAN
    rep = make_rep()
    plan = "A careful plan for this account, with visits every two weeks."
    with pytest.raises(InvalidRequest) as refused:
        submit_bid(session, rep, listing.id, account_plan=plan,
                   committed_revenue_yuan=3_000_000_000, visit_plan=plan, submission_key=None, now=clock())
    assert refused.value.field == "committed_revenue_yuan"
    session.rollback()
    assert count(session, Bid) == 0
    submit_bid(session, rep, listing.id, account_plan=plan,
               committed_revenue_yuan=limits.MAX_REVENUE_YUAN, visit_plan=plan, submission_key=None, now=clock())
    assert count(session, Bid) == 1


def test_a_typed_revenue_past_the_range_is_told_the_range(client, session, make_rep, listing):
    login(client, make_rep())
    plan = "A careful plan for this account, with visits every two weeks."
    for typed in ("3000000000", "30亿", "9" * 30):
        response = client.post(f"/listings/{listing.id}/bid", data={
            "account_plan": plan, "committed_revenue_yuan": typed, "visit_plan": plan})
        assert response.status_code == 422, typed
        assert f"{limits.MAX_REVENUE_YUAN:,}" in response.get_data(as_text=True), typed
    assert count(session, Bid) == 0


# --- one file, two encodings ---------------------------------------------------------------------

GBK_REPS = "员工编号,用户名,姓名,分公司\r\nR-1,u1,王芳,BJ\r\n".encode("gbk")


@pytest.mark.parametrize("pasted", ["R-2,u2,李军,BJ\r\n", "R-2,u2,李军,BJ\r\nR-3,u3,张伟,BJ\r\n"])
def test_a_utf8_line_in_a_gbk_file_is_refused_by_its_line(session, run, pasted):
    """Read as GBK, the UTF-8 line was no error: 李军 was stored as 鏉庡啗."""
    result = run("reps", GBK_REPS + pasted.encode())
    assert result.status == "refused"
    [problem] = result.problems
    assert problem.row is None and "Line 3 is written in UTF-8" in str(problem.reason)
    assert count(session, User) == 1  # the admin


@pytest.mark.parametrize("encoding", ["gbk", "utf-8", "utf-8-sig"])
def test_a_file_in_one_encoding_imports_its_chinese_as_written(session, run, encoding):
    text = "员工编号,用户名,姓名,分公司\r\nR-1,u1,王芳,BJ\r\nR-2,u2,李军,BJ\r\nR-3,u3,欧阳娜娜,BJ\r\n"
    result = run("reps", text.encode(encoding))
    assert result.status == "imported", result.problems
    reload(session)
    assert sorted(session.scalars(select(User.display_name).where(User.role == "rep"))) == [
        "李军", "欧阳娜娜", "王芳"]
