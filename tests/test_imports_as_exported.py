"""CRM exports as CRMs, Excel and old tools really write them: the byte order of UTF-16 text
without its mark, an end-of-file mark, dates Excel left as serial numbers."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bidhub.models import Account, ImportRun, MonthlyForecast, User
from bidhub.services.imports import import_file
from tests.conftest import reload
from tests.import_formats.conftest import saved, xls_of, xlsx_of, xlsx_workbook

SAMPLES = Path(__file__).resolve().parent / ".." / "samples"


def sample_text(kind: str) -> str:
    return (SAMPLES / f"{kind}.csv").read_bytes().decode("utf-8-sig")


def tab_separated(text: str) -> str:
    return text.replace(",", "\t")


@pytest.fixture
def branches(make_branch):
    return {code: make_branch(code, name)
            for code, name in (("BJ", "Beijing"), ("SH", "Shanghai"), ("GZ", "Guangzhou"))}


@pytest.fixture
def run_import(session, make_admin, clock):
    admin = make_admin()

    def run(kind: str, data: bytes, filename: str | None = None):
        return import_file(session, admin, kind, filename or f"{kind}.csv", data,
                           valid_rows_only=False, now=clock())

    return run


def stored(session) -> list[tuple]:
    reload(session)
    users = session.scalars(select(User).where(User.external_id.is_not(None))
                            .order_by(User.external_id))
    accounts = session.scalars(select(Account).order_by(Account.external_id))
    return ([(user.external_id, user.username, user.display_name, user.hired_on, user.status)
             for user in users]
            + [(account.external_id, account.name, account.annual_value_yuan,
                account.owner.external_id if account.owner else None) for account in accounts])


def saved_as(records: list[list[str]], filename: str) -> bytes:
    """The records as a file of `filename`'s kind: an .xlsx or .xls workbook, else GBK CSV."""
    if filename.endswith(".xlsx"):
        return xlsx_of(records)
    if filename.endswith(".xls"):
        return xls_of(records)
    return "".join(",".join(record) + "\r\n" for record in records).encode("gbk")


# --- UTF-16 text without its mark (BOM) ---------------------------------------------------------

# 一 (U+4E00) is written with a NUL byte where ASCII's are not: the byte order is read from the
# lines and separators, not from every NUL of the file.
WITH_YI = sample_text("reps").replace("王芳", "王一").replace("李军", "丁一")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("separated", ["commas", "tabs"])
def test_utf16_text_without_its_mark_imports_as_with_it(session, branches, run_import, encoding,
                                                        separated):
    """A CRM that writes "Unicode" text leaves out the BOM Excel writes: the header's NUL bytes
    (the high bytes of its separators and line break) say the byte order."""
    reps, accounts = WITH_YI, sample_text("accounts")
    if separated == "tabs":
        reps, accounts = tab_separated(reps), tab_separated(accounts.replace('"1,200,000"',
                                                                              "1200000"))
    for kind, text in (("reps", reps), ("accounts", accounts)):
        result = run_import(kind, text.replace("\n", "\r\n").encode(encoding),
                            filename=f"{kind}.txt")
        assert (result.status, result.problems) == ("imported", []), (kind, result.problems)
        assert result.added == result.rows_total > 0
    got = stored(session)
    assert ("R1001", "wangfang", "王一", date(2021, 3, 15), "active") in got
    assert ("R1002", "lijun", "丁一", date(2019, 7, 1), "active") in got
    assert ("KA-2001", "北京智联科技有限公司", 1_200_000, "R1001") in got


@pytest.mark.parametrize("data", [
    # One cell and no line break: nothing says which byte order it is in.
    "R1001".encode("utf-16-le"),
    # U+2C00 (Ⰰ) read in the other byte order is a comma, and the letters read so are Chinese
    # characters (a is 愀): both orders read as cells of text.
    "\u2c00abc,de\r".encode("utf-16-le"),
], ids=["one cell", "both orders read as lines"])
def test_utf16_text_without_its_mark_whose_byte_order_is_unclear_is_refused(
        session, branches, run_import, data):
    result = run_import("reps", data)
    assert result.status == "refused" and result.added == 0
    assert [problem.row for problem in result.problems] == [None]
    assert "seems to be UTF-16 text without the mark" in result.problems[0].reason
    assert "byte order" in result.problems[0].reason
    reload(session)
    assert session.scalar(select(func.count()).select_from(User)) == 1  # the admin
    assert session.get(ImportRun, result.run_id).status == "refused"


