"""Serial numbers of days in a workbook count in the workbook's own date system, 1900 or 1904."""

from __future__ import annotations

from datetime import date
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import select

from bidhub.models import User
from bidhub.services.imports import propose_mapping
from tests.conftest import reload
from tests.import_formats.conftest import sample_records, xls_of, xlsx_of

# 2024-01-05 is day 45296 in the 1900 date system and day 43834 in the 1904 one.
SERIALS = {1900: 45296, 1904: 43834}


def spreadsheet_xml_of(records: list[list[object]], system: int) -> bytes:
    """Excel's XML Spreadsheet 2003, which states the 1904 system in its ExcelWorkbook."""
    from tests.import_formats.test_spreadsheet_xml import HEAD, sheet

    options = ('<ExcelWorkbook xmlns="urn:schemas-microsoft-com:office:excel">'
               "<WindowHeight>9000</WindowHeight>"
               f"{'<Date1904/>' if system == 1904 else ''}</ExcelWorkbook>\n")

    def cell(value: object) -> str:
        kind = "Number" if isinstance(value, int) else "String"
        return f'<Cell><Data ss:Type="{kind}">{escape(str(value))}</Data></Cell>'

    rows = [f"<Row>{''.join(cell(value) for value in record)}</Row>" for record in records]
    return (HEAD + options + sheet("导出", rows) + "</Workbook>").encode()


WRITERS = {"xlsx": xlsx_of, "xls": xls_of, "xml.xls": spreadsheet_xml_of}


def reps_with_serial_hire_date(system: int) -> list[list[object]]:
    """The sample reps, the first one's hire date a plain number (its date format lost)."""
    records: list[list[object]] = sample_records("reps")
    records[1][records[0].index("入职日期")] = SERIALS[system]
    return records


@pytest.mark.parametrize("system", [1900, 1904])
@pytest.mark.parametrize("extension", list(WRITERS))
def test_a_serial_day_reads_in_the_workbooks_date_system(session, branches, run_import,
                                                         system, extension):
    data = WRITERS[extension](reps_with_serial_hire_date(system), system)
    result = run_import("reps", data, f"reps.{extension.split('.')[-1]}")
    assert (result.status, result.problems) == ("imported", [])
    reload(session)
    assert session.scalars(select(User.hired_on).where(User.external_id == "R1001")).one() == (
        date(2024, 1, 5))


@pytest.mark.parametrize("system", [1900, 1904])
@pytest.mark.parametrize("extension", list(WRITERS))
def test_the_mapping_preview_reads_serial_days_in_the_workbooks_system(session, system,
                                                                       extension):
    data = WRITERS[extension](reps_with_serial_hire_date(system), system)
    proposal = propose_mapping(session, "reps", f"reps.{extension.split('.')[-1]}", data)
    first = {cell.field: cell.value for cell in proposal.preview[0].cells}
    assert first["hire_date"] == "2024-01-05"
