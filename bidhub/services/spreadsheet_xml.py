"""Excel's "XML Spreadsheet 2003": another "Excel" that web systems export under an .xls name.

The file is XML: a Workbook of Worksheets, each a Table of Rows of Cells holding Data. A row
or cell may say where it is (ss:Index), skipping those before it; a merged cell
(ss:MergeAcross, ss:MergeDown) holds its value in its first place only, as Excel shows it;
a place a cell merged down covers is read in a row of the table as that cell's value
(MergedDown). A row the sheet hides (ss:Hidden) is read as a HiddenRow.
The first visible worksheet is read (a first pass finds it), parsed as it is read by the
standard library's iterparse, each row let go once it is made; a document type or an entity,
which Excel never writes, refuses the file before it is parsed (an entity can expand without
end). The upload limits are checked as rows are made.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from bidhub.domain.imports import (
    COVERED,
    FORBIDDEN_MARKUP,
    FileRefused,
    HiddenRow,
    UploadLimits,
    cell_text,
    default_limits,
    too_large,
    too_long_cell,
    too_wide,
)
from bidhub.domain.text import N_

NAMESPACE = "urn:schemas-microsoft-com:office:spreadsheet"
EXCEL_NAMESPACE = "urn:schemas-microsoft-com:office:excel"
SS = f"{{{NAMESPACE}}}"
WORKSHEET, TABLE, ROW, CELL, DATA = (f"{SS}{name}" for name in ("Worksheet", "Table", "Row",
                                                                "Cell", "Data"))
INDEX, TYPE = f"{SS}Index", f"{SS}Type"
MERGE_ACROSS, MERGE_DOWN = f"{SS}MergeAcross", f"{SS}MergeDown"
HIDDEN = f"{SS}Hidden"  # a row hidden by hand, in a collapsed group or by a filter
VISIBLE = f"{{{EXCEL_NAMESPACE}}}Visible"
DATE_1904 = f"{{{EXCEL_NAMESPACE}}}Date1904"
XML_START = re.compile(rb"\s*<\?xml")
NOT_SPREADSHEET_XML = N_("The file is not a readable Excel XML spreadsheet. Save it again from "
                         "Excel as .xlsx, or export CSV.")
# The most rows below a cell it may merge (the rows of an .xls sheet).
MAX_MERGE_DOWN = 65_536


def is_spreadsheet_xml(data: bytes) -> bool:
    start = data[:4096].removeprefix(codecs.BOM_UTF8)
    return XML_START.match(start) is not None and NAMESPACE.encode() in start


def spreadsheet_xml_rows(data: bytes,
                         limits: UploadLimits | None = None) -> Iterator[list[str]]:
    """The first visible worksheet's rows as text (FileRefused: unreadable, or past a limit)."""
    limits = limits or default_limits()
    if len(data) > limits.max_file_bytes:
        raise FileRefused(too_large(limits))
    if FORBIDDEN_MARKUP.search(data):
        raise FileRefused(NOT_SPREADSHEET_XML)
    try:
        sheet = first_visible_sheet(data)
        yield from sheet_rows(data, sheet, limits)
    except FileRefused:
        raise
    except Exception as error:  # the XML parser's errors, and values it cannot give
        raise FileRefused(NOT_SPREADSHEET_XML) from error


def spreadsheet_xml_is_1904(data: bytes) -> bool:
    """Whether the workbook counts its days in the 1904 date system: its ExcelWorkbook,
    before the first worksheet, holds Date1904. A file that cannot be read says no here and
    is refused when its rows are read."""
    if FORBIDDEN_MARKUP.search(data):
        return False
    try:
        for event, element, _ in rows_let_go(data):
            if event == "start" and element.tag == WORKSHEET:
                return False
            if event == "end" and element.tag == DATE_1904:
                return True
    except Exception:  # the XML parser's errors
        return False
    return False


