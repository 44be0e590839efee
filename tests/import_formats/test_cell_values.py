"""Values a worksheet holds that are not what a field reads: an error value a failed formula
left (#N/A from a lookup that found nothing), a small number Python would write as 8e-05,
and a time of day no clock shows after a date."""

from __future__ import annotations

import io

import pytest
import xlwt
from sqlalchemy import select

from bidhub.domain.imports import EXCEL_ERRORS, BadValue, cell_text, parse_date, preview_rows
from bidhub.models import Account, ImportRun, Opportunity
from tests.conftest import reload
from tests.import_formats.conftest import saved, xlsx_of, xlsx_workbook

ACCOUNTS = [["客户编号", "客户名称", "行业", "所有制", "分公司", "年度金额", "所属销售"],
            ["KA-1", "甲公司", "互联网", "民营", "BJ", 1200000, "R1001"],
            ["KA-2", "乙公司", "能源", "国有", "SH", 350000, "R1002"],
            ["KA-3", "丙公司", "制造", "民营", "GZ", 90000, "R1003"]]


def with_errors(suffix: str) -> bytes:
    """ACCOUNTS with #N/A as KA-1's name and #REF! as KA-2's industry, as error values in a
    workbook and as the text a CSV saved from it holds."""
    records = [list(record) for record in ACCOUNTS]
    records[1][1], records[2][2] = "#N/A", "#REF!"
    if suffix == "csv":
        return "\r\n".join(",".join(map(str, record)) for record in records).encode("utf-8-sig")
    if suffix == "xls":
        workbook = xlwt.Workbook(encoding="utf-8")
        sheet = workbook.add_sheet("导出数据")
        for row, record in enumerate(records):
            for column, value in enumerate(record):
                if value in EXCEL_ERRORS:
                    # xlwt knows #N/A by its code only (42, as BIFF stores it)
                    sheet.row(row).set_cell_error(column, 42 if value == "#N/A" else value)
                else:
                    sheet.write(row, column, value)
        return saved(workbook)
    workbook = xlsx_workbook(records)
    assert workbook.active["B2"].data_type == "e"  # openpyxl writes it as an error value
    return saved(workbook)


def stored_accounts(session) -> dict[str, tuple]:
    reload(session)
    return {account.external_id: (account.name, account.industry, account.annual_value_yuan)
            for account in session.scalars(select(Account))}


@pytest.mark.parametrize("suffix", ["xlsx", "xls", "csv"])
def test_an_excel_error_value_is_a_problem_naming_its_cell(session, reps, run_import, suffix):
    """A VLOOKUP that found nothing shows #N/A: stored, it would be an account named "#N/A"."""
    before = stored_accounts(session)
    result = run_import("accounts", with_errors(suffix), f"accounts.{suffix}")
    assert result.status == "refused"
    assert [(problem.row, problem.column, problem.value, str(problem.reason))
            for problem in result.problems] == [
        (2, "name", "#N/A", "Cell B2 holds Excel's error value #N/A, not a value: the formula in "
         "it failed (a lookup that finds nothing gives #N/A). Put the value in the cell, then "
         "import the file again."),
        (3, "industry", "#REF!", "Cell C3 holds Excel's error value #REF!, not a value: the "
         "formula in it failed (a lookup that finds nothing gives #N/A). Put the value in the "
         "cell, then import the file again.")]
    assert stored_accounts(session) == before


def test_the_rows_without_an_error_value_import_when_only_valid_rows_are_asked_for(
        session, reps, make_admin, clock):
    from bidhub.services.imports import import_file

    result = import_file(session, make_admin(), "accounts", "accounts.xlsx", with_errors("xlsx"),
                         valid_rows_only=True, now=clock())
    assert (result.status, result.added, result.skipped) == ("imported", 1, 2)
    assert stored_accounts(session)["KA-3"] == ("丙公司", "制造", 90000)
    assert {"KA-1", "KA-2"}.isdisjoint(stored_accounts(session))


def test_an_error_value_in_a_column_not_read_does_not_matter(session, reps, run_import):
    records = [[*record, "备注"] if number == 0 else [*record, "#N/A"]
               for number, record in enumerate(ACCOUNTS)]
    result = run_import("accounts", xlsx_of(records), "accounts.xlsx")
    assert (result.status, result.problems, result.added) == ("imported", [], 3)


