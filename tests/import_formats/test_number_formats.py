"""Numbers a workbook shows otherwise than it holds them: ids shown zero-padded (a 工号 001234
typed into a cell formatted 000000), and amounts shown scaled (0.85 formatted 0% shows 85%;
120000 formatted 0!.0000 shows 12.0000, yuan in 万). The import reads them as Excel shows
them, as a CSV saved from the workbook holds them, and not as the bare number (1234 names
nobody; 120000 in a 万元 column is 1,200,000,000 yuan)."""

from __future__ import annotations

import struct

import pytest
import xlwt
from sqlalchemy import select

from bidhub.domain.imports import (
    ScaledNumber,
    UnitLabelled,
    ZeroPadded,
    scaled_number,
    shown_number,
    zero_padded,
)
from bidhub.models import Account, Opportunity, User
from bidhub.services.imports import import_file
from bidhub.services.xls_workbooks import shown_cells, shown_formats, xls_rows
from tests.conftest import reload
from tests.import_formats.conftest import saved, xls_of, xlsx_workbook


@pytest.mark.parametrize(("code", "shown"), [
    ("000000", "001234"), ("00", "1234"), ('"R"0000', "R1234"), ('"KA-"000000', "KA-001234"),
    ("\\K\\A-00000", "KA-01234"), ('00000"号"', "01234号"), ("(0000)", "(1234)"),
])
def test_a_zero_padding_format_shows_a_whole_number_as_excel_does(code, shown):
    assert zero_padded(code).shown(1234) == zero_padded(code).shown(1234.0) == shown


@pytest.mark.parametrize("code", ["0", "0.00", "#,##0", "000000;-000000", "General", "@",
                                  "yyyy-mm-dd", "0%", "KA0000", "000000.0", ""])
def test_other_formats_are_no_zero_padding(code):
    assert zero_padded(code) is None


@pytest.mark.parametrize("value", [12.5, -3, True, "001234", None, 10**15])
def test_only_a_whole_number_excel_holds_exactly_is_padded(value):
    assert ZeroPadded("", 6, "").shown(value) is None


@pytest.mark.parametrize(("code", "value", "shown"), [
    ("0%", 0.85, "85%"), ("0%", 0.005, "1%"), ("0.00%", 0.12345, "12.35%"), ("0.0%", 1, "100.0%"),
    ("[Red]0.0%;-0.0%", 0.5, "50.0%"), ("#.00%", 0.0085, ".85%"), ("0%", -0.00001, "0%"),
    ("0!.0000", 120000, "12.0000"), ("0!.0000", 5000, "0.5000"), ("0\\.0000", 1234567, "123.4567"),
    ('0"."0000"万元"', 120000, "12.0000万元"), ("0!.0000", 12.5, "0.0013"),
    ("#,##0,", 120000, "120"), ("#,##0,", 1234567, "1,235"), ("#,##0.0,,", 12345678, "12.3"),
    ('"¥"#,##0,"千"', 56789, "¥57千"), ("0.00%", -0.5, "-50.00%"),
])
def test_a_scaling_format_shows_a_number_as_excel_does(code, value, shown):
    assert scaled_number(code).shown(value) == shown


@pytest.mark.parametrize("code", ["0", "0.00", "#,##0", "#,##0.00;[Red]-#,##0.00", "General",
                                  "@", "yyyy-mm-dd", "[h]:mm", "0.00E+00", "[>100]0%",
                                  "[DBNum1]0%", "0!.00.00", "000000", "", "0%0"])
def test_other_formats_scale_nothing(code):
    assert scaled_number(code) is None


@pytest.mark.parametrize("value", [True, "85%", None, float("nan"), float("inf")])
def test_only_a_finite_number_is_scaled(value):
    assert ScaledNumber("", "%", percent=1).shown(value) is None


@pytest.mark.parametrize(("code", "value", "shown"), [
    ('#,##0.00"万元"', 120, "120万元"), ('0"万"', 1.5, "1.5万"), ('0.0" 千元"', 12, "12 千元"),
    ('"¥"0.00"亿"', 3, "¥3亿"), ('[Red]#,##0"万"', 1.234, "1.234万"),
])
def test_a_format_labelling_a_number_with_a_unit_shows_the_value_with_it(code, value, shown):
    """The unit is the cell's (120万 is 1,200,000 yuan), and the value keeps the digits the cell
    holds: 1.234 shown as 1万 is still 12,340 yuan."""
    assert scaled_number(code) == shown_number(200, code)
    assert isinstance(scaled_number(code), UnitLabelled)
    assert scaled_number(code).shown(value) == shown


