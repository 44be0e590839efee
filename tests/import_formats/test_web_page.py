"""Web-page "Excel" exports (an HTML table saved as .xls) import as Excel shows them."""

from __future__ import annotations

from html import escape

import pytest
from sqlalchemy import func, select

from bidhub.domain.imports import FileRefused, MergedDown, UploadLimits
from bidhub.models import Account, User
from bidhub.services.html_tables import html_rows, is_html_table
from tests.conftest import reload
from tests.import_formats.conftest import sample_records


def web_page(records: list[list[str]], *, charset: str = "gb2312", encoding: str = "gbk",
             before: str = "") -> bytes:
    """A page as web CRMs export "Excel": a <meta> naming its charset, a style Excel reads,
    the column names in <th>, the rest in <td>."""
    head = f"<tr>{''.join(f'<th>{escape(name)}</th>' for name in records[0])}</tr>"
    body = "".join(f"<tr>{''.join(f'<td>{escape(cell)}</td>' for cell in record)}</tr>\n"
                   for record in records[1:])
    return (f'<html xmlns:x="urn:schemas-microsoft-com:office:excel"><head>'
            f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">'
            f"<style>td {{ mso-number-format: '\\@'; }}</style></head><body>{before}"
            f"<table border=1>{head}\n{body}</table></body></html>").encode(encoding)


def test_a_web_page_saved_as_xls_imports_like_its_csv(session, branches, run_import):
    reps = run_import("reps", web_page(sample_records("reps")), "销售.xls")
    assert (reps.status, reps.added) == ("imported", len(sample_records("reps")) - 1), (
        reps.problems)
    accounts = sample_records("accounts")
    result = run_import("accounts", web_page(accounts, charset="utf-8", encoding="utf-8"),
                        "客户导出.xls")
    assert (result.status, result.added) == ("imported", len(accounts) - 1), result.problems
    reload(session)
    names = set(session.scalars(select(Account.name)))
    assert {record[1] for record in accounts[1:]} == names
    again = run_import("accounts", web_page(accounts), "again.xls")
    assert (again.status, again.added, again.updated) == ("imported", 0, 0)


def test_a_row_problem_names_the_row_excel_shows(session, branches, run_import):
    reps = sample_records("reps")
    reps[2][3] = "XX"
    result = run_import("reps", web_page(reps), "reps.xls")
    assert result.status == "refused"
    assert [(problem.row, problem.column, problem.value) for problem in result.problems] == [
        (3, "branch", "XX")]
    reload(session)
    assert session.scalar(select(func.count()).select_from(User).where(
        User.external_id.like("R1%"))) == 0


def test_cells_read_as_excel_shows_them():
    page = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>导出</title>
    <script>var rows = "<table><tr><td>not data</td></tr></table>";</script></head><body>
    <table>
      <thead><tr><th>客户编号</th><th>客户名称</th><th>分公司</th></tr></thead>
      <tbody>
      <tr><td> KA-1 </td><td>北京&amp;智联<br>科技&nbsp;有限公司</td><td rowspan="2">BJ</td></tr>
      <tr><td>KA-2</td><td><b>华北</b>电力</td></tr>
      <tr><td colspan="2">KA-3 合并</td><td>SH
      <tr><td>KA-4<td><table><tr><td>内</td><td>嵌</td></tr></table><td>GZ</td></tr>
      </tbody>
    </table>
    <table><tr><td>a second table is not read</td></tr></table>
    </body></html>""".encode()
    assert is_html_table(page)
    rows = list(html_rows(page))
    assert rows == [
        ["客户编号", "客户名称", "分公司"],
        ["KA-1", "北京&智联 科技 有限公司", "BJ"],
        ["KA-2", "华北电力", ""],  # the merged cell above covers this one: empty, as in Excel,
        ["KA-3 合并", "", "SH"],
        ["KA-4", "内嵌", "GZ"]]
    # and read as the cell above in a row of the table; a place merged across is only empty
    assert (type(rows[2][2]), type(rows[3][1])) == (MergedDown, str)


def test_the_charset_the_page_names_is_used_only_when_the_page_reads_so():
    records = [["客户编号", "客户名称"], ["KA-1", "华北电力"]]
    # Says UTF-8 but is GBK, as a page a server labelled wrongly: read as GBK.
    assert list(html_rows(web_page(records, charset="utf-8", encoding="gbk")))[1] == (
        ["KA-1", "华北电力"])
    assert list(html_rows(web_page(records, charset="big5-wrong", encoding="utf-8")))[1] == (
        ["KA-1", "华北电力"])


def test_a_page_without_a_table_is_refused_saying_so(session, branches, run_import):
    page = "<html><body><p>导出失败，请重新登录</p></body></html>".encode()
    result = run_import("reps", page, "reps.xls")
    assert result.status == "refused"
    assert "holds no table of rows" in str(result.problems[0].reason)


def test_a_title_row_spanning_the_table_is_skipped(branches, run_import):
    reps = sample_records("reps")
    page = web_page(reps).replace(b"<table border=1>", '<table border=1><tr><td colspan="6">'
                                  "2026年11月销售名单</td></tr>".encode("gbk"))
    result = run_import("reps", page, "reps.xls")
    assert (result.status, result.added, result.problems) == ("imported", len(reps) - 1, [])
    assert result.rows_above == [(1, "2026年11月销售名单")]


def test_a_page_past_the_limits_is_refused_while_it_is_read():
    wide = web_page([[f"列{index}" for index in range(30)], ["x"] * 30])
    with pytest.raises(FileRefused, match="columns"):
        list(html_rows(wide, UploadLimits(max_columns=20)))
    spanned = web_page([["名称"], ["x"]]).replace(b"<td>x</td>", b'<td colspan="999999">x</td>')
    with pytest.raises(FileRefused, match="columns"):
        list(html_rows(spanned, UploadLimits(max_columns=20)))
    long_cell = web_page([["名称"], ["名" * 50]])
    with pytest.raises(FileRefused, match="far more than"):
        list(html_rows(long_cell, UploadLimits(max_cell_bytes=40)))


def test_an_xhtml_page_is_a_web_page_too():
    page = ('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML '
            '1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd"><html><body>'
            "<table><tr><th>客户编号</th></tr><tr><td>KA-1</td></tr></table></body></html>")
    assert list(html_rows(page.encode())) == [["客户编号"], ["KA-1"]]


def test_a_csv_is_not_taken_for_a_web_page():
    assert not is_html_table("客户编号,客户名称\nKA-1,<b>华北</b>\n".encode())
    assert not is_html_table(b"name,note\nx,<table>\n")