def test_the_mapping_preview_names_an_error_value():
    records = [["员工编号", "用户名", "姓名", "分公司"], ["R1", "a", " #N/A ", "BJ"]]
    columns = {"员工编号": "external_id", "用户名": "username", "姓名": "name", "分公司": "branch"}
    [row] = preview_rows("reps", records, columns, 5)
    cell = next(cell for cell in row.cells if cell.field == "name")
    assert (cell.raw, cell.value) == ("#N/A", "")
    assert "Cell C2 holds Excel's error value #N/A" in str(cell.problem)
    assert all(cell.problem is None for cell in row.cells if cell.field != "name")


def test_the_chinese_report_names_the_error_value(app):
    from flask_babel import force_locale

    from bidhub.domain.imports import no_value_problem
    from bidhub.web.i18n import translate

    problem = no_value_problem(2, "name", 1, ["KA-1", "#N/A"], ["KA-1", "#N/A"])
    with app.test_request_context(), force_locale("zh_CN"):
        assert translate(problem.reason) == ("单元格 B2 是 Excel 的错误值 #N/A，不是数据：其中的公式计算失败"
                                       "（例如查找不到时显示 #N/A）。请在该单元格填入实际的值，然后重新导入。")


@pytest.mark.parametrize(("value", "text"), [
    (8e-05, "0.00008"), (-1.5e-07, "-0.00000015"), (0.00005, "0.00005"), (0.1, "0.1"),
    (1320.0000000000002, "1320"), (123.45, "123.45"),
])
def test_a_small_number_reads_as_excel_shows_it(value, text):
    assert cell_text(value) == text


def test_a_small_amount_in_yi_yuan_is_that_many_yuan(session, reps, make_admin, clock):
    """0.00008 亿元 is 8,000 yuan; Python writes the number as 8e-05, which is no amount."""
    from bidhub.services.imports import import_file

    records = [[*ACCOUNTS[0][:5], "年度金额(亿元)", ACCOUNTS[0][6]],
               [*ACCOUNTS[1][:5], 0.00008, ACCOUNTS[1][6]],
               [*ACCOUNTS[2][:5], 0.035, ACCOUNTS[2][6]]]
    mapping = {"客户编号": "external_id", "客户名称": "name", "行业": "industry",
               "所有制": "ownership_type", "分公司": "branch",
               "年度金额(亿元)": "annual_value_yuan", "所属销售": "owner"}
    result = import_file(session, make_admin(), "accounts", "accounts.xlsx", xlsx_of(records),
                         valid_rows_only=False, now=clock(), mapping=mapping)
    assert (result.status, result.problems) == ("imported", [])
    stored = stored_accounts(session)
    assert (stored["KA-1"][2], stored["KA-2"][2]) == (8000, 3500000)


@pytest.mark.parametrize("cell", ["2026-03-05 25:61", "2026-03-05T14:75", "2026-03-05 24:00",
                                  "2026-03-05 下午 13:61", "2026-03-05 14:30:60",
                                  "2026-03-05 30时", "2026-03-05 星期四 25:00"])
def test_a_time_no_clock_shows_after_a_day_is_not_a_date(cell):
    """Only a time of day is dropped after the day: 25:61 is none, zone or no zone."""
    with pytest.raises(BadValue, match="Not a date"):
        parse_date(cell)


def test_an_opportunity_opened_at_no_such_time_is_refused(session, reps, run_import):
    accounts = "\r\n".join(",".join(map(str, record)) for record in ACCOUNTS)
    assert run_import("accounts", accounts.encode(), "accounts.csv").status == "imported"
    runs = session.scalar(select(ImportRun.id).order_by(ImportRun.id.desc()).limit(1))
    result = run_import("opportunities", (
        "商机编号,客户编号,销售,金额,阶段,创建日期\r\n"
        "OPP-1,KA-1,R1001,100,意向客户,2026-03-05 25:61\r\n").encode(), "opportunities.csv")
    assert result.status == "refused"
    assert [(problem.row, problem.column, problem.value) for problem in result.problems] == [
        (2, "opened", "2026-03-05 25:61")]
    assert session.scalars(select(Opportunity)).all() == []
    assert result.run_id > runs


