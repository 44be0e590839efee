"""Amounts whose unit a note around the table names: Chinese reports write 单位：万元 above the
table (or 注：金额单位为万元 below it) instead of in each column's name. The amount columns
whose names give no unit are read in that unit, and the report says which row named it; notes
that name different units refuse the file, since no column can be told apart."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from bidhub.domain.imports import units_in_note
from bidhub.models import Account, ImportRun, MonthlyForecast, User
from bidhub.services.imports import import_file, propose_mapping
from tests.conftest import reload
from tests.import_formats.conftest import sample_records, xlsx_of

HEADER = ["客户编号", "客户名称", "行业", "所有制", "分公司", "年度金额", "所属销售"]
ROWS = [["QU-1", "北京单位测试科技有限公司", "互联网", "民营", "BJ", "12.5", "R1001"],
        ["QU-2", "上海单位测试制造有限公司", "制造", "国有", "SH", "300", "R1001"]]


def values(session) -> dict[str, int]:
    reload(session)
    return dict(session.execute(select(Account.external_id, Account.annual_value_yuan)
                                .where(Account.external_id.like("QU-%"))).all())


@pytest.mark.parametrize(("text", "units"), [
    ("单位：万元", {10_000}), ("（单位：人民币万元）", {10_000}), ("单位:元", {1}),
    ("注：金额单位为万元。", {10_000}), ("2026年11月客户清单（单位：万元）", {10_000}),
    ("单位（万元）", {10_000}), ("单位：千万", {10_000_000}), ("单位：万元人民币", {10_000}),
    ("Unit: 10k yuan", {10_000}), ("units: thousand", {1_000}),
    ("单价单位：元，金额单位：万元", {1, 10_000}),
    ("单位：万人", set()), ("数量单位：台", set()), ("单位名称：北京分公司", set()),
    ("导出时间：2026-11-28", set()), ("客户清单", set()),
])
def test_a_note_names_the_unit_of_amounts_only_as_a_unit_of_money(text, units):
    assert units_in_note(text) == units


def test_a_unit_note_above_the_table_reads_the_amounts_in_it(session, reps, run_import):
    data = xlsx_of([["2026年11月大客户清单"], ["单位：万元"], HEADER, *ROWS])
    result = run_import("accounts", data, "accounts.xlsx")
    assert result.status == "imported", result.problems
    assert values(session) == {"QU-1": 125_000, "QU-2": 3_000_000}
    assert result.units == {"annual_value_yuan": 10_000}
    assert result.unit_note == (2, "单位：万元")
    run = session.scalars(select(ImportRun).order_by(ImportRun.id.desc())).first()
    assert run.report["unit_note"] == {"row": 2, "text": "单位：万元"}
    again = run_import("accounts", data, "accounts.xlsx")
    assert (again.status, again.unchanged, again.updated) == ("imported", 2, 0)


def test_a_unit_note_below_the_table_reads_the_amounts_in_it(session, reps, run_import):
    data = xlsx_of([HEADER, *ROWS, [], ["注：金额单位为万元"], ["制表人：", "张三"]])
    result = run_import("accounts", data, "accounts.xlsx")
    assert result.status == "imported", result.problems
    assert values(session) == {"QU-1": 125_000, "QU-2": 3_000_000}
    assert result.unit_note == (5, "注：金额单位为万元")


@pytest.mark.parametrize(("column", "written", "stored"), [
    ("年度金额（元）", "125000", 125_000), ("年度金额（千元）", "125", 125_000)])
def test_a_unit_a_column_names_wins_over_the_note(session, reps, make_admin, clock, column,
                                                  written, stored):
    header = [*HEADER[:5], column, HEADER[6]]
    rows = [[*row[:5], written, row[6]] for row in ROWS]
    result = import_file(session, make_admin(), "accounts", "accounts.xlsx",
                         xlsx_of([["单位：万元"], header, *rows]), now=clock(), valid_rows_only=False,
                         mapping={column: "annual_value_yuan"})
    assert result.status == "imported", result.problems
    assert values(session) == {"QU-1": stored, "QU-2": stored}


def test_notes_naming_different_units_refuse_the_file(session, reps, run_import):
    data = xlsx_of([["单位：万元"], HEADER, *ROWS, ["注：单位：元"]])
    result = run_import("accounts", data, "accounts.xlsx")
    assert result.status == "refused"
    reason = str(result.problems[0].reason)
    assert "row 1" in reason and "row 5" in reason and "年度金额（万元）" in reason
    assert values(session) == {}


def test_a_headcount_note_is_no_unit_of_amounts(session, reps, run_import):
    rows = [[*row[:5], "125000", row[6]] for row in ROWS]
    result = run_import("accounts", xlsx_of([["单位：万人"], HEADER, *rows]), "accounts.xlsx")
    assert result.status == "imported", result.problems
    assert values(session) == {"QU-1": 125_000, "QU-2": 125_000}
    assert result.unit_note is None


def test_a_gbk_forecast_file_reads_both_amount_columns_in_the_noted_unit(session, reps,
                                                                          run_import):
    records = sample_records("forecasts")
    text = "\r\n".join(["2026年上半年月度预测（单位：万元）", ",".join(records[0]),
                        "R1001,2026-01,30,28", "R1001,2026-02,32.5,"])
    result = run_import("forecasts", text.encode("gbk"), "forecasts.csv")
    assert result.status == "imported", result.problems
    assert result.units == {"forecast_yuan": 10_000, "actual_yuan": 10_000}
    reload(session)
    rep = session.scalars(select(User).where(User.external_id == "R1001")).one()
    stored = session.execute(select(MonthlyForecast.month, MonthlyForecast.forecast_yuan,
                                    MonthlyForecast.actual_yuan)
                             .where(MonthlyForecast.rep_id == rep.id)
                             .order_by(MonthlyForecast.month)).all()
    assert [(str(month)[:7], forecast, actual) for month, forecast, actual in stored] == [
        ("2026-01", 300_000, 280_000), ("2026-02", 325_000, None)]


def test_the_mapping_step_reads_the_preview_in_the_noted_unit(session, reps):
    header = ["编号", "公司名称", *HEADER[2:]]  # synonyms: the file goes through the mapping step
    data = xlsx_of([["单位：万元"], header, *ROWS])
    proposal = propose_mapping(session, "accounts", "accounts.xlsx", data)
    assert proposal.unit_note == (1, "单位：万元")
    assert proposal.check.units == {"annual_value_yuan": 10_000}
    shown = {cell.field: cell.value for cell in proposal.preview[0].cells}
    assert shown["annual_value_yuan"] == "125,000"


def test_the_report_page_names_the_row_that_gave_the_unit(session, reps, make_admin,
                                                           login_as):
    client = login_as(make_admin())
    data = xlsx_of([["2026年11月大客户清单"], ["单位：万元"], HEADER, *ROWS])
    response = client.post("/admin/imports/", data={
        "kind": "accounts", "file": (io.BytesIO(data), "accounts.xlsx")},
        content_type="multipart/form-data")
    assert response.status_code == 303
    page = client.get(response.location, headers={"Accept-Language": "zh-CN"}).get_data(
        as_text=True)
    assert "第 2 行（单位：万元）注明了金额单位" in page
    assert "已按 10,000 元为单位读取" in page