def test_utf16_text_without_its_mark_that_breaks_off_is_refused_saying_so(
        session, branches, run_import):
    rows = "".join(f"R{n},user{n},销售{n},BJ,2022-01-01,在职\n" for n in range(2000, 2300))
    data = (sample_text("reps") + rows).encode("utf-16-le") + b"\x00\xd8R\x00"  # half a pair
    assert len(data) > 8192
    result = run_import("reps", data)
    assert result.status == "refused" and result.added == 0
    assert "not all of it reads as UTF-16" in result.problems[0].reason


# --- an end-of-file mark (Ctrl-Z) ---------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16",
                                      "utf-16-le"])
@pytest.mark.parametrize("end", ["\x1a", "\r\n\x1a", "\x1a\x1a\r\n"],
                         ids=["after the last row", "on a line of its own", "twice"])
def test_a_ctrl_z_ending_the_file_is_not_read_as_a_cell(session, branches, run_import,
                                                       encoding, end):
    """DOS-era tools and some CRMs end a text file with Ctrl-Z (SUB); Excel ignores it."""
    text = sample_text("reps").replace("\n", "\r\n").rstrip("\r\n")
    result = run_import("reps", (text + end).encode(encoding))
    assert (result.status, result.problems, result.added) == ("imported", [], 5)
    assert ("R1005", "liuyang", "刘洋", date(2023, 2, 13), "active") in stored(session)


def test_a_ctrl_z_inside_the_file_is_still_a_problem_of_its_row(session, branches, run_import):
    text = sample_text("reps").replace("王芳", "王\x1a芳")
    result = run_import("reps", text.encode("utf-8"))
    assert result.status == "refused" and result.added == 0
    assert [(problem.row, problem.column) for problem in result.problems] == [(2, "姓名")]


# --- dates Excel shows as serial numbers --------------------------------------------------------

def test_an_excel_serial_number_in_a_date_column_is_its_day(session, branches, run_import):
    """A date cell whose date format was lost shows, and exports, its serial number: 45296 is
    2024-01-05 (with a time of day, 45296.5729)."""
    records: list[list[object]] = [line.split(",") for line in sample_text("reps").splitlines()]
    records[1][4] = 45296  # E2: a number cell in the General format
    records[2][4] = 45296.572916666664
    records[3][4] = "45296"
    result = run_import("reps", xlsx_of(records), filename="reps.xlsx")
    assert (result.status, result.problems) == ("imported", []), result.problems
    got = stored(session)
    assert [row[3] for row in got[:3]] == [date(2024, 1, 5)] * 3
    text = sample_text("forecasts").replace("2026-01", "46023", 1)  # 2026-01-01
    result = run_import("forecasts", text.encode("utf-8"))
    assert (result.status, result.problems) == ("imported", []), result.problems
    reload(session)
    assert session.scalar(select(func.count()).select_from(MonthlyForecast).where(
        MonthlyForecast.month == date(2026, 1, 1))) >= 1


@pytest.mark.parametrize("value", ["2024", "4529", "123456", "-45296", "45296.5.1", "100000"])
def test_a_number_that_is_no_excel_day_is_still_no_date(session, branches, run_import, value):
    """A year alone is no serial number (2024 would be 1905-07-16), nor a number of other
    than five digits."""
    text = sample_text("reps").replace("2021-03-15", value)
    result = run_import("reps", text.encode("utf-8"))
    assert result.status == "refused" and result.added == 0
    assert [(problem.row, problem.column, problem.value) for problem in result.problems] == [
        (2, "hire_date", value)]


