"""Excel's XML Spreadsheet 2003, as web systems export it under an .xls name, imports as Excel
shows it."""

from __future__ import annotations

from xml.sax.saxutils import escape

import pytest
from sqlalchemy import select

from bidhub.domain.imports import FileRefused, MergedDown, UploadLimits
from bidhub.models import User
from bidhub.services.imports import FileFormat, file_format
from bidhub.services.spreadsheet_xml import spreadsheet_xml_rows
from tests.conftest import reload
from tests.import_formats.conftest import sample_records

HEAD = ('<?xml version="1.0"?>\n<?mso-application progid="Excel.Sheet"?>\n'
        '<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet" '
        'xmlns:o="urn:schemas-microsoft-com:office:office" '
        'xmlns:x="urn:schemas-microsoft-com:office:excel" '
        'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet" '
        'xmlns:html="http://www.w3.org/TR/REC-html40">\n')
HIDDEN = ('<WorksheetOptions xmlns="urn:schemas-microsoft-com:office:excel">'
          "<Visible>SheetHidden</Visible></WorksheetOptions>")


def cell(value: str) -> str:
    if not value:
        return "<Cell/>"
    kind = "Number" if value.isdigit() else "String"
    return f'<Cell><Data ss:Type="{kind}">{escape(value)}</Data></Cell>'


def sheet(name: str, rows: list[str], options: str = "") -> str:
    return (f'<Worksheet ss:Name="{name}"><Table>{"".join(rows)}</Table>{options}'
            "</Worksheet>\n")


def workbook(records: list[list[str]], *, hidden_first: bool = False) -> bytes:
    rows = [f"<Row>{''.join(cell(value) for value in record)}</Row>\n" for record in records]
    notes = sheet("说明", ["<Row><Cell><Data ss:Type=\"String\">导出说明</Data></Cell></Row>"],
                  HIDDEN) if hidden_first else ""
    return (HEAD + notes + sheet("导出", rows) + "</Workbook>").encode()


def test_an_xml_spreadsheet_imports_like_its_csv(session, branches, run_import):
    reps = sample_records("reps")
    data = workbook(reps, hidden_first=True)
    assert file_format("销售.xls", data) == FileFormat.SPREADSHEET_XML
    result = run_import("reps", data, "销售.xls")
    assert (result.status, result.added) == ("imported", len(reps) - 1), result.problems
    reload(session)
    assert set(session.scalars(select(User.external_id).where(User.external_id.like("R1%")))) == {
        record[0] for record in reps[1:]}
    again = run_import("reps", data, "again.xls")
    assert (again.status, again.added, again.updated) == ("imported", 0, 0)


def test_cells_are_read_where_excel_shows_them():
    rows = [
        '<Row><Cell><Data ss:Type="String">客户编号</Data></Cell>'
        '<Cell><Data ss:Type="String">客户名称</Data></Cell>'
        '<Cell><Data ss:Type="String">分公司</Data></Cell>'
        '<Cell><Data ss:Type="String">签约日期</Data></Cell></Row>',
        # Rich text, a merged cell covering the row below, a date.
        '<Row><Cell><Data ss:Type="String">KA-1</Data></Cell><Cell>'
        '<ss:Data ss:Type="String" xmlns="http://www.w3.org/TR/REC-html40"><B>北京</B>智联'
        '</ss:Data></Cell><Cell ss:MergeDown="1"><Data ss:Type="String">BJ</Data></Cell>'
        '<Cell><Data ss:Type="DateTime">2026-03-05T00:00:00.000</Data></Cell></Row>',
        '<Row><Cell><Data ss:Type="Number">123456789012</Data></Cell>'
        '<Cell><Data ss:Type="String">华北</Data></Cell>'
        '<Cell><Data ss:Type="DateTime">2026-03-05T14:30:00.000</Data></Cell></Row>',
        # A skipped row, then cells placed by index, an id Excel cannot hold, a merge across.
        '<Row ss:Index="5"><Cell ss:Index="2" ss:MergeAcross="1"><Data ss:Type="Number">'
        '1.2E+17</Data></Cell><Cell><Data ss:Type="Boolean">1</Data></Cell></Row>']
    data = (HEAD + sheet("客户", rows) + "</Workbook>").encode()
    assert list(spreadsheet_xml_rows(data)) == [
        ["客户编号", "客户名称", "分公司", "签约日期"],
        ["KA-1", "北京智联", "BJ", "2026-03-05"],
        ["123456789012", "华北", "", "2026-03-05 14:30:00"],
        [],
        ["", "1.2E+17", "", "TRUE"]]
    # The place merged down is read as the cell above in a row of the table; those merged
    # across, or skipped, are only empty.
    rows = list(spreadsheet_xml_rows(data))
    assert [type(rows[2][2]), type(rows[4][0]), type(rows[4][2])] == [MergedDown, str, str]


@pytest.mark.parametrize("body", [
    '<!DOCTYPE Workbook [<!ENTITY a "aaaa">]>',  # an entity can expand without end
    "<Worksheet><Table><Row><Cell><Data>unclosed",
    '<Worksheet><Table><Row ss:Index="3"/><Row ss:Index="2"/></Table></Worksheet>',
    '<Worksheet><Table><Row><Cell ss:MergeAcross="x"/></Row></Table></Worksheet>',
])
def test_a_broken_or_hostile_file_is_refused(body):
    data = (HEAD.replace("<Workbook", body + "<Workbook", 1) if body.startswith("<!")
            else HEAD + body).encode()
    with pytest.raises(FileRefused, match="not a readable Excel XML spreadsheet"):
        list(spreadsheet_xml_rows(data))


def test_limits_are_checked_as_rows_are_read():
    far = (HEAD + sheet("a", ['<Row><Cell ss:Index="1000000000"><Data ss:Type="String">x'
                              "</Data></Cell></Row>"]) + "</Workbook>").encode()
    with pytest.raises(FileRefused, match="columns"):
        list(spreadsheet_xml_rows(far))
    wide = workbook([[f"列{index}" for index in range(30)]])
    with pytest.raises(FileRefused, match="columns"):
        list(spreadsheet_xml_rows(wide, UploadLimits(max_columns=20)))
    long_cell = workbook([["名称"], ["名" * 50]])
    with pytest.raises(FileRefused, match="far more than"):
        list(spreadsheet_xml_rows(long_cell, UploadLimits(max_cell_bytes=40)))


def test_other_xml_is_not_taken_for_a_spreadsheet():
    assert file_format("a.xml", b'<?xml version="1.0"?><rows><row/></rows>') == FileFormat.CSV