def first_visible_sheet(data: bytes) -> int:
    """The index of the first worksheet not hidden (the first one when all are)."""
    index = -1
    for event, element, _ in rows_let_go(data):
        if event == "start" and element.tag == WORKSHEET:
            index += 1
        elif event == "end" and element.tag == WORKSHEET:
            hidden = any((option.text or "").strip() in ("SheetHidden", "SheetVeryHidden")
                         for option in element.iter(VISIBLE))
            element.clear()
            if not hidden:
                return index
    if index < 0:
        raise FileRefused(NOT_SPREADSHEET_XML)
    return 0


def rows_let_go(data: bytes) -> Iterator[tuple[str, Any, Any]]:
    """iterparse's events, with the row's table for a row's end; each row is taken out of its
    table once it has been handed on, so the tree never holds more than one."""
    from xml.etree.ElementTree import iterparse  # noqa: S405

    table = None
    # spreadsheet_xml_rows has refused any DOCTYPE or ENTITY before this parses the file.
    for event, element in iterparse(io.BytesIO(data), events=("start", "end")):  # noqa: S314
        if event == "start" and element.tag == TABLE:
            table = element
        yield event, element, table
        if event == "end" and element.tag == ROW and table is not None:
            table.remove(element)


def sheet_rows(data: bytes, sheet: int, limits: UploadLimits) -> Iterator[list[str]]:
    index = -1
    number = 0  # the last row given, as Excel numbers them
    below: dict[int, int] = {}  # column -> rows, this one on, a merged cell above covers
    for event, element, _ in rows_let_go(data):
        if event == "start" and element.tag == WORKSHEET:
            index += 1
        elif event == "end" and element.tag == WORKSHEET and index == sheet:
            return
        elif event == "end" and element.tag == ROW and index == sheet:
            at = position(element, number + 1)
            while number + 1 < at:
                number += 1
                below = {column: rows - 1 for column, rows in below.items() if rows > 1}
                yield []
            number = at
            record, below = row_record(element, below, limits)
            yield HiddenRow(record) if element.get(HIDDEN) in ("1", "true") else record


def position(element: Any, default: int) -> int:
    """A row's or cell's ss:Index (1 is the first), or where it follows the one before."""
    value = element.get(INDEX)
    if value is None:
        return default
    at = int(value)
    if at < default:
        raise ValueError("an index before the place already reached")
    return at


def row_record(element: Any, below: dict[int, int],
               limits: UploadLimits) -> tuple[list[str], dict[int, int]]:
    """The row's cells as text, and what merged cells cover from the next row on."""
    record: list[str] = []
    spanning: dict[int, int] = {}
    for cell in element.iter(CELL):
        column = position(cell, len(record) + 1) - 1
        if column >= limits.max_columns:
            raise FileRefused(too_wide(limits))
        while len(record) < column or len(record) in below:
            record.append(COVERED if len(record) in below else "")
            column = max(column, len(record))
        data = cell.find(DATA)
        text = "" if data is None else data_text(data)
        if len(text) > limits.max_cell_bytes:
            raise FileRefused(too_long_cell(limits))
        across = min(int(cell.get(MERGE_ACROSS, "0")), limits.max_columns)
        down = min(int(cell.get(MERGE_DOWN, "0")), MAX_MERGE_DOWN)
        record.append(text)
        record.extend([""] * max(across, 0))
        if down > 0:
            spanning.update({covered: down for covered in range(column, column + across + 1)})
        if len(record) > limits.max_columns:
            raise FileRefused(too_wide(limits))
    for column in sorted(below):  # covered places right of the row's last cell
        if column >= len(record):
            record.extend([""] * (column - len(record)))
            record.append(COVERED)
    covered = {column: rows - 1 for column, rows in below.items() if rows > 1}
    covered.update(spanning)
    return record, covered


def data_text(data: Any) -> str:
    """A cell's value as a CSV export would hold it."""
    text = "".join(data.itertext())
    kind = data.get(TYPE, "String")
    if kind == "Number":
        try:
            return cell_text(float(text))
        except ValueError:
            return text.strip()
    if kind == "DateTime":
        try:
            return cell_text(datetime.fromisoformat(text.strip()))
        except ValueError:
            return text.strip()
    if kind == "Boolean":
        return "TRUE" if text.strip() == "1" else "FALSE"
    return text.strip()