def test_a_day_typed_with_hao_for_ri_imports_as_that_day(session, branches, run_import):
    """2021年3月15号: 号 is how many write the day of the month by hand."""
    text = sample_text("reps").replace("2021-03-15", "2021年3月15号")
    assert "2021年3月15号" in text
    result = run_import("reps", text.encode("utf-8"))
    assert (result.status, result.problems) == ("imported", [])
    reload(session)
    assert session.scalars(select(User.hired_on).where(User.external_id == "R1001")).one() == (
        date(2021, 3, 15))


def test_a_serial_day_reads_in_either_width_and_with_a_time_of_day():
    from bidhub.domain.imports import parse_date, parse_month

    assert parse_date("45296") == date(2024, 1, 5) == parse_date("４５２９６")
    assert parse_date("45296.99999") == date(2024, 1, 5)
    assert parse_month("45292") == date(2024, 1, 1)


# --- blank rows above the column names ----------------------------------------------------------

@pytest.mark.parametrize("filename", ["reps.xlsx", "reps.csv", "reps.xls"])
def test_blank_rows_above_the_column_names_are_skipped(session, branches, run_import,
                                                       filename):
    """An export whose sheet starts lower down: its column names are the first row with
    anything in it, and every row keeps its number as Excel shows it."""
    lines = sample_text("reps").splitlines()
    records = [[], [], *(line.split(",") for line in lines)]
    records[4][4] = "2021-02-30"  # R1002's hire date, in row 5
    result = run_import("reps", saved_as(records, filename), filename=filename)
    assert [(problem.row, problem.column) for problem in result.problems] == [
        (5, "hire_date")]
    assert (result.status, result.rows_above) == ("refused", [])
    records[4][4] = "2021-02-28"
    data = (xlsx_of(records) if filename.endswith(".xlsx") else xls_of(records)
            if filename.endswith(".xls") else
            "".join(",".join(record) + "\r\n" for record in records).encode("gbk"))
    result = run_import("reps", data, filename=filename)
    assert (result.status, result.added, result.problems) == ("imported", len(lines) - 1, [])
    assert [external_id for external_id, *_ in stored(session)] == [
        line.split(",")[0] for line in lines[1:]]


# --- headings over groups of columns ------------------------------------------------------------

GROUPED = [["客户信息", "", "", "", "归属", "", ""],
           ["客户编号", "客户名称", "行业", "所有制", "分公司", "年度金额", "所属销售"],
           ["KA-9001", "甲公司", "互联网", "民营", "BJ", "120万", ""]]


@pytest.mark.parametrize("filename", ["accounts.xlsx", "accounts.xls", "accounts.csv"])
def test_headings_merged_over_groups_of_columns_are_skipped_and_named(
        session, branches, run_import, filename):
    """Exports group their columns under merged headings (客户信息 over A:D, 归属 over E:G).
    Read as column names they matched nothing and sent the file to a mapping step that
    cannot help; the row is skipped, and the report names it."""
    if filename.endswith(".xlsx"):
        data = xlsx_of(GROUPED, merged=["A1:D1", "E1:G1"])
    elif filename.endswith(".xls"):
        data = xls_of(GROUPED, merged=["A1:D1", "E1:G1"], sheet_name="客户")
    else:
        data = "".join(",".join(record) + "\r\n" for record in GROUPED).encode("gbk")
    result = run_import("accounts", data, filename=filename)
    assert (result.status, result.added, result.problems) == ("imported", 1, [])
    assert result.rows_above == [(1, "客户信息、归属")]
    assert stored(session) == [("KA-9001", "甲公司", 1_200_000, None)]
    run = session.get(ImportRun, result.run_id)
    assert run.report["rows_above"] == [{"row": 1, "text": "客户信息、归属"}]


def test_a_file_whose_column_names_all_need_a_mapping_still_goes_to_the_mapping_step(
        session, branches, run_import):
    from bidhub.services.imports import MappingNeeded

    text = "销售编号,所属分公司,销售姓名\r\nR1001,BJ,王芳\r\n"
    with pytest.raises(MappingNeeded):
        run_import("reps", text.encode("utf-8"))