@pytest.mark.parametrize("code", ['0"人"', '0"号"', '#,##0.00"元"', '0" 家"'])
def test_a_label_naming_no_multiplying_unit_changes_nothing(code):
    assert scaled_number(code) is None


def test_the_built_in_percentages_are_known_by_number():
    assert shown_number(9, None).shown(0.85) == "85%"
    assert shown_number(10, None).shown(0.85) == "85.00%"
    assert shown_number(3, None) is None and shown_number(170, "000000") == ZeroPadded("", 6, "")


ROSTER = [["员工编号", "用户名", "姓名", "分公司", "入职日期", "状态"],
          [1234, "zhaolei", "赵磊", "BJ", "2020-01-01", "在职"],
          [98, "qianli", "钱力", "SH", "2021-05-01", "在职"]]
ACCOUNT_FIELDS = ("external_id", "name", "industry", "ownership_type", "branch",
                  "annual_value_yuan", "owner")
ACCOUNTS = [["客户编号", "客户名称", "行业", "所有制", "分公司", "年度金额", "所属销售"],
            [12, "甲公司", "互联网", "民营", "BJ", 1200000, 1234],
            [345, "乙公司", "能源", "国有", "SH", 350000, 98]]


def formatted(records: list[list[object]], suffix: str,
              formats: dict[tuple[int, int], str]) -> bytes:
    """A workbook of `records` in the format `suffix` names, each cell `formats` names by
    (row, column) from 0 given that number format."""
    if suffix == "xls":
        return xls_of(records, styles={cell: xlwt.easyxf(num_format_str=code)
                                       for cell, code in formats.items()})
    workbook = xlsx_workbook(records)
    for (row, column), code in formats.items():
        workbook.active.cell(row + 1, column + 1).number_format = code
    return saved(workbook)


@pytest.mark.parametrize("suffix", ["xlsx", "xls"])
def test_ids_shown_zero_padded_are_read_as_shown(session, branches, run_import, suffix):
    result = run_import("reps", formatted(ROSTER, suffix, {(1, 0): "000000", (2, 0): "000000"}),
                        f"花名册.{suffix}")
    assert (result.status, result.added, result.problems) == ("imported", 2, [])
    # The owner column padded as the roster was; the account ids by a format with text in it;
    # the amount's own format (#,##0) is read as the number it is.
    formats = {(row, column): code for row in (1, 2)
               for column, code in ((0, '"KA-"0000'), (5, "#,##0"), (6, "000000"))}
    result = run_import("accounts", formatted(ACCOUNTS, suffix, formats), f"客户.{suffix}")
    assert (result.status, result.added, result.problems) == ("imported", 2, [])
    reload(session)
    owners = dict(session.execute(select(User.id, User.external_id)).all())
    stored = session.scalars(select(Account).order_by(Account.external_id)).all()
    assert [(account.external_id, account.annual_value_yuan, owners[account.owner_id])
            for account in stored] == [("KA-0012", 1_200_000, "001234"),
                                       ("KA-0345", 350_000, "000098")]


@pytest.mark.parametrize("suffix", ["xlsx", "xls"])
def test_amounts_shown_scaled_are_read_as_shown(session, branches, run_import, make_admin, clock,
                                                suffix):
    """A 年度金额(万元) column kept in yuan and shown in 万 (0!.0000) is read in 万, as its
    header says; an amount shown as a percentage is refused at its row and column, as the
    CSV saved from the workbook is."""
    run_import("reps", formatted(ROSTER, suffix, {}), f"花名册.{suffix}")
    accounts = [[*ACCOUNTS[0][:5], "年度金额(万元)", ACCOUNTS[0][6]], *ACCOUNTS[1:]]
    mapping = {header: field for header, field in zip(accounts[0], ACCOUNT_FIELDS, strict=True)}
    result = import_file(session, make_admin(), "accounts", f"客户.{suffix}",
                         formatted(accounts, suffix, {(1, 5): "0!.0000", (2, 5): "0!.0000"}),
                         valid_rows_only=False, now=clock(), mapping=mapping)
    assert (result.status, result.added, result.problems) == ("imported", 2, [])
    reload(session)
    assert dict(session.execute(select(Account.name, Account.annual_value_yuan)).all()) == {
        "甲公司": 1_200_000, "乙公司": 350_000}
    opportunities = [["商机编号", "客户编号", "销售", "金额", "阶段", "创建日期"],
                     ["OPP-1", 12, 1234, 0.85, "商务谈判", "2026-01-05"],
                     ["OPP-2", 345, 98, 0.85, "商务谈判", "2026-01-05"]]
    result = run_import("opportunities", formatted(opportunities, suffix, {
        (1, 3): "0%", (2, 3): "0.00%"}), f"商机.{suffix}")
    assert result.status == "refused"
    assert [(problem.row, problem.column, problem.value) for problem in result.problems] == [
        (2, "amount_yuan", "85%"), (3, "amount_yuan", "85.00%")]
    reload(session)
    assert session.scalars(select(Opportunity)).all() == []


