"""Uploads are bounded before they are parsed; refused ones leave a record with a small report."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from bidhub.domain.imports import (
    MIB,
    FileRefused,
    UploadLimits,
    check_workbook,
    read_csv,
)
from bidhub.models import ImportRun, User
from bidhub.services import imports as import_service
from bidhub.services.imports import import_file, read_workbook

SMALL = UploadLimits(max_rows=20, max_lines=40, max_columns=8, max_cells=200,
                     max_cell_length=50, max_cell_bytes=400, max_file_bytes=64 * 1024,
                     max_uncompressed_bytes=256 * 1024, max_shared_strings_bytes=16 * 1024,
                     max_shared_strings=30, max_text_runs=40, max_zip_members=20,
                     max_problems=5, max_value_chars=20, max_reason_chars=120)
HEADER = '<row r="1">' + "".join(
    f'<c r="{column}1" t="inlineStr"><is><t>{name}</t></is></c>'
    for column, name in zip("ABCD", ("external_id", "username", "name", "branch"),
                            strict=True)) + "</row>"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELATIONS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"


def workbook(rows: str = "", shared: str | None = None, *, before_rows: str = "",
             prolog: str = "", pieces: tuple[bytes, ...] = ()) -> bytes:
    """An XLSX written by hand: the first sheet's rows (after the header) and shared strings.

    `pieces` are streamed into the sheet after `rows`, for parts too big to hold as text.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
            '.org/package/2006/content-types"><Default Extension="rels" ContentType="applicati'
            'on/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" Conte'
            'ntType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="app'
            'lication/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Overr'
            'ide PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlfor'
            'mats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/shared'
            'Strings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsh'
            'eetml.sharedStrings+xml"/></Types>'))
        archive.writestr("_rels/.rels", (
            f'<Relationships xmlns="{PACKAGE}"><Relationship Id="rId1" Type="{RELATIONS}/offic'
            f'eDocument" Target="xl/workbook.xml"/></Relationships>'))
        archive.writestr("xl/workbook.xml", (
            f'<workbook xmlns="{MAIN}" xmlns:r="{RELATIONS}"><sheets><sheet name="S" sheetId="1"'
            f' r:id="rId1"/></sheets></workbook>'))
        archive.writestr("xl/_rels/workbook.xml.rels", (
            f'<Relationships xmlns="{PACKAGE}"><Relationship Id="rId1" Type="{RELATIONS}/works'
            f'heet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{RELATIONS}/'
            f'sharedStrings" Target="sharedStrings.xml"/></Relationships>'))
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(f'{prolog}<worksheet xmlns="{MAIN}">{before_rows}<sheetData>{HEADER}'
                        f'{rows}'.encode())
            for piece in pieces:
                sheet.write(piece)
            sheet.write(b"</sheetData></worksheet>")
        archive.writestr("xl/sharedStrings.xml",
                         f'<sst xmlns="{MAIN}">{shared or ""}</sst>')
    return buffer.getvalue()


def rep_row(number: int, *cells: str) -> str:
    values = cells or (f"R{number}", f"user{number}", f"Rep {number}", "BJ")
    return f'<row r="{number}">' + "".join(
        f'<c r="{column}{number}" t="inlineStr"><is><t>{value}</t></is></c>'
        for column, value in zip("ABCD", values, strict=False)) + "</row>"


def refusal(data: bytes, limits: UploadLimits = SMALL) -> str:
    with pytest.raises(FileRefused) as refused:
        check_workbook(data, limits)
    return str(refused.value)


@pytest.fixture
def no_parser(monkeypatch):
    """openpyxl is never reached: the file is refused on its zip directory or by the scan."""
    def parse(*_args, **_kwargs):
        raise AssertionError("the workbook was parsed")

    monkeypatch.setattr(import_service, "workbook_reader", parse)


# --- XLSX, refused before any parser sees it -----------------------------------------------