# --- formatted empty cells past the data --------------------------------------------------------

@pytest.mark.parametrize("last_column", [120, 16_384], ids=["column 120", "column XFD"])
def test_formatted_empty_cells_far_right_do_not_widen_an_xlsx(session, branches, run_import,
                                                             last_column):
    """A fill or border dragged across the sheet writes empty cells far to the right of the
    data; Excel shows nothing there, and the file's six columns import."""
    from openpyxl.styles import PatternFill

    workbook = xlsx_workbook([line.split(",") for line in sample_text("reps").splitlines()])
    fill = PatternFill("solid", fgColor="FFFF00")
    for row in range(1, 30):
        workbook.active.cell(row=row, column=last_column).fill = fill
    data = saved(workbook)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml")
    assert re.search(rb'<c r="%s1" s="1"[^>]*/>' % (b"DP" if last_column == 120 else b"XFD"),
                     sheet_xml)
    result = run_import("reps", data, filename="reps.xlsx")
    assert (result.status, result.problems, result.added) == ("imported", [], 5)
    assert ("R1005", "liuyang", "刘洋", date(2023, 2, 13), "active") in stored(session)


def test_a_value_far_right_still_refuses_an_xlsx_as_too_wide(session, branches, run_import):
    workbook = xlsx_workbook([line.split(",") for line in sample_text("reps").splitlines()])
    workbook.active.cell(row=3, column=120).value = "x"
    result = run_import("reps", saved(workbook), filename="reps.xlsx")
    assert (result.status, result.added) == ("refused", 0)
    assert "more than 100 columns" in result.problems[0].reason


def test_a_month_written_as_six_digits_is_that_month(session, branches, run_import):
    """Reports and BI exports write a month as 202601 (统计月份); 202613 is still no month."""
    assert run_import("reps", sample_text("reps").encode("utf-8")).status == "imported"
    text = sample_text("forecasts").replace("R1001,2026-01,", "R1001,202601,")
    result = run_import("forecasts", text.replace("R1001,2026-02,", "R1001,２０２６０２,")
                        .encode("gbk"))
    assert (result.status, result.problems, result.added) == ("imported", [], 5)
    reload(session)
    assert session.scalar(select(func.count()).select_from(MonthlyForecast).where(
        MonthlyForecast.month.in_([date(2026, 1, 1), date(2026, 2, 1)]))) == 5

    # Another month, or none, is never read as some other month: 202511 was January.
    for written in ("202511", "202613", "2026111"):
        result = run_import("forecasts", sample_text("forecasts").replace(
            "R1001,2026-01,", f"R1001,{written},").replace("R1001,2026-02,", "R1001,2026-03,")
            .encode("utf-8"))
        if written == "202511":
            assert (result.status, result.added) == ("imported", 2), result.problems
            reload(session)
            assert session.scalars(select(MonthlyForecast.forecast_yuan).where(
                MonthlyForecast.month == date(2025, 11, 1))).one() == 300_000
            continue
        assert result.status == "refused"
        assert [(problem.row, problem.column, str(problem.reason))
                for problem in result.problems] == [
            (2, "month", "No such month: there is no month 13." if written == "202613" else
             "Not a month; write it as YYYY-MM.")]


@pytest.mark.parametrize("written", ["202611", "202613", "2026111", "2026013", "20261"])
def test_digits_without_separators_are_a_date_only_as_eight_of_them(session, branches,
                                                                    run_import, written):
    """20260305 is 2026-03-05; 202611 is no day (it was read as 2026-01-01), nor is 2026111
    (2026-1-11 or 2026-11-1?), nor 20261."""
    text = sample_text("reps").replace("2021-03-15", written)
    result = run_import("reps", text.encode("utf-8"))
    assert (result.status, result.added) == ("refused", 0)
    assert [(problem.row, problem.column, problem.value) for problem in result.problems] == [
        (2, "hire_date", written)]