@pytest.mark.parametrize("suffix", ["xlsx", "xls"])
def test_amounts_labelled_in_wan_are_read_as_excel_shows_them(session, branches, run_import,
                                                              suffix):
    """金额 120 formatted #,##0.00"万元" shows 120.00万元: 1,200,000 yuan, as the CSV saved
    from the workbook holds it, and not 120 yuan."""
    run_import("reps", formatted(ROSTER, suffix, {}), f"花名册.{suffix}")
    run_import("accounts", formatted(ACCOUNTS, suffix, {}), f"客户.{suffix}")
    opportunities = [["商机编号", "客户编号", "销售", "金额", "阶段", "创建日期"],
                     ["OPP-1", 12, 1234, 120, "商务谈判", "2026-01-05"],
                     ["OPP-2", 345, 98, 1.5, "商务谈判", "2026-01-05"],
                     ["OPP-3", 345, 98, 80000, "商务谈判", "2026-01-05"]]
    result = run_import("opportunities", formatted(opportunities, suffix, {
        (1, 3): '#,##0.00"万元"', (2, 3): '0"万"'}), f"商机.{suffix}")
    assert (result.status, result.added, result.problems) == ("imported", 3, [])
    reload(session)
    assert dict(session.execute(select(Opportunity.external_id, Opportunity.amount_yuan)).all()
                ) == {"OPP-1": 1_200_000, "OPP-2": 15_000, "OPP-3": 80_000}


def test_a_number_without_such_a_format_is_read_as_the_number(session, branches, run_import):
    reps = xlsx_workbook([["员工编号", "用户名", "姓名", "分公司", "入职日期", "状态"],
                          [1234, "zhaolei", "赵磊", "BJ", "2020-01-01", "在职"]])
    result = run_import("reps", saved(reps), "花名册.xlsx")
    assert (result.status, result.added) == ("imported", 1)
    reload(session)
    assert session.scalars(select(User.external_id).where(User.username == "zhaolei")).one() == (
        "1234")


# --- Excel 97-2003 (.xls): the same formats, read from the workbook's records -----------------

def test_an_xls_pads_only_whole_numbers_in_a_padding_format():
    records = [["编号", "金额"], [7, 3.5], [12.5, 3], ["00042", 4], [8, 5]]
    formats = {(1, 0): "000000", (1, 1): "000000", (2, 0): "000000", (3, 0): "000000",
               (2, 1): "#,##0"}
    assert list(xls_rows(formatted(records, "xls", formats))) == [
        ["编号", "金额"], ["000007", "3.5"], ["12.5", "3"], ["00042", "4"], ["8", "5"]]


def record(kind: int, body: bytes) -> bytes:
    return struct.pack("<HH", kind, len(body)) + body


def bof(version: int) -> bytes:
    return record(0x0809, struct.pack("<HHHHII", version, 0x0005, 0, 0, 0, 0))


def test_a_run_of_numbers_in_one_record_is_padded_by_each_cells_format():
    """Excel writes neighbouring numbers of a row as one MULRK record: row, first column,
    then each cell's format and number, then the last column."""
    cells = [(15, 1234), (16, 5), (15, 6)]  # (cell format, RK number) from column 2
    mulrk = struct.pack("<HH", 3, 2) + b"".join(
        struct.pack("<HI", cell_format, number << 2 | 2) for cell_format, number in cells)
    stream = bof(0x0600) + record(0x00BD, mulrk + struct.pack("<H", 4)) + record(0x000A, b"")
    padded = ZeroPadded("", 6, "")
    assert shown_cells(stream, 0, {15: padded}) == {(3, 2): padded, (3, 4): padded}


def test_the_formats_are_read_from_excel_97_workbooks_only():
    """A FORMAT record holds its number, its length and a flags byte, then the code; an
    Excel 95 workbook lays it out otherwise, and its formats are left unread."""
    code = "000000".encode("utf-16-le")
    globals_ = (record(0x041E, struct.pack("<HHB", 170, 6, 1) + code)
                + record(0x00E0, struct.pack("<HH", 0, 170) + bytes(16))
                + record(0x00E0, struct.pack("<HH", 0, 1) + bytes(16)) + record(0x000A, b""))
    assert shown_formats(bof(0x0600) + globals_) == {0: ZeroPadded("", 6, "")}
    assert shown_formats(bof(0x0500) + globals_) == {}
