"""Ids a workbook keeps as numbers and shows zero-padded (a 工号 001234 typed into a cell
formatted 000000): the import reads them as Excel shows them, as a CSV saved from the
workbook holds them, and not as the bare number (1234) that names nobody."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bidhub.domain.imports import ZeroPadded, zero_padded
from bidhub.models import Account, User
from tests.conftest import reload
from tests.import_formats.conftest import saved, xlsx_workbook


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


def test_ids_shown_zero_padded_are_read_as_shown(session, branches, run_import):
    reps = xlsx_workbook([["员工编号", "用户名", "姓名", "分公司", "入职日期", "状态"],
                          [1234, "zhaolei", "赵磊", "BJ", "2020-01-01", "在职"],
                          [98, "qianli", "钱力", "SH", "2021-05-01", "在职"]])
    for row in (2, 3):
        reps.active.cell(row, 1).number_format = "000000"
    result = run_import("reps", saved(reps), "花名册.xlsx")
    assert (result.status, result.added, result.problems) == ("imported", 2, [])
    # The owner column padded as the roster was; the account ids by a format with text in it;
    # the amount's own format (#,##0) is read as the number it is.
    accounts = xlsx_workbook([["客户编号", "客户名称", "行业", "所有制", "分公司", "年度金额",
                               "所属销售"],
                              [12, "甲公司", "互联网", "民营", "BJ", 1200000, 1234],
                              [345, "乙公司", "能源", "国有", "SH", 350000, 98]])
    for row in (2, 3):
        accounts.active.cell(row, 1).number_format = '"KA-"0000'
        accounts.active.cell(row, 6).number_format = "#,##0"
        accounts.active.cell(row, 7).number_format = "000000"
    result = run_import("accounts", saved(accounts), "客户.xlsx")
    assert (result.status, result.added, result.problems) == ("imported", 2, [])
    reload(session)
    owners = dict(session.execute(select(User.id, User.external_id)).all())
    stored = session.scalars(select(Account).order_by(Account.external_id)).all()
    assert [(account.external_id, account.annual_value_yuan, owners[account.owner_id])
            for account in stored] == [("KA-0012", 1_200_000, "001234"),
                                       ("KA-0345", 350_000, "000098")]


def test_a_number_without_such_a_format_is_read_as_the_number(session, branches, run_import):
    reps = xlsx_workbook([["员工编号", "用户名", "姓名", "分公司", "入职日期", "状态"],
                          [1234, "zhaolei", "赵磊", "BJ", "2020-01-01", "在职"]])
    result = run_import("reps", saved(reps), "花名册.xlsx")
    assert (result.status, result.added) == ("imported", 1)
    reload(session)
    assert session.scalars(select(User.external_id).where(User.username == "zhaolei")).one() == (
        "1234")