@pytest.mark.parametrize("filename", ["reps.xlsx", "reps.csv", "reps.xls"])
def test_a_title_and_the_lines_an_export_adds_under_it_are_skipped(session, branches,
                                                                  run_import, filename):
    """A title merged across the sheet, a blank row, the export's own lines, then the column
    names: every row above them is skipped and named in the report; the rows keep their
    numbers as Excel shows them."""
    lines = sample_text("reps").splitlines()
    records = [["2026年11月销售清单"], [], ["", "导出时间：2026-11-28 09:30"],
               ["导出人：张敏"], *(line.split(",") for line in lines)]
    records[5][0] = ""  # R1001 without its employee id, in row 6
    if filename.endswith(".xlsx"):
        data = xlsx_of(records, merged=["A1:F1"])
    elif filename.endswith(".xls"):
        data = xls_of(records, merged=["A1:F1"])
    else:
        data = "".join(",".join(record) + "\r\n" for record in records).encode("utf-8-sig")
    result = run_import("reps", data, filename=filename)
    assert [(problem.row, problem.column) for problem in result.problems] == [
        (6, "external_id")]
    assert (result.status, stored(session)) == ("refused", [])
    records[5][0] = "R1001"
    data = (xlsx_of(records, merged=["A1:F1"]) if filename.endswith(".xlsx") else
            xls_of(records, merged=["A1:F1"]) if filename.endswith(".xls") else
            "".join(",".join(record) + "\r\n" for record in records).encode("utf-8-sig"))
    result = run_import("reps", data, filename=filename)
    assert (result.status, result.added, result.problems) == ("imported", len(lines) - 1, [])
    assert result.rows_above == [(1, "2026年11月销售清单"), (3, "导出时间：2026-11-28 09:30"),
                                 (4, "导出人：张敏")]


def test_a_missing_column_is_reported_in_the_row_the_column_names_are_in(session, branches,
                                                                        run_import):
    without_ids = "".join(",".join(line.split(",")[1:]) + "\r\n"
                          for line in sample_text("reps").splitlines())
    result = run_import("reps", ("2026年11月销售清单\r\n" + without_ids).encode("utf-8"))
    assert result.status == "refused"
    assert [(problem.row, problem.column) for problem in result.problems] == [
        (2, "external_id / 员工编号")]


def test_a_control_character_in_column_names_below_a_title_names_their_row(session, branches,
                                                                          run_import):
    text = "2026年11月销售清单\r\n\r\n" + sample_text("reps").replace("姓名", "姓\x01名", 1)
    result = run_import("reps", text.encode("utf-8"))
    assert [str(problem.reason) for problem in result.problems] == [
        "Row 3, column C: the column name holds a control character (U+0001). Remove it and "
        "import the file again."]


def test_a_file_of_one_cell_rows_has_no_column_names_and_is_refused(session, branches,
                                                                    run_import):
    result = run_import("reps", "2026年11月销售清单\r\n\r\n王芳\r\n李军\r\n".encode())
    assert (result.status, stored(session)) == ("refused", [])
    assert [str(problem.reason) for problem in result.problems] == [
        "bidhub found no column names: each row with anything in it holds a single cell, as a "
        "title does (row 1: “2026年11月销售清单”). Put the column names in one row above the "
        "rows and import the file again."]


def test_more_one_cell_rows_above_the_column_names_than_titles_make_are_refused(
        session, branches, run_import):
    from bidhub.domain.imports import MAX_ROWS_ABOVE

    lines = [f"第{number}行说明" for number in range(1, MAX_ROWS_ABOVE + 1)]
    accepted = "\r\n".join(lines) + "\r\n" + sample_text("reps")
    assert run_import("reps", accepted.encode()).status == "imported"
    result = run_import("reps", ("多一行\r\n" + accepted).encode())
    assert result.status == "refused"
    assert [str(problem.reason) for problem in result.problems] == [
        f"Rows 1 to {MAX_ROWS_ABOVE} each hold a single cell, as a title does (row 1: “多一行”), "
        f"and bidhub skips at most {MAX_ROWS_ABOVE} such rows above the column names. Delete "
        "the rows above the column names and import the file again."]


