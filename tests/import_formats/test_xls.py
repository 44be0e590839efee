"""Excel 97-2003 workbooks (.xls), as many CRMs and WPS export them, import like CSV."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
import xlwt
from sqlalchemy import func, select

from bidhub.domain.imports import FileRefused, UploadLimits
from bidhub.models import Account, ImportRun, Opportunity, OpportunityStageChange, User
from bidhub.services.imports import FileSource
from bidhub.services.xls_workbooks import check_xls, xls_rows
from tests.conftest import reload
from tests.import_formats.conftest import sample_records, xls_of

CJK_DATE = xlwt.easyxf(num_format_str='yyyy"年"m"月"d"日"')


def test_an_xls_workbook_imports_like_its_csv(session, branches, run_import):
    reps = sample_records("reps")
    reps[1][4] = datetime(2021, 3, 15)  # a date cell in a Chinese date format
    result = run_import("reps", xls_of(reps, hidden_first=True, styles={(1, 4): CJK_DATE}),
                        "reps.xls")
    assert (result.status, result.added) == ("imported", len(reps) - 1), result.problems
    accounts = sample_records("accounts")
    accounts[1][5] = 1_200_000  # a number cell
    result = run_import("accounts", xls_of(accounts), "accounts.xls")
    assert (result.status, result.added) == ("imported", len(accounts) - 1), result.problems
    reload(session)
    assert session.scalars(select(User.hired_on).where(User.external_id == "R1001")).one() == (
        date(2021, 3, 15))
    assert session.scalars(select(Account.annual_value_yuan)
                           .where(Account.external_id == "KA-2001")).one() == 1_200_000
    # The same file again changes nothing, as a CSV's would.
    again = run_import("accounts", xls_of(accounts), "accounts-again.xls")
    assert (again.status, again.added, again.updated) == ("imported", 0, 0)


def test_dates_and_stage_histories_read_from_an_xls(session, branches, run_import):
    assert run_import("reps", xls_of(sample_records("reps")), "reps.xls").status == "imported"
    assert run_import("accounts", xls_of(sample_records("accounts")),
                      "accounts.xls").status == "imported"
    opportunities = sample_records("opportunities")
    header = opportunities[0]
    opened, closed = header.index("创建日期"), header.index("关闭日期")
    opportunities[1][opened] = datetime(2025, 9, 1)
    opportunities[1][closed] = datetime(2025, 11, 20, 16, 45)
    styles = {(1, opened): CJK_DATE, (1, closed): xlwt.easyxf(num_format_str="yyyy-mm-dd hh:mm")}
    result = run_import("opportunities", xls_of(opportunities, styles=styles), "商机.xls")
    assert result.status == "imported", result.problems
    reload(session)
    stored = session.scalars(select(Opportunity).where(
        Opportunity.external_id == opportunities[1][0])).one()
    # Days in the department's zone (Asia/Shanghai, UTC+8), as a CSV's dates are; the time of
    # day a date cell carries is not kept, as a CSV's is not.
    assert stored.opened_at == datetime(2025, 8, 31, 16, 0, tzinfo=UTC)
    assert stored.closed_at == datetime(2025, 11, 19, 16, 0, tzinfo=UTC)
    assert session.scalar(select(func.count()).select_from(OpportunityStageChange)) > 0


def test_a_row_problem_in_an_xls_names_its_row_and_column(session, branches, run_import):
    reps = sample_records("reps")
    reps[3][3] = "XX"  # no such branch, on Excel's row 4
    result = run_import("reps", xls_of(reps), "reps.xls")
    assert result.status == "refused"
    assert [(problem.row, problem.column, problem.value) for problem in result.problems] == [
        (4, "branch", "XX")]
    reload(session)
    assert session.scalar(select(func.count()).select_from(User).where(
        User.external_id.like("R1%"))) == 0


def test_a_value_past_the_named_columns_refuses_the_workbook_naming_it(session, branches,
                                                                       run_import):
    """In a workbook a cell right of the header's last column is no unquoted comma (as in a
    CSV): it is a column without a name, and what it says (here, that the rep left) would be
    dropped without a word. The file is refused naming the column, as an .xlsx is."""
    reps = sample_records("reps")
    reps[2].append("备注：已离职交接")
    result = run_import("reps", xls_of(reps), "reps.xls")
    assert result.status == "refused"
    assert [str(problem.reason) for problem in result.problems] == [
        "Column G holds values (row 3: “备注：已离职交接”) but has no name in row 1, where the "
        "column names are. Name the column there (or delete it) and import the file again."]


def test_error_and_boolean_cells_read_as_excel_shows_them():
    workbook = xlwt.Workbook()
    sheet = workbook.add_sheet("a")
    sheet.write(0, 0, "名称")
    sheet.write(1, 0, True)
    sheet.write(2, 0, xlwt.Formula("1/0"))
    buffer = io.BytesIO()
    workbook.save(buffer)
    rows = list(xls_rows(buffer.getvalue()))
    assert rows[1] == ["TRUE"]
    assert len(rows) == 3  # the formula's row is read (its saved value, which xlwt leaves 0)


def test_a_password_protected_workbook_is_refused_saying_so(branches, run_import):
    data = xls_of(sample_records("reps"))
    # The workbook's CODEPAGE record (UTF-16, as xlwt writes it) becomes the FILEPASS record
    # that an encrypted workbook holds in its place.
    codepage = b"\x42\x00\x02\x00\xb0\x04"
    assert data.count(codepage) == 1
    encrypted = data.replace(codepage, b"\x2f\x00\x02\x00\x00\x00")
    result = run_import("reps", encrypted, "reps.xls")
    assert result.status == "refused"
    assert "protected by a password" in str(result.problems[0].reason)
    # An .xlsx saved with a password is a compound file holding an EncryptedPackage stream.
    name = "Workbook".encode("utf-16-le")
    at = data.index(name)
    package = bytearray(data)
    package[at:at + 34] = "EncryptedPackage\x00".encode("utf-16-le")
    package[at + 64:at + 66] = (34).to_bytes(2, "little")
    with pytest.raises(FileRefused, match="protected by a password"):
        check_xls(bytes(package))


def test_a_compound_file_that_is_not_a_workbook_is_refused(session, branches, run_import):
    broken = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600
    result = run_import("reps", broken, "reps.xls")
    assert result.status == "refused"
    assert "not a readable Excel workbook (.xls)" in str(result.problems[0].reason)
    assert session.get(ImportRun, result.run_id) is not None


def test_an_xls_past_the_limits_is_refused_before_its_sheet_is_built():
    wide = xls_of([["名称"] + [""] * 40 + ["远处的列"]])
    with pytest.raises(FileRefused, match="columns"):
        check_xls(wide, UploadLimits(max_columns=20))
    many = xls_of([[f"{row}-{column}" for column in range(10)] for row in range(30)])
    with pytest.raises(FileRefused, match="cells"):
        check_xls(many, UploadLimits(max_cells=200))
    with pytest.raises(FileRefused, match="different texts"):
        check_xls(many, UploadLimits(max_shared_strings=100))
    check_xls(many)  # within the defaults
    with pytest.raises(FileRefused):
        FileSource("x.xls", many, UploadLimits(max_cells=200))


def test_the_upload_page_takes_an_xls(session, branches, make_admin, login_as):
    client = login_as(make_admin())
    page = client.get("/admin/imports/").get_data(as_text=True)
    assert ".xls," in page
    response = client.post("/admin/imports/", data={
        "kind": "reps", "file": (io.BytesIO(xls_of(sample_records("reps"))), "销售名单.xls")},
        content_type="multipart/form-data")
    assert response.status_code == 303
    reload(session)
    run = session.scalars(select(ImportRun).order_by(ImportRun.id.desc())).first()
    assert (run.status, run.filename) == ("imported", "销售名单.xls")