def test_a_workbook_within_the_limits_reads_as_before():
    data = workbook(rep_row(2) + rep_row(3), before_rows="")
    assert read_workbook(data, SMALL) == [
        ["external_id", "username", "name", "branch"],
        ["R2", "user2", "Rep 2", "BJ"], ["R3", "user3", "Rep 3", "BJ"]]


def test_an_excel_workbook_reads_like_openpyxl_reads_it():
    from openpyxl import Workbook, load_workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["external_id", "username", "name", "branch", "hire_date", "n"])
    sheet.append(["R1", "wang", "王伟", "BJ", date(2024, 3, 1), 12])
    sheet.append(["R2", "li", "李娜 x005F_", "SH", datetime(2024, 3, 2, 9, 30), 1.5])
    sheet.append([])
    sheet.append(["R3", "zhang", "张静", "GZ", None, True])
    buffer = io.BytesIO()
    book.save(buffer)
    data = buffer.getvalue()
    expected = [[import_service.cell_text(value).strip() for value in row] for row in
                load_workbook(io.BytesIO(data), read_only=True).active.iter_rows(
                    values_only=True)]
    records = read_workbook(data)
    assert [record for record in records if record] == [row for row in expected if any(row)]
    assert records[1][4] == "2024-03-01" and records[3] == []


def test_a_huge_inline_cell_is_refused_unread(no_parser):
    # The shape that used 2.5 GiB: one cell far longer than any cell may be, packed small.
    data = workbook(pieces=(b'<row r="2"><c r="A2" t="inlineStr"><is><t>', b"a" * 300_000,
                            b"</t></is></c></row>"))
    assert len(data) < 4_000
    assert "unpacks to" in refusal(data)
    limits = UploadLimits(max_cell_bytes=400)
    assert "far more than the 5,000 characters" in refusal(data, limits)


def test_a_huge_shared_string_is_refused_unread(no_parser):
    data = workbook('<row r="2"><c r="A2" t="s"><v>0</v></c></row>',
                    shared="<si><t>" + "a" * 100_000 + "</t></si>")
    assert "far more than" in refusal(data, UploadLimits(max_cell_bytes=400))
    many = workbook('<row r="2"><c r="A2" t="s"><v>0</v></c></row>',
                    shared=("<si><t>" + "a" * 1_000 + "</t></si>") * 40)
    assert "shared text unpacks to" in refusal(many, UploadLimits(max_shared_strings_bytes=16384))


def test_a_shared_string_in_many_short_runs_is_refused_unread(no_parser):
    runs = "<r><t>abcdefghij</t></r>" * 60
    data = workbook('<row r="2"><c r="A2" t="s"><v>0</v></c></row>', shared=f"<si>{runs}</si>")
    assert "pieces of formatted text" in refusal(data)
    assert "far more than" in refusal(data, UploadLimits(max_cell_bytes=400))


def test_too_many_shared_strings_are_refused_unread(no_parser):
    data = workbook('<row r="2"><c r="A2" t="s"><v>0</v></c></row>',
                    shared="<si><t>a</t></si>" * 31)
    assert "more than 30 different texts" in refusal(data)


def test_shared_strings_within_the_limit_are_read():
    data = workbook('<row r="2"><c r="A2" t="s"><v>0</v></c><c r="B2" t="s"><v>30</v></c></row>',
                    shared="<si><t>a</t></si>" * 30 + "<si><r><t>b</t></r><r><t>c</t></r></si>")
    assert read_workbook(data, UploadLimits()) == [
        ["external_id", "username", "name", "branch"], ["a", "bc"]]


def test_too_many_cells_are_refused_unread(no_parser):
    rows = "".join(rep_row(number) for number in range(2, 52))
    assert "more than 200 cells" in refusal(workbook(rows))


def test_a_cell_past_the_last_column_is_refused_unread(no_parser):
    data = workbook('<row r="2"><c r="XFD2"><v>1</v></c></row>',
                    before_rows='<dimension ref="A1:XFD1048576"/>')
    assert "more than 8 columns" in refusal(data)