# --- large workbooks as Excel saves them --------------------------------------------------------

def test_a_workbook_sharing_as_many_texts_as_a_large_export_is_read():
    """Excel keeps every distinct text once, in the shared strings: a 65,000-row accounts
    export (ids, names, contacts) shares some 300,000, and was refused past 150,000 though
    its rows, cells and bytes were all within the limits."""
    from bidhub.domain.imports import default_limits
    from bidhub.services.imports import read_workbook
    from tests.test_upload_limits import workbook

    shared = "".join(f"<si><t>客户{number:06d}</t></si>" for number in range(300_001))
    data = workbook('<row r="2">' + "".join(
        f'<c r="{letter}2" t="s"><v>{index}</v></c>'
        for letter, index in (("A", 300_000), ("B", 1), ("C", 2), ("D", 3))) + "</row>",
        shared=shared)
    assert read_workbook(data, default_limits())[1] == [
        "客户300000", "客户000001", "客户000002", "客户000003"]


@pytest.mark.parametrize("filename", ["accounts.xlsx", "accounts.csv"])
def test_column_names_over_two_rows_are_refused_naming_the_second(session, branches,
                                                                run_import, filename):
    """联系人 merged over two columns, 决策人 and 使用人 under it, the other names merged down
    over both rows: the second row was read as an account with every value missing, or sent
    the file to a mapping step that cannot help."""
    records = [["客户编号", "客户名称", "行业", "所有制", "分公司", "年度金额", "联系人", ""],
               ["", "", "", "", "", "", "决策人", "使用人"],
               ["KA-9001", "甲公司", "互联网", "民营", "BJ", "120万", "赵总", "钱经理"]]
    data = (xlsx_of(records, merged=[*(f"{column}1:{column}2" for column in "ABCDEF"), "G1:H1"])
            if filename.endswith(".xlsx") else saved_as(records, filename))
    result = run_import("accounts", data, filename=filename)
    assert (result.status, result.added) == ("refused", 0)
    assert [str(problem.reason) for problem in result.problems] == [
        "Row 2 holds more column names (“决策人”, “使用人”), as a header over two rows: bidhub "
        "reads the column names from one row. Write each column's name in row 1, delete row 2 "
        "and import the file again."]
    assert stored(session) == []


@pytest.mark.parametrize("filename", ["reps.xlsx", "reps.xls", "reps.csv"])
def test_a_column_with_values_but_no_name_refuses_the_file_naming_it(session, branches,
                                                                     run_import, filename):
    """An HR export whose last header cell was left blank (or merged over two columns) holds
    each rep's status under no name: leaving it out imported a rep the file marks 离职 as
    active, without a word. The file is refused, naming the column and a value in it."""
    records = [["员工编号", "用户名", "姓名", "分公司", "入职日期", ""],
               ["005008", "ww", "王伟", "BJ", "2025-01-01", "离职"],
               ["005009", "ll", "李丽", "SH", "2024-03-01", "在职"]]
    result = run_import("reps", saved_as(records, filename), filename=filename)
    assert (result.status, result.added) == ("refused", 0)
    assert [str(problem.reason) for problem in result.problems] == [
        "Column F holds values (row 2: “离职”) but has no name in row 1, where the column names "
        "are. Name the column there (or delete it) and import the file again."]
    assert stored(session) == []
    # Past the header's last name in a workbook, too (a CSV row with more cells than the
    # header has names is its row's problem: a comma left unquoted).
    if not filename.endswith(".csv"):
        wider = [records[0][:5], *records[1:]]
        result = run_import("reps", saved_as(wider, filename), filename=filename)
        assert result.status == "refused" and "Column F holds values" in str(
            result.problems[0].reason)
        assert stored(session) == []
    named = [[*records[0][:5], "状态"], *records[1:]]
    assert run_import("reps", saved_as(named, filename), filename=filename).status == "imported"
    assert [(row[0], row[4]) for row in stored(session)] == [("005008", "left"),
                                                             ("005009", "active")]