def test_the_cli_reports_what_the_web_report_does(app, session, branches, run_import,
                                                  make_admin, tmp_path):
    """The warnings (an owner read without its leading zeros), the rows the workbook hides
    and the amounts rounded to whole yuan, beside the counts."""
    roster = "员工编号,用户名,姓名,分公司,入职日期,状态\n001234,zhaolei,赵磊,BJ,2020-01-01,在职\n"
    assert run_import("reps", roster.encode(), "花名册.csv").status == "imported"
    workbook = xlsx_workbook([ACCOUNTS[0], [*ACCOUNTS[1][:5], 1200000.4, "1234"],
                              [*ACCOUNTS[2][:5], 350000, "001234"]])
    workbook.active.row_dimensions[3].hidden = True
    path = tmp_path / "客户.xlsx"
    path.write_bytes(saved(workbook))
    result = app.test_cli_runner().invoke(args=["import", "accounts", str(path), "--by",
                                                make_admin().username])
    assert result.exit_code == 0, result.output
    assert ("1 row of the table hidden in the workbook (hidden, in a collapsed group or by a "
            "filter) was read like the others: row 3.") in result.output
    assert ("Amounts in annual_value_yuan with a fraction of a yuan, stored rounded half up to "
            "whole yuan: 1.") in result.output
    assert "Imported with a warning (1):\nrow\tcolumn\tvalue\twarning\n2\towner\t1234\tRead as " \
           "赵磊, employee id 001234" in result.output
    assert "imported" in result.output.splitlines()[-1]


# --- a workbook whose table is not on its first sheet --------------------------------------------

NOTES = [["填写说明"], ["1. 客户编号必填"], ["2. 年度金额单位为元"]]


def notes_first(suffix: str) -> bytes:
    """An import template as they come: its instructions sheet (填写说明) first, visible, and
    the table (ACCOUNTS) on the sheet after it."""
    if suffix == "xls":
        workbook = xlwt.Workbook(encoding="utf-8")
        for name, records in (("填写说明", NOTES), ("客户清单", ACCOUNTS)):
            sheet = workbook.add_sheet(name)
            for row, record in enumerate(records):
                for column, value in enumerate(record):
                    sheet.write(row, column, value)
        return saved(workbook)
    workbook = xlsx_workbook(NOTES)
    workbook.active.title = "填写说明"
    table = workbook.create_sheet("客户清单")
    for record in ACCOUNTS:
        table.append(record)
    return saved(workbook)


@pytest.mark.parametrize("suffix", ["xlsx", "xls"])
def test_a_table_on_the_second_sheet_is_refused_naming_the_sheets(session, reps, run_import,
                                                                 suffix):
    before = stored_accounts(session)
    result = run_import("accounts", notes_first(suffix), f"accounts.{suffix}")
    assert result.status == "refused"
    [problem] = result.problems
    assert str(problem.reason) == (
        "bidhub found no column names: each row with anything in it holds a single cell, as a "
        "title does (row 1: “填写说明”). Put the column names in one row above the rows and "
        "import the file again. A workbook is read from its first visible sheet, “填写说明”; "
        "this file has other sheets too (“客户清单”). If the table is on another sheet, move "
        "that sheet to the front (or delete the others), and import the file again.")
    assert stored_accounts(session) == before


def test_the_sheet_note_reads_in_chinese(app):
    from flask_babel import force_locale

    from bidhub.domain.imports import NoTable
    from bidhub.domain.text import N_
    from bidhub.services.imports import on_another_sheet
    from bidhub.web.i18n import translate

    refusal = on_another_sheet(NoTable(N_("The file is empty.")), ["说明", "客户", "销售"])
    with app.test_request_context(), force_locale("zh_CN"):
        assert translate(refusal.message) == (
            "文件是空的。工作簿按第一个可见的工作表（“说明”）读取；此文件还有其他工作表"
            "（“客户”、“销售”）。如果表格在其他工作表中，请把该工作表移到最前面（或删除其他工作表），"
            "然后重新导入。")


def test_a_workbook_of_one_sheet_is_refused_without_the_sheet_note(session, reps, run_import):
    result = run_import("accounts", xlsx_of(NOTES), "accounts.xlsx")
    assert result.status == "refused"
    assert "sheet" not in str(result.problems[0].reason)


def test_a_hidden_first_sheet_is_passed_over_still(session, reps, run_import):
    data = notes_first("xlsx")
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data))
    workbook["填写说明"].sheet_state = "hidden"
    result = run_import("accounts", saved(workbook), "accounts.xlsx")
    assert (result.status, result.problems, result.added) == ("imported", [], 3)