def test_a_row_of_cells_without_references_is_refused_unread(no_parser):
    data = workbook('<row r="2">' + "<c><v>1</v></c>" * 150 + "</row>")
    assert "A row holds more than" in refusal(data, UploadLimits(max_columns=4))


def test_a_document_type_is_refused_unread(no_parser):
    data = workbook(rep_row(2), prolog='<!DOCTYPE x [<!ENTITY a "aaaaaaaa">]>')
    assert "not a readable Excel workbook" in refusal(data)


def test_a_part_that_states_a_smaller_size_than_it_holds_is_refused():
    data = bytearray(workbook(rep_row(2), shared="<si><t>" + "a" * 50_000 + "</t></si>"))
    # Say in the central directory that the shared strings unpack to 100 bytes.
    at = data.find(b"PK\x01\x02" + data[data.find(b"PK\x01\x02") + 4:][:0])
    while at != -1:
        name_length = int.from_bytes(data[at + 28:at + 30], "little")
        if data[at + 46:at + 46 + name_length] == b"xl/sharedStrings.xml":
            data[at + 24:at + 28] = (100).to_bytes(4, "little")
        at = data.find(b"PK\x01\x02", at + 4)
    assert "not a readable Excel workbook" in refusal(bytes(data), UploadLimits())


def test_a_zip_of_many_parts_is_refused_before_its_directory_is_read(monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number in range(25):
            archive.writestr(f"part{number}.xml", "<a/>")

    def read_directory(*_args, **_kwargs):
        raise AssertionError("the zip directory was read")

    monkeypatch.setattr(zipfile, "ZipFile", read_directory)
    assert "more than 20 parts" in refusal(buffer.getvalue())


def test_rows_far_apart_are_refused_without_reading_the_gap():
    data = workbook(rep_row(2) + rep_row(1_000_000))
    with pytest.raises(FileRefused, match="more than 40 rows counting blank"):
        read_workbook(data, SMALL)


def test_too_many_rows_are_refused():
    data = workbook("".join(rep_row(number) for number in range(2, 24)))
    with pytest.raises(FileRefused, match="more than 20 rows"):
        read_workbook(data, UploadLimits(max_rows=20))


def test_a_refused_workbook_uses_little_memory():
    # 32 MiB of one cell, packed into about 32 KB: before, openpyxl held all of it (and more).
    data = workbook(pieces=(b'<row r="2"><c r="A2" t="inlineStr"><is><t>',
                            *(b"a" * MIB for _ in range(32)), b"</t></is></c></row>"))
    tracemalloc.start()
    try:
        with pytest.raises(FileRefused):
            read_workbook(data)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, peak


# --- CSV ---------------------------------------------------------------------------------------

def test_csv_within_the_limits_reads_as_before():
    assert read_csv(b"a,b\n1,2\n\n3,4\n\n\n", SMALL) == [["a", "b"], ["1", "2"], [], ["3", "4"]]


@pytest.mark.parametrize(("data", "message"), [
    (b"a,b\n" + b"x" * 500 + b",1\n", "far more than the 50 characters"),
    (b"a,b\n" + b"1,2\n" * 21, "more than 20 rows"),
    (b"a,b\n1,2\n" + b"\n" * 50, "more than 40 rows counting blank"),
    (b"a,b\n" + b"ab," * 500 + b"\n", "more than 8 columns"),
    (b"a,b\n" + b"x" * 70_000, "larger than 0.0625 MiB"),
    (b"a,b\n" + b'"' + b"x" * 200_000 + b'"\n', "larger than"),
])
def test_csv_past_a_limit_is_refused(data, message):
    with pytest.raises(FileRefused, match=message):
        read_csv(data, SMALL)


def test_a_csv_field_past_the_csv_modules_limit_is_refused_with_a_message():
    data = b"a,b\n\"" + b"x" * 140_000 + b"\",1\n"
    with pytest.raises(FileRefused, match="far more than the 5,000 characters"):
        read_csv(data, UploadLimits(max_cell_bytes=10 * MIB))


# --- through the import: a record with a bounded report ----------------------------------------

@pytest.fixture
def admin(make_admin):
    return make_admin()


def run(session, admin, clock, data: bytes, filename: str, limits: UploadLimits | None = None):
    return import_file(session, admin, "reps", filename, data, valid_rows_only=False,
                       now=clock(), limits=limits)


def test_a_refused_workbook_leaves_an_import_record(session, admin, clock, make_branch):
    # The 1 GiB shared string failed without a record; its small copy is refused with one.
    users = session.scalar(select(func.count(User.id)))
    data = workbook('<row r="2"><c r="A2" t="s"><v>0</v></c></row>',
                    shared="<si><t>" + "a" * 100_000 + "</t></si>")
    result = run(session, admin, clock, data, "crm.xlsx", SMALL)
    assert result.refused
    stored = session.get(ImportRun, result.run_id)
    assert stored.status == "refused" and stored.filename == "crm.xlsx"
    assert "far more than the 50 characters" in stored.report["problems"][0]["reason"]
    assert session.scalar(select(func.count(User.id))) == users


def test_the_report_keeps_values_short_and_counts_the_problems_it_leaves_out(
        session, admin, clock, make_branch):
    make_branch("BJ", "Beijing")
    # With the default limits: a 20,000-character value is not stored whole.
    huge = "x" * 20_000
    result = run(session, admin, clock,
                 f"external_id,username,name,branch\nR1,u1,{huge},BJ\n".encode(), "reps.csv")
    assert result.refused
    value = session.get(ImportRun, result.run_id).report["problems"][0]["value"]
    assert value.startswith("x" * 200) and len(value) < 240 and "20,000 characters" in value

    lines = "".join(f"R{number},user{number},{'n' * 300},BJ\n" for number in range(12))
    result = run(session, admin, clock,
                 f"external_id,username,name,branch\n{lines}".encode(), "reps.csv",
                 UploadLimits(max_problems=5, max_value_chars=20))
    stored = session.get(ImportRun, result.run_id)
    assert len(stored.report["problems"]) == 5 and stored.report["problems_not_shown"] == 7
    assert result.problems_not_shown == 7
    assert [problem["row"] for problem in stored.report["problems"]] == [2, 3, 4, 5, 6]
    assert all(len(problem["value"]) < 50 for problem in stored.report["problems"])


def test_the_report_page_says_how_many_problems_it_leaves_out(app, session, admin, clock,
                                                              make_branch, login_as):
    make_branch("BJ", "Beijing")
    lines = "".join(f"R{number},user{number},{'n' * 3000},BJ\n" for number in range(30))
    result = run(session, admin, clock,
                 f"external_id,username,name,branch\n{lines}".encode(), "reps.csv",
                 UploadLimits(max_problems=5))
    page = login_as(admin).get(f"/admin/imports/{result.run_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "The first 5 problems are listed; 25 more are not." in html
    assert "Problems (30)" in html
    assert len(html) < 40_000


def test_an_upload_through_the_page_uses_the_configured_limits(app, session, admin, login_as):
    app.config["IMPORT_LIMITS"] = SMALL
    client = login_as(admin)
    data = workbook(pieces=(b'<row r="2"><c r="A2" t="inlineStr"><is><t>', b"a" * 300_000,
                            b"</t></is></c></row>"))
    response = client.post("/admin/imports/", data={
        "kind": "reps", "file": (io.BytesIO(data), "crm.xlsx")},
        content_type="multipart/form-data")
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:300]
    stored = session.scalars(select(ImportRun)).one()
    assert stored.status == "refused" and "unpacks to" in stored.report["problems"][0]["reason"]
