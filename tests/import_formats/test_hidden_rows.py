"""Rows a workbook hides (by hand, in a collapsed group, or left out by a filter): Excel does not
show them, yet the file holds them, as a CSV saved from it would. Each format that can hide a
row (a web page too: Excel saves a hidden row as display:none) reads it like any other, and the import's report names the rows of the table that were
hidden, so that an import never holds more than the admin saw without saying so."""

from __future__ import annotations

from html import escape

import pytest
import xlwt
from sqlalchemy import func, select

from bidhub.domain.imports import HiddenRow, add_to_ranges, like_row, parse_rows
from bidhub.models import Account, ImportRun
from tests.conftest import reload
from tests.import_formats.conftest import saved, xlsx_workbook
from tests.import_formats.test_spreadsheet_xml import HEAD, sheet

HEADER = ["客户编号", "客户名称", "行业", "所有制", "分公司", "年度金额"]
ACCOUNTS = [["KA-1", "甲公司", "互联网", "民营", "BJ", "100000"],
            ["KA-2", "乙公司", "能源", "国有", "BJ", "200000"],
            ["KA-3", "丙公司", "制造业", "民营", "SH", "300000"],
            ["KA-4", "丁公司", "物流", "民营", "SH", "400000"],
            ["KA-5", "戊公司", "汽车", "国有", "GZ", "500000"],
            ["KA-6", "己公司", "汽车", "民营", "GZ", "600000"]]
# A title above the column names and a totals row below the table, both hidden too: neither
# is a row of the table, so neither is reported.
RECORDS = [["客户清单"], HEADER, *ACCOUNTS, ["合计", "", "", "", "", "2100000"]]
HIDDEN = {1, 4, 6, 7, 9}  # as Excel numbers the rows: the title, KA-2, KA-4, KA-5, the totals
HIDDEN_IN_TABLE = [(4, 4), (6, 7)]


def xlsx_file() -> bytes:
    workbook = xlsx_workbook(RECORDS)
    for number in HIDDEN:
        workbook.active.row_dimensions[number].hidden = True
    return saved(workbook)


def xls_file(hidden: set[int] = HIDDEN) -> bytes:
    workbook = xlwt.Workbook(encoding="utf-8")
    worksheet = workbook.add_sheet("导出数据")
    for row, record in enumerate(RECORDS):
        for column, value in enumerate(record):
            if value:
                worksheet.write(row, column, value)
        if row + 1 in hidden:
            worksheet.row(row).hidden = True
    return saved(workbook)


def spreadsheet_xml() -> bytes:
    hidden = ' ss:Hidden="1"'
    rows = [f"<Row{hidden if number in HIDDEN else ''}>"
            + "".join(f'<Cell><Data ss:Type="String">{escape(value)}</Data></Cell>'
                      for value in record) + "</Row>"
            for number, record in enumerate(RECORDS, start=1)]
    return (HEAD + sheet("客户", rows) + "</Workbook>").encode()


def web_page(hidden: set[int] = HIDDEN) -> bytes:
    """As Excel saves a sheet as a web page: a hidden row's style is display:none; one row
    is hidden by the attribute `hidden` instead."""
    def row(number: int) -> str:
        shown = ("" if number not in hidden else " hidden" if number == max(hidden)
                 else " height=0 style='display:none'")
        return f"<tr{shown}>"

    rows = [row(number) + "".join(f"<td>{escape(value)}</td>" for value in record) + "</tr>"
            for number, record in enumerate(RECORDS, start=1)]
    return ('<html><head><meta charset="utf-8"></head><body><table>' + "\n".join(rows)
            + "</table></body></html>").encode()


FILES = {"accounts.xlsx": xlsx_file, "accounts.xls": xls_file,
         "accounts-xml.xls": spreadsheet_xml, "accounts-page.xls": web_page}


@pytest.mark.parametrize("filename", FILES)
def test_hidden_rows_of_the_table_are_imported_and_named_in_the_report(session, reps,
                                                                         run_import, filename):
    result = run_import("accounts", FILES[filename](), filename)
    assert (result.status, result.added, result.problems) == ("imported", len(ACCOUNTS), [])
    assert (result.hidden_rows, result.hidden_rows_count) == (HIDDEN_IN_TABLE, 3)
    assert [total[0] for total in result.totals_rows] == [9]  # skipped, hidden or not
    reload(session)
    assert session.scalar(select(func.count()).select_from(Account)) == len(ACCOUNTS)
    report = session.get(ImportRun, result.run_id).report
    assert report["hidden_rows"] == {"ranges": [[4, 4], [6, 7]], "count": 3}


@pytest.mark.parametrize("filename", FILES)
def test_a_workbook_hiding_nothing_reports_nothing_hidden(session, reps, run_import, filename):
    data = {"accounts.xlsx": lambda: saved(xlsx_workbook(RECORDS)),
            "accounts.xls": lambda: xls_file(hidden=set()),
            "accounts-xml.xls": lambda: spreadsheet_xml().replace(b' ss:Hidden="1"', b""),
            "accounts-page.xls": lambda: web_page(hidden=set())}
    result = run_import("accounts", data[filename](), filename)
    assert (result.status, result.hidden_rows, result.hidden_rows_count) == ("imported", [], 0)


def test_a_hidden_row_with_a_problem_is_reported_as_hidden_and_as_a_problem(session, reps,
                                                                            run_import):
    records = [HEADER, ACCOUNTS[0], [*ACCOUNTS[1][:5], "很多"]]
    workbook = xlsx_workbook(records)
    workbook.active.row_dimensions[3].hidden = True
    result = run_import("accounts", saved(workbook), "accounts.xlsx")
    assert result.status == "refused"
    assert [problem.row for problem in result.problems] == [3]
    assert (result.hidden_rows, result.hidden_rows_count) == ([(3, 3)], 1)


def test_rows_hidden_in_runs_are_kept_as_ranges_up_to_the_limit():
    ranges: list[tuple[int, int]] = []
    for number in (2, 3, 4, 7, 9, 10, 12, 13):
        add_to_ranges(ranges, number, limit=3)
    assert ranges == [(2, 4), (7, 7), (9, 10)]


def test_a_hidden_row_stays_hidden_when_its_cells_are_copied():
    assert type(like_row(HiddenRow(["a"]), ["b"])) is HiddenRow
    assert type(like_row(["a"], ["b"])) is list


def test_parsed_records_name_the_hidden_rows_of_the_table():
    records = [HEADER, *ACCOUNTS]
    records = [HiddenRow(record) if number in (3, 5) else record
               for number, record in enumerate(records, start=1)]
    parsed = parse_rows("accounts", records)
    assert (parsed.hidden_rows, parsed.hidden_rows_count) == ([(3, 3), (5, 5)], 2)
