"""CRM imports: reps, accounts, opportunities, forecasts and incidents from CSV or XLSX files.

All or nothing per file: when any row has a problem nothing is written (unless the caller asks
for the valid rows only), and every import, done or refused, leaves an ImportRun and an audit
event. Rows are matched by external id, so importing the same file again changes nothing.
Ownership changes are transfers: each is filed (kind crm_import); moving an account bidhub
already holds must stay within capacity, while a first load records the CRM's owner as it is.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import re
import secrets
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import (
    DateTime,
    any_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload

from bidhub.config import Defaults
from bidhub.db import UNIT_OF_WORK, is_lost_race, unit_of_work
from bidhub.domain.errors import Conflict, InvalidRequest, OwnerChangeRefused
from bidhub.domain.imports import (
    CLOSED_STAGES,
    CONTACT_ROLES,
    EAST_ASIAN_DATE_FORMATS,
    EXCEL_1904_DAY_ZERO,
    EXCEL_DAY_ZERO,
    KINDS,
    MAX_MERGED_RANGES,
    NOT_A_WORKBOOK,
    SCAN_CHUNK,
    STAGE_NAMES,
    STAGE_ORDER,
    STAGES_NAMED,
    ColumnMatch,
    CoveredCells,
    FileRefused,
    HiddenRow,
    ImportKind,
    MappingCheck,
    MappingWarning,
    Message,
    NoTable,
    Parsed,
    PreviewRow,
    Problem,
    ProblemList,
    Row,
    RowReader,
    Unit,
    UnsavedFormula,
    UploadLimits,
    bounded_problems,
    cell_text,
    check_mapping,
    check_workbook,
    clean_cell,
    collect_records,
    column_number,
    csv_rows,
    default_limits,
    exact_mapping,
    file_shape,
    header_key,
    headers_key,
    id_key,
    mapping_needed,
    normalise,
    numbered_records,
    preview_rows,
    refused,
    rows_to_store,
    shown_number,
    suggest_mapping,
    unique_headers,
    unpadded_id_key,
)
from bidhub.domain.text import COMMA, N_, Joined, Text
from bidhub.models import (
    Account,
    AccountabilityIncident,
    Branch,
    Contact,
    ExecutiveTitle,
    Filing,
    FilingKind,
    ImportMapping,
    ImportRun,
    IncidentStatus,
    MonthlyForecast,
    Opportunity,
    OpportunityStageChange,
    RepStatus,
    Role,
    User,
    UTCDateTime,
)
from bidhub.services.accountability import (
    UNWATCHED_PAGE_AREA,
    PageArea,
    checked_evidence_url,
    explanation_due,
    won_deal_refusal,
)
from bidhub.services.audit import record_audit
from bidhub.services.branches import (
    CODE_PATTERN,
    branch_key,
    branch_snapshot,
    match_branch,
    match_branch_in_path,
)
from bidhub.services.departures import lock_departing, send_back_awards
from bidhub.services.filings import listed_refusal, rules_in_force
from bidhub.services.html_tables import html_rows, is_html_table
from bidhub.services.notifications import notify
from bidhub.services.ownership import (
    OwnerChange,
    change_owners,
    is_postgresql,
    lock_accounts,
    lock_reps,
    unfinished_listing_of,
)
from bidhub.services.policies import accountability_policy, recent_won_deals
from bidhub.services.sponsors import waiting_for_sponsor
from bidhub.services.spreadsheet_xml import (
    is_spreadsheet_xml,
    spreadsheet_xml_is_1904,
    spreadsheet_xml_rows,
)
from bidhub.services.track_records import forget_track_record_snapshots
from bidhub.services.users import (
    hash_password,
    hire_date_refusal,
    new_session_token,
    user_snapshot,
)
from bidhub.services.xls_workbooks import (
    check_xls,
    is_xls,
    xls_is_1904,
    xls_rows,
    xls_visible_sheets,
)

CRM_IMPORT_REASON = "CRM import"
# The configured default; the web and the CLI pass the running app's TIMEZONE.
DEFAULT_ZONE = Defaults.TIMEZONE
CHUNK = 500

log = logging.getLogger(__name__)


# How often a long import reports how far it has got.
PROGRESS_EVERY = 250


@dataclass
class ImportResult:
    run_id: int
    kind: str
    filename: str
    status: str  # imported | refused
    rows_total: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_not_shown: int = 0  # beyond the report's limit
    ignored_columns: list[str] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)  # file column -> field, as read
    generated_usernames: bool = False
    saved_mapping_at: datetime | None = None  # when the saved mapping used was confirmed
    saved_mapping_by: str = ""
    # Rows imported with a caveat the admin should read (a sponsor title nobody single holds).
    warnings: list[Problem] = field(default_factory=list)
    totals_rows: list[tuple[int, str]] = field(default_factory=list)  # skipped: (row, word)
    note_rows: list[tuple[int, str]] = field(default_factory=list)  # skipped: (row, text)
    rows_above: list[tuple[int, str]] = field(default_factory=list)  # skipped: (row, text)
    # The columns whose merged-down cells gave their value to the rows below the first
    merged_down: list[str] = field(default_factory=list)
    # The rows of the table the workbook hides, read like the others: ranges (first, last) up
    # to the report's limit, and how many rows
    hidden_rows: list[tuple[int, int]] = field(default_factory=list)
    hidden_rows_count: int = 0
    # Per amount field, how many amounts read had a fraction of a yuan rounded away
    rounded: dict[str, int] = field(default_factory=dict)
    # Per amount field read in a unit other than the yuan, yuan per unit
    units: dict[str, Unit] = field(default_factory=dict)
    # The note around the table that named the unit of the amount columns whose names give
    # none: (row, its text)
    unit_note: tuple[int, str] | None = None

    @property
    def refused(self) -> bool:
        return self.status == "refused"


@dataclass(frozen=True)
class HiddenRowsShown:
    """The rows of the table an import's workbook hid, as its report (the web's and the
    command line's) shows them."""

    count: int  # how many
    ranges: list[str]  # "5", "8–12": the ranges the report kept, from the first
    not_listed: int  # the rows past those ranges

    @classmethod
    def counted(cls, ranges: Iterable[tuple[int, int]], count: int) -> HiddenRowsShown:
        ranges = [(int(first), int(last)) for first, last in ranges]
        listed = sum(last - first + 1 for first, last in ranges)
        return cls(count, [str(first) if first == last else f"{first}–{last}"
                           for first, last in ranges], max(count - listed, 0))

    @classmethod
    def of(cls, report: dict) -> HiddenRowsShown:
        """From an import run's stored report."""
        hidden = report.get("hidden_rows") or {}
        return cls.counted(hidden.get("ranges", []), int(hidden.get("count", 0)))


class RowProblem(Exception):
    def __init__(self, row: Row, column: str, value: Any, reason: Message) -> None:
        super().__init__(str(reason))
        self.problem = Problem(row.number, column, "" if value is None else str(value), reason)


# --- reading the file -------------------------------------------------------------------------

def is_workbook(filename: str, data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04" or filename.lower().endswith((".xlsx", ".xlsm"))


def shared_string_table(source: Any) -> list[str]:
    """The shared strings' text as openpyxl's read_string_table gives it, several times faster.

    openpyxl builds a Text object per string (70 µs each here), and a workbook within the
    limits may share a hundred thousand. The text is the plain <t> and the runs' <t>, as there.
    """
    # check_workbook has refused any DOCTYPE or ENTITY before this parses the part.
    from xml.etree.ElementTree import iterparse  # noqa: S405

    namespace = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    item, text, run = f"{namespace}si", f"{namespace}t", f"{namespace}r"
    strings: list[str] = []
    for _event, element in iterparse(source):  # noqa: S314 - see above
        if element.tag != item:
            continue
        pieces = []
        for child in element:
            if child.tag == text:
                pieces.append(child.text or "")
            elif child.tag == run:
                pieces += [piece.text or "" for piece in child if piece.tag == text]
        strings.append("".join(pieces).replace("x005F_", ""))
        element.clear()
    return strings


def workbook_reader(source: io.BytesIO) -> Any:
    """openpyxl's reader in read-only mode for cell values, faster where a workbook is large.

    It reads the shared strings with shared_string_table and only finds where the first
    visible worksheet is: openpyxl's read-only worksheet would first read the whole sheet once more
    when it states no size, and pad every row to the size it states.
    """
    from openpyxl.reader.excel import SHARED_STRINGS, ExcelReader

    class Reader(ExcelReader):
        first_sheet: str | None = None

        def read_strings(self) -> None:
            part = self.package.find(SHARED_STRINGS)
            if part is not None:
                with self.archive.open(part.PartName[1:]) as strings:
                    self.shared_strings = shared_string_table(strings)

        def read_worksheets(self) -> None:
            # The first visible worksheet: a hidden first sheet is most often a list the
            # visible one's drop-downs read (民营, 国有, ...). All hidden: the first.
            for sheet, relation in self.parser.find_sheets():
                if relation.target in self.valid_files and "chartsheet" not in relation.Type:
                    if self.first_sheet is None:
                        self.first_sheet = relation.target
                    if (sheet.state or "visible") == "visible":
                        self.first_sheet = relation.target
                        return

    return Reader(source, read_only=True, data_only=True)


def sheet_rows(reader: Any) -> Iterator[list[str]]:
    """The first worksheet's rows as text, streamed; a blank row for each row the file skips,
    a row the sheet hides as a HiddenRow.

    A formula cell whose value the file does not hold is an UnsavedFormula (its formula), not
    an empty cell: openpyxl reads the values only (data_only) and gives None for it.
    """
    from openpyxl.styles.numbers import BUILTIN_FORMATS_MAX_SIZE
    from openpyxl.worksheet._reader import FORMULA_TAG, VALUE_TAG, WorkSheetParser

    class Parser(WorkSheetParser):
        is_hidden = False  # whether the row parsed last is hidden

        def parse_row(self, element: Any) -> tuple[int, list[dict[str, Any]]]:
            self.is_hidden = element.get("hidden") in ("1", "true")
            return super().parse_row(element)

        def parse_cell(self, element: Any) -> dict[str, Any]:
            cell = super().parse_cell(element)
            if cell["value"] is None and (formula := element.find(FORMULA_TAG)) is not None:
                # Excel saves a formula's text result "" as an empty <v> of type str; openpyxl
                # writes an empty <v/> without a type, or none at all, for a formula it did
                # not calculate.
                saved = element.find(VALUE_TAG) is not None and element.get("t") == "str"
                if not saved:
                    cell["value"] = UnsavedFormula(f"={formula.text or ''}")
            return cell

    workbook = reader.wb
    # Styles whose built-in format is one of Chinese Excel's dates are dates too: openpyxl only
    # knows the formats it defines (a custom format's id has been moved past them by now).
    date_formats = set(workbook._date_formats) | {
        index for index, style in enumerate(workbook._cell_styles)
        if style.numFmtId in EAST_ASIAN_DATE_FORMATS}
    # Styles whose format shows a number otherwise than the number is (a whole number
    # zero-padded, 000000; a number scaled, 0%, #,##0, or 0!.0000): such a cell reads as shown
    # (001234, 85%, 12.0000), as a CSV saved from the workbook holds it.
    custom = workbook._number_formats  # in order, numbered from BUILTIN_FORMATS_MAX_SIZE

    def custom_code(format_id: int) -> str | None:
        at = format_id - BUILTIN_FORMATS_MAX_SIZE
        return custom[at] if 0 <= at < len(custom) else None

    shown_formats = {index: found for index, style in enumerate(workbook._cell_styles)
                     if (found := shown_number(style.numFmtId, custom_code(style.numFmtId)))
                     is not None}
    with reader.archive.open(reader.first_sheet) as source:
        covered = CoveredCells(merged_down(source))
    with reader.archive.open(reader.first_sheet) as source:
        parser = Parser(source, reader.shared_strings, data_only=True, epoch=workbook.epoch,
                        date_formats=date_formats, timedelta_formats=workbook._timedelta_formats)
        number = 0
        for index, cells in parser.parse():
            while number + 1 < index:
                number += 1
                yield []
            number = max(number, index)
            # The columns are bounded by check_workbook: by reference, or by cells per row.
            # An empty cell (formatting only) may lie far right of them and is left out.
            cells = [cell for cell in cells if cell["value"] is not None]
            record = [""] * max((cell["column"] for cell in cells), default=0)
            for cell in cells:
                value = cell["value"]
                if type(value) is UnsavedFormula:
                    text = value
                elif cell["style_id"] in shown_formats and (
                        shown := shown_formats[cell["style_id"]].shown(value)) is not None:
                    text = shown
                else:
                    text = cell_text(value).strip()
                record[cell["column"] - 1] = text
            yield covered.marked(index, HiddenRow(record) if parser.is_hidden else record)


# A merged range of a worksheet (<mergeCell ref="A2:A9"/>, perhaps with a namespace prefix),
# after its rows: first column's letters, first row, last column's letters, last row.
MERGE_CELL = re.compile(rb'<(?:[\w.-]+:)?mergeCell\b[^>]*?\bref="([A-Za-z]{1,3})(\d{1,7}):'
                        rb'([A-Za-z]{1,3})(\d{1,7})"')
MERGE_CELLS_START = re.compile(rb"<(?:[\w.-]+:)?mergeCells\b")


def merged_down(source: Any) -> list[tuple[int, int, int]]:
    """The ranges of a worksheet part (a stream) merged over more than one row, as (first row,
    last row, first column's index from 0); the part is read in pieces, and only its list
    of merged ranges, after the rows, is searched."""
    ranges: list[tuple[int, int, int]] = []

    def add(text: bytes, end: int) -> None:
        for first_column, first_row, _, last_row in MERGE_CELL.findall(text, 0, end):
            if int(last_row) > int(first_row) and len(ranges) < MAX_MERGED_RANGES:
                ranges.append((int(first_row), int(last_row), column_number(first_column) - 1))

    tail, found = b"", False
    while chunk := source.read(SCAN_CHUNK):
        buffer = tail + chunk
        if not found:
            # `in` first: far faster over the rows than the expression
            start = MERGE_CELLS_START.search(buffer) if b"mergeCells" in buffer else None
            if start is None:
                tail = buffer[-64:]
                continue
            found, buffer = True, buffer[start.start():]
        end = max(buffer.rfind(b"<"), 0)  # a range cut off at the end goes with the next piece
        add(buffer, end)
        tail = buffer[end:]
    if found:
        add(tail, len(tail))
    return ranges


def workbook_rows(data: bytes) -> Iterator[list[str]]:
    """The first sheet's rows as text, streamed a batch at a time (check_workbook first).

    openpyxl warns about parts of a workbook it skips; the warnings are silenced while it
    reads, never while the rows are used.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = workbook_reader(io.BytesIO(data))
    except Exception as error:  # openpyxl raises many kinds for a broken file
        raise FileRefused(NOT_A_WORKBOOK) from error
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader.read()
            if reader.first_sheet is None:
                raise FileRefused(NOT_A_WORKBOOK)
            rows = sheet_rows(reader)
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                batch = list(itertools.islice(rows, WORKBOOK_BATCH))
            yield from batch
            if len(batch) < WORKBOOK_BATCH:
                return
    except FileRefused:
        raise
    except Exception as error:  # openpyxl raises many kinds for a broken file
        raise FileRefused(NOT_A_WORKBOOK) from error
    finally:
        reader.archive.close()


WORKBOOK_BATCH = 500


T = TypeVar("T")


def read_workbook_part(data: bytes, read: Callable[[Any], T], broken: T) -> T:
    """`read` of openpyxl's reader once it has read the workbook part only (its sheets, its
    date system), or `broken` for a file openpyxl cannot open: the reading of the rows
    refuses it, saying why."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = workbook_reader(io.BytesIO(data))
            try:
                reader.read_manifest()
                reader.read_workbook()
                return read(reader)
            finally:
                reader.archive.close()
    except Exception:  # openpyxl raises many kinds for a broken file
        return broken


def workbook_visible_sheets(data: bytes) -> list[str]:
    """The names of an .xlsx workbook's visible worksheets, in order (the first is the one
    read)."""
    return read_workbook_part(data, lambda reader: [
        sheet.name for sheet, relation in reader.parser.find_sheets()
        if relation.target in reader.valid_files and "chartsheet" not in relation.Type
        and (sheet.state or "visible") == "visible"], [])


def on_another_sheet(refusal: NoTable, sheets: list[str]) -> FileRefused:
    """`refusal` of a workbook whose first visible sheet holds no table, saying which sheet was
    read when the workbook shows others (an import template's 填写说明 before its data)."""
    if len(sheets) < 2:
        return refusal
    return FileRefused(N_(
        "%(refusal)s A workbook is read from its first visible sheet, “%(sheet)s”; this file "
        "has other sheets too (%(others)s). If the table is on another sheet, move that sheet to "
        "the front (or delete the others), and import the file again.",
        refusal=refusal.message, sheet=sheets[0][:60],
        others=Joined([f"“{name[:60]}”" for name in sheets[1:6]], COMMA)))


def workbook_day_zero(data: bytes) -> date:
    """The day before serial number 1 in the workbook's date system: 1899-12-30 in the 1900
    system, 1904-01-01 in the 1904 one (workbookPr date1904). Only the workbook part is read."""
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    return read_workbook_part(data, lambda reader: EXCEL_1904_DAY_ZERO
                              if reader.wb.epoch == CALENDAR_MAC_1904 else EXCEL_DAY_ZERO,
                              EXCEL_DAY_ZERO)


def read_workbook(data: bytes, limits: UploadLimits | None = None) -> list[list[str]]:
    """The first sheet's cells as text, read in streaming mode within the limits.

    The file is checked (check_workbook) before openpyxl sees it: openpyxl keeps every shared
    string, a whole row and whole cell values in memory, so those are bounded first.
    """
    limits = limits or default_limits()
    check_workbook(data, limits)
    return collect_records(workbook_rows(data), limits)


class FileFormat(StrEnum):
    """How an import file is read, told by its first bytes (an .xlsx also by its name)."""

    XLS = "xls"  # Excel 97-2003 (xls_workbooks.py)
    XLSX = "xlsx"
    SPREADSHEET_XML = "spreadsheet_xml"  # Excel's XML Spreadsheet 2003 (spreadsheet_xml.py)
    WEB_PAGE = "web_page"  # an HTML table saved as .xls (html_tables.py)
    CSV = "csv"  # text with commas or tabs between the cells


def file_format(filename: str, data: bytes) -> FileFormat:
    if is_xls(data):
        return FileFormat.XLS
    if is_workbook(filename, data):
        return FileFormat.XLSX
    if is_spreadsheet_xml(data):
        return FileFormat.SPREADSHEET_XML
    if is_html_table(data):
        return FileFormat.WEB_PAGE
    return FileFormat.CSV


class FileSource:
    """A file's records, read afresh on each pass so that none is kept in memory.

    Opening it reads it once, keeping only its header and its number of data rows: a file
    past the limits, unreadable, or without rows is refused (FileRefused) before anything is
    parsed or written.
    """

    def __init__(self, filename: str, data: bytes, limits: UploadLimits | None = None) -> None:
        self.data = data
        self.limits = limits or default_limits()
        self.format = file_format(filename, data)
        # Text with separators: a row with more cells than the header names had one unquoted.
        self.delimited = self.format == FileFormat.CSV
        # A number in a date column is Excel's serial number of the day, in the workbook's own
        # date system (a date cell is read as its date already).
        self.day_zero = EXCEL_DAY_ZERO
        if self.format == FileFormat.XLS:
            check_xls(data, self.limits)
            if xls_is_1904(data):
                self.day_zero = EXCEL_1904_DAY_ZERO
        elif self.format == FileFormat.XLSX:
            check_workbook(data, self.limits)
            self.day_zero = workbook_day_zero(data)
        elif self.format == FileFormat.SPREADSHEET_XML and spreadsheet_xml_is_1904(data):
            self.day_zero = EXCEL_1904_DAY_ZERO
        try:
            self.shape = file_shape(self.records(), delimited=self.delimited)
        except NoTable as refused:
            sheets = {FileFormat.XLSX: workbook_visible_sheets,
                      FileFormat.XLS: xls_visible_sheets}.get(self.format)
            if sheets is None:
                raise
            raise on_another_sheet(refused, sheets(data)) from None
        self.header, self.rows_total = self.shape.header, self.shape.rows_total

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """The records that are not blank, with their row numbers as Excel shows them."""
        data, limits = self.data, self.limits
        rows = {FileFormat.XLS: lambda: xls_rows(data, limits),
                FileFormat.XLSX: lambda: workbook_rows(data),
                FileFormat.SPREADSHEET_XML: lambda: spreadsheet_xml_rows(data, limits),
                FileFormat.WEB_PAGE: lambda: html_rows(data, limits),
                FileFormat.CSV: lambda: csv_rows(data, limits)}[self.format]()
        return numbered_records(rows, limits)

    def head(self, count: int) -> list[list[str]]:
        """The header and the first `count` data rows after it, blank rows kept in their
        places: the record at index i is in row `shape.header_row` + i."""
        header_row = self.shape.header_row
        records: list[list[str]] = []
        for number, record in self.records():
            if number < header_row:
                continue
            if records and count <= 0:
                break
            records.extend([[]] * (number - header_row - len(records)))
            records.append(record)
            count -= number > header_row
        return records


# --- column mappings ----------------------------------------------------------------------------

PREVIEW_ROWS = 5


class MappingNeeded(Exception):
    """The file's headers are not all known: a mapping must be confirmed before it is imported.

    Carries the suggestion (each column with its likely field) and its check (required fields
    still unmapped, important columns that would be dropped). Nothing was written.
    """

    def __init__(self, kind: str, headers: list[str]) -> None:
        super().__init__(f"the {kind} file's columns need a mapping")
        self.kind = kind
        self.headers = headers
        self.suggestion = suggest_mapping(kind, headers)
        self.check = check_mapping(kind, headers, suggested_columns(self.suggestion))


def suggested_columns(suggestion: list[ColumnMatch]) -> dict[str, str]:
    return {match.column: match.field for match in suggestion if match.field is not None}


def saved_for_headers(saved: dict[str, str], headers: list[str]) -> dict[str, str]:
    """A saved mapping's columns keyed by this file's headers. It was saved under the header
    row it was confirmed for, which may write a header otherwise and still be the same row
    (headers_key: 年合同额（万元） with a trailing space is 年合同额(万元)); the mapping step's
    menus and what it sends back name this file's headers."""
    by_key = {header_key(header): field for header, field in saved.items()}
    return {header: by_key[header_key(header)] for header in headers
            if header_key(header) in by_key}


def saved_mapping(session: Session, kind: str, headers: list[str]) -> ImportMapping | None:
    """The mapping an admin confirmed for files of this kind with these headers, if any."""
    return session.scalars(select(ImportMapping).where(
        ImportMapping.kind == kind, ImportMapping.headers_key == headers_key(headers))).first()


@dataclass
class MappingProposal:
    """What the mapping step shows for one file: each column's field, the check, a preview."""

    kind: str
    filename: str
    headers: list[str]
    suggestion: list[ColumnMatch]
    columns: dict[str, str]  # as chosen now: given, else saved, else suggested
    acknowledged: list[str]
    check: MappingCheck
    preview: list[PreviewRow]
    rows_total: int  # the data rows less totals rows, as the mapping reads them
    needed: bool  # the headers are not all exact, or a mapping was saved for them
    # Important columns left unmapped, acknowledged or not (the step shows a box for each).
    unmapped_important: list[MappingWarning] = field(default_factory=list)
    saved: ImportMapping | None = None
    saved_by: str = ""
    # The rows above the column names the import skips: (row, its text).
    rows_above: tuple[tuple[int, str], ...] = ()
    # The rows below the column names the workbook hides: they are imported like the others.
    hidden_rows: int = 0
    # The note around the table that names the unit of amount columns whose names give none:
    # (row, its text).
    unit_note: tuple[int, str] | None = None


def propose_mapping(
    session: Session, kind: str, filename: str, data: bytes, *,
    columns: dict[str, str] | None = None, acknowledged: Iterable[str] | None = None,
    limits: UploadLimits | None = None,
) -> MappingProposal | None:
    """The mapping step for a file: the saved mapping or the suggestion, or `columns` as the
    admin changed them, checked, with the first rows as they would be stored.

    None when the file cannot be read at all (importing it records why).
    """
    if kind not in KINDS:
        raise InvalidRequest(N_("Unknown import kind '%(kind)s'; choose one of %(kinds)s.",
                                kind=kind, kinds=", ".join(KINDS)), field="kind")
    try:
        source = FileSource(filename, data, limits)
    except FileRefused:
        return None
    headers = source.header
    suggestion = suggest_mapping(kind, headers)
    saved = saved_mapping(session, kind, headers)
    if columns is None:
        columns = (saved_for_headers(saved.columns, headers) if saved is not None
                   else suggested_columns(suggestion))
    if acknowledged is None:
        acknowledged = (list(saved_for_headers(dict.fromkeys(saved.acknowledged, ""), headers))
                        if saved is not None else [])
    acknowledged = [column for column in acknowledged if column in headers]
    check = check_mapping(kind, headers, columns, acknowledged, source.shape.unit_note)
    saved_by = ""
    if saved is not None and saved.saved_by_id is not None:
        saved_by = actor_names(session, [saved]).get(saved.saved_by_id, "")
    return MappingProposal(
        kind=kind, filename=filename, headers=unique_headers(headers), suggestion=suggestion,
        columns={column: name for column, name in columns.items() if name},
        acknowledged=acknowledged, check=check,
        preview=preview_rows(kind, source.head(PREVIEW_ROWS), check.columns, PREVIEW_ROWS,
                             source.day_zero, source.shape.notes_below,
                             source.shape.header_row, source.shape.unit_note),
        rows_total=rows_to_store(kind, source.shape, check.columns),
        needed=saved is not None or mapping_needed(kind, headers),
        unmapped_important=check_mapping(kind, headers, columns).warnings, saved=saved,
        saved_by=saved_by, rows_above=source.shape.rows_above,
        hidden_rows=source.shape.hidden_rows,
        unit_note=None if source.shape.unit_note is None else source.shape.unit_note[:2])


def chosen_mapping(
    session: Session, kind: str, headers: list[str], mapping: dict[str, str] | None,
    acknowledged: Iterable[str],
) -> tuple[dict[str, str] | None, list[str], ImportMapping | None]:
    """The mapping to read a file by: the one given (checked), else the saved one, else none.

    Raises InvalidRequest when the given mapping cannot be used (nothing is written), and
    MappingNeeded when the headers need one and none was given or saved.
    """
    if mapping is not None:
        # Columns the mapping does not name are read by their exact name, unless the mapping
        # gives their field to another column.
        claimed = {name for name in mapping.values() if name}
        mapping = {**{column: name for column, name in exact_mapping(kind, headers).items()
                      if name not in claimed}, **mapping}
        acknowledged = [column for column in acknowledged if column in headers]
        check = check_mapping(kind, headers, mapping, acknowledged)
        if not check.usable:
            raise InvalidRequest(Joined(check.refusals), field="mapping")
        return check.columns, acknowledged, None
    saved = saved_mapping(session, kind, headers)
    if saved is not None:
        columns = saved_for_headers(saved.columns, headers)
        acknowledged = list(saved_for_headers(dict.fromkeys(saved.acknowledged, ""), headers))
        if check_mapping(kind, headers, columns, acknowledged).usable:
            return columns, acknowledged, saved
    if headers and mapping_needed(kind, headers):
        raise MappingNeeded(kind, headers)
    return None, [], None


def _save_mapping(session: Session, actor: User, kind: str, headers: list[str],
                  columns: dict[str, str], acknowledged: list[str], now: datetime) -> None:
    """Keep a confirmed mapping for the next file of this kind with the same headers."""
    key = headers_key(headers)
    saved = session.scalars(select(ImportMapping).where(
        ImportMapping.kind == kind, ImportMapping.headers_key == key)).first()
    after = {"kind": kind, "headers": headers, "columns": columns, "acknowledged": acknowledged}
    if saved is None:
        saved = ImportMapping(kind=kind, headers_key=key, headers=headers, columns=columns,
                              acknowledged=acknowledged, saved_by_id=actor.id, saved_at=now)
        session.add(saved)
        session.flush()
        record_audit(session, actor, "import_mapping.saved", f"import_mapping:{saved.id}", now,
                     after=after)
        return
    before = {"kind": kind, "headers": saved.headers, "columns": saved.columns,
              "acknowledged": saved.acknowledged}
    if before == after:
        return
    saved.headers, saved.columns, saved.acknowledged = headers, columns, acknowledged
    saved.saved_by_id, saved.saved_at = actor.id, now
    session.flush()
    record_audit(session, actor, "import_mapping.saved", f"import_mapping:{saved.id}", now,
                 before=before, after=after)


# --- the use case -----------------------------------------------------------------------------

# How many times an import that lost a race (the database ended its transaction because of
# another at the same moment: a deadlock with a transfer that locks the same reps in another
# order) is run, from the start, before it is refused as a Conflict.
IMPORT_ATTEMPTS = 3


def import_file(session: Session, actor: User, kind: str, filename: str, data: bytes,
                **options: Any) -> ImportResult:
    """`import_once`, run again from the start when the database ended its transaction
    because of another one (`is_lost_race`): its rows were rolled back, nothing of it was
    saved. After IMPORT_ATTEMPTS, a Conflict saying so. Inside a caller's unit of work the
    error is the caller's: the rollback took the caller's work too."""
    for attempt in range(1, IMPORT_ATTEMPTS + 1):
        try:
            return import_once(session, actor, kind, filename, data, **options)
        except OperationalError as error:
            if not is_lost_race(error) or UNIT_OF_WORK in session.info:
                raise
            session.rollback()
            log.warning("import of %s lost a race with another change (attempt %d of %d)",
                        filename, attempt, IMPORT_ATTEMPTS)
    raise Conflict(N_("Other changes to the same accounts or reps were being saved at the same "
                      "moment, and the import was stopped %(count)d times to let them through; "
                      "nothing was imported. Import the file again.", count=IMPORT_ATTEMPTS))


def import_once(
    session: Session, actor: User, kind: str, filename: str, data: bytes, *,
    valid_rows_only: bool, now: datetime, zone: str = DEFAULT_ZONE,
    progress: Callable[[int, int], None] | None = None, limits: UploadLimits | None = None,
    mapping: dict[str, str] | None = None, acknowledged: Iterable[str] = (),
) -> ImportResult:
    """Import one file; all or nothing unless `valid_rows_only`. Always records an ImportRun.

    Columns are read by `mapping` (file column -> field) when one is given: it is checked
    first (InvalidRequest, nothing written), and saved for the next file with these headers.
    Without one, a mapping saved for these headers is used; headers that are not all exact
    and have none raise MappingNeeded (nothing written). `acknowledged` names the important
    columns the admin chose to leave out.
    `progress(rows_checked, rows_total)` is called every PROGRESS_EVERY rows and at the end.
    A file past `limits` is refused before it is parsed; the report keeps at most
    `limits.max_problems` problems, values cut short, and counts the rest.
    """
    limits = limits or default_limits()
    if kind not in KINDS:
        raise ValueError(f"unknown import kind {kind!r}")
    sha256 = hashlib.sha256(data).hexdigest()
    used: ImportMapping | None = None
    to_save: tuple[list[str], dict[str, str], list[str]] | None = None
    source: FileSource | None = None
    try:
        source = FileSource(filename, data, limits)
    except FileRefused as error:
        parsed, reader = refused(kind, error), None
    else:
        headers = source.header
        columns, acknowledged, used = chosen_mapping(session, kind, headers, mapping,
                                                     acknowledged)
        if mapping is not None and columns is not None:
            to_save = (headers, columns, acknowledged)
        reader = RowReader(kind, headers, limits, columns, width_checked=source.delimited,
                           day_zero=source.day_zero, zone=ZoneInfo(zone),
                           header_row=source.shape.header_row,
                           unit_note=source.shape.unit_note)
        parsed = reader.parsed
        parsed.rows_total = source.rows_total
        parsed.rows_above = list(source.shape.rows_above)
    refused_file = False
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    try:
        with unit_of_work(session):
            counts, found, warnings = _apply_rows(
                session, kind, source, reader, parsed, actor.id, now, zone, progress,
                valid_rows_only=valid_rows_only)
            found.finish()
            problems, problems_not_shown = bounded_problems(found.kept, found.more, limits)
            if parsed.file_problems or (problems and not valid_rows_only):
                raise _ImportRefused
            if to_save is not None:
                _save_mapping(session, actor, kind, *to_save, now)
            run = _record_run(session, actor, kind, filename, sha256, parsed, counts, problems,
                              problems_not_shown, valid_rows_only, limits, "imported", now,
                              warnings=warnings)
    except _ImportRefused:
        # Its rows are rolled back; the refusal itself is recorded, in a transaction of its own
        # (with the confirmed mapping: the next, corrected file has the same headers).
        refused_file = True
        counts = dict.fromkeys(counts, 0)
        with unit_of_work(session):
            if to_save is not None:
                _save_mapping(session, actor, kind, *to_save, now)
            run = _record_run(session, actor, kind, filename, sha256, parsed, counts, problems,
                              problems_not_shown, valid_rows_only, limits, "refused", now)
    return ImportResult(run_id=run.id, kind=kind, filename=run.filename,
                        status="refused" if refused_file else "imported",
                        rows_total=run.rows_total, skipped=run.skipped, problems=problems,
                        problems_not_shown=problems_not_shown,
                        ignored_columns=run.report["ignored_columns"],
                        mapping=parsed.mapping, generated_usernames=parsed.generated_usernames,
                        saved_mapping_at=used.saved_at if used is not None else None,
                        saved_mapping_by=(actor_names(session, [used]).get(used.saved_by_id, "")
                                          if used is not None else ""),
                        warnings=[] if refused_file else warnings[:limits.max_problems],
                        totals_rows=list(parsed.totals_rows),
                        note_rows=list(parsed.note_rows), rows_above=list(parsed.rows_above),
                        merged_down=list(parsed.merged_down),
                        hidden_rows=list(parsed.hidden_rows),
                        hidden_rows_count=parsed.hidden_rows_count,
                        rounded=dict(parsed.rounded),
                        units={name: unit for name, unit in parsed.units.items() if unit != 1},
                        unit_note=(parsed.unit_note[:2] if parsed.unit_note is not None
                                   else None), **counts)


class _ImportRefused(Exception):
    """The file or a row has a problem and only a complete import was asked for."""


def _apply_rows(
    session: Session, kind: str, source: FileSource | None, reader: RowReader | None,
    parsed: Parsed, actor_id: int, now: datetime, zone: str, progress: Callable[[int, int], None] | None, *,
    valid_rows_only: bool,
) -> tuple[dict[str, int], ProblemList, list[Problem]]:
    """Read the file's rows and write them; how many were added, updated or unchanged, the
    problems, and the warnings of rows imported with a caveat.

    The rows stream from the file a batch at a time. Once a row has a problem and only a
    complete import was asked for, the rest is still checked (the report lists every
    problem) but no longer written: the transaction will be rolled back.
    """
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    if reader is None or source is None or parsed.file_problems:
        problems = ProblemList(reader.limits if reader is not None else default_limits())
        for problem in parsed.problems:
            problems.add(problem)
        if progress is not None:
            progress(0, 0)
        return counts, problems, []
    problems = reader.problems
    importer = IMPORTERS[kind](session, actor_id, set(parsed.columns), now, ZoneInfo(zone),
                               generated_usernames=parsed.generated_usernames)
    importer.complete_only = not valid_rows_only
    total = source.rows_total
    done = 0
    try:
        importer.start(source, reader)
        for outcome in importer.run(file_rows(source, reader), problems):
            done += 1
            if outcome is not None:
                counts[outcome] += 1
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress(done, total)
    except FileRefused as error:  # the file read differently the second time
        parsed.problems.append(Problem(None, "", "", error.message))
        problems.add(parsed.problems[-1])
        return counts, problems, []
    reader.finish()
    if not (problems and importer.complete_only):
        importer.finish()
    if progress is not None:
        progress(total, total)
    return counts, problems, importer.warnings


def file_rows(source: FileSource, reader: RowReader) -> Iterator[Row]:
    """The file's rows without problems, typed, as the file is read."""
    for number, record in source.records():
        if number <= source.shape.header_row:
            continue
        yield from reader.read(number, record)


def _record_run(
    session: Session, actor: User, kind: str, filename: str, sha256: str, parsed: Parsed,
    counts: dict[str, int], problems: list[Problem], problems_not_shown: int,
    valid_rows_only: bool, limits: UploadLimits, status: str, now: datetime,
    warnings: list[Problem] = (),
) -> ImportRun:
    done = sum(counts.values())
    run = ImportRun(kind=kind, filename=filename[:255], sha256=sha256, actor_id=actor.id,
                    status=status, rows_total=parsed.rows_total, rows_done=done,
                    skipped=parsed.rows_total - done, **counts,
                    report={"problems": [problem.as_dict() for problem in problems],
                            "problems_not_shown": problems_not_shown,
                            "ignored_columns": parsed.ignored_columns[:limits.max_problems],
                            "valid_rows_only": valid_rows_only,
                            "mapping": parsed.mapping,
                            # yuan per unit; 0.01 for a column in fen
                            "units": {name: unit if isinstance(unit, int) else float(unit)
                                      for name, unit in parsed.units.items() if unit != 1},
                            "generated_usernames": parsed.generated_usernames,
                            "totals_rows": [{"row": row, "word": word}
                                            for row, word in parsed.totals_rows],
                            "note_rows": [{"row": row, "text": text}
                                          for row, text in parsed.note_rows],
                            "rows_above": [{"row": row, "text": text}
                                           for row, text in parsed.rows_above],
                            "unit_note": (None if parsed.unit_note is None else
                                          {"row": parsed.unit_note[0],
                                           "text": parsed.unit_note[1]}),
                            "merged_down": list(parsed.merged_down),
                            "hidden_rows": {"ranges": [list(pair) for pair in parsed.hidden_rows],
                                            "count": parsed.hidden_rows_count},
                            "rounded": dict(parsed.rounded),
                            "warnings": [warning.as_dict()
                                         for warning in warnings[:limits.max_problems]]},
                    started_at=now, finished_at=now)
    session.add(run)
    session.flush()
    record_audit(session, actor, f"import.{status}", f"import_run:{run.id}", now,
                 after={"kind": kind, "filename": run.filename, "sha256": sha256,
                        "rows_total": run.rows_total, **counts, "skipped": run.skipped,
                        "problems": len(problems) + problems_not_shown})
    return run


def import_runs(session: Session, limit: int = 50) -> list[ImportRun]:
    """The latest imports, newest first by when they ran (then by id), as the list dates them."""
    return list(session.scalars(select(ImportRun)
                                .order_by(ImportRun.started_at.desc(), ImportRun.id.desc())
                                .limit(limit)))


def actor_names(session: Session, runs: Iterable[ImportRun | ImportMapping]) -> dict[int, str]:
    """Display names of whoever ran the imports (or saved the mappings) given."""
    ids = {actor for run in runs
           if (actor := getattr(run, "actor_id", None) or getattr(run, "saved_by_id", None))
           is not None}
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all())


# --- importers, one per kind ------------------------------------------------------------------

def set_fields(target: Any, values: dict[str, Any]) -> bool:
    """Set the attributes that differ; whether any did."""
    changed = False
    for name, value in values.items():
        if getattr(target, name) != value:
            setattr(target, name, value)
            changed = True
    return changed


def chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    values = list(values)
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


class Importer:
    """Writes one kind's rows. By default a whole file's rows are prepared and applied one at
    a time through the ORM (rows of these kinds depend on the rows before them); a kind with
    `batch_rows` streams instead, a batch at a time: in bulk statements (opportunities,
    forecasts), or through the ORM, letting each batch's objects go (accounts)."""

    batch_rows: int | None = None

    def __init__(self, session: Session, actor_id: int, columns: set[str], now: datetime,
                 zone: ZoneInfo, *, generated_usernames: bool = False) -> None:
        # Only a complete import was asked for: after a problem nothing more need be written.
        self.complete_only = True
        # Reps whose CRM rows this import adds, changes or removes: their stored track-record
        # snapshots are forgotten in the same transaction (bulk statements pass no ORM event).
        self.touched_reps: set[int] = set()
        # Values no account has as its id, by the ids (and external ids) of the accounts with
        # that name: exports that name the account (北京智联科技有限公司) rather than its id.
        self.accounts_named: dict[str, list[tuple[int, str]]] = {}
        # The first row to name each stored rep or account (by its id) that the file's rows
        # update: two rows whose ids differ only in leading zeros may name the same one.
        self.first_rows: dict[int, int] = {}
        self.session = session
        self.actor_id = actor_id
        self.columns = columns
        # The columns the file gave; a reps file without usernames has them made instead.
        self.given_columns = columns - {"username"} if generated_usernames else columns
        self.now = now
        self.zone = zone
        # The import's day in the department's time zone: a day that records what happened
        # is never after it (a day is after it exactly when its midnight is after `now`).
        self.today = now.astimezone(zone).date()
        self.instants: dict[date, datetime] = {}
        self.branches = list(session.scalars(select(Branch).order_by(Branch.id)))
        self.branch_cache: dict[str, Branch | None] = {}
        self.reps_by_external: dict[str, User] = {}
        self.reps_by_username: dict[str, User] = {}
        # Reps by their name (normalise: any width, case or spacing), for exports that name
        # the rep as 王伟 rather than by employee id: a name two reps share names neither.
        self.reps_by_name: dict[str, list[User]] = {}
        # Reps stored before this file by their employee id without leading zeros
        # (unpadded_id_key), for a file that writes 1234 for 001234 or the other way round.
        self.reps_by_unpadded: dict[str, list[User]] = {}
        self.unpadded_noted: set[str] = set()
        # Accounts stored before this file by their external id without leading zeros, as
        # (id, external id, name): read once, and only when a file names an account by an id
        # that no account has as written (`account_by_unpadded_id`).
        self.accounts_by_unpadded: dict[str, list[tuple[int, str, str]]] | None = None
        self.unpadded_accounts_noted: set[str] = set()
        self.warnings: list[Problem] = []
        for user in session.scalars(select(User).where(User.role == Role.REP)):
            self.remember_rep(user)
            if user.external_id:
                self.reps_by_unpadded.setdefault(unpadded_id_key(user.external_id), []).append(
                    user)

    def actor(self) -> User:
        return self.session.get(User, self.actor_id)

    def remember_rep(self, user: User) -> None:
        if user.external_id:
            self.reps_by_external[id_key(user.external_id)] = user
        self.reps_by_username[user.username.lower()] = user
        named = self.reps_by_name.setdefault(normalise(user.display_name), [])
        if user not in named:
            named.append(user)

    def find_rep(self, value: str) -> User | None:
        """The rep a file names by external id (id_key) or username, else by an id that
        differs from one rep's in leading zeros alone (rep_by_unpadded_id), else by a name
        only one rep has, if bidhub has one."""
        found = (self.reps_by_external.get(id_key(value))
                 or self.reps_by_username.get(value.lower()) or self.rep_by_unpadded_id(value))
        if found is None:
            named = self.reps_by_name.get(normalise(value), ())
            found = named[0] if len(named) == 1 else None
        return found

    def rep_by_employee_id(self, value: str) -> User | None:
        """The rep whose employee id `value` is (id_key), else rep_by_unpadded_id."""
        return self.reps_by_external.get(id_key(value)) or self.rep_by_unpadded_id(value)

    def rep_by_unpadded_id(self, value: str) -> User | None:
        """The one rep stored before this file whose employee id differs from `value` only in
        leading zeros (unpadded_id_key); None if none or several do."""
        alike = self.reps_by_unpadded.get(unpadded_id_key(value), ())
        return alike[0] if len(alike) == 1 else None

    def note_unpadded(self, row: Row, column: str, rep: User) -> None:
        """Warn, once per id, where the file named `rep` by an employee id that differs from
        the stored one in leading zeros."""
        value = str(row.values[column])
        if (rep.external_id is None or id_key(value) == id_key(rep.external_id)
                or value.lower() == rep.username.lower() or id_key(value) in self.unpadded_noted):
            return
        if unpadded_id_key(value) != unpadded_id_key(rep.external_id):
            return
        self.unpadded_noted.add(id_key(value))
        self.warnings.append(Problem(row.number, column, value, N_(
            "Read as %(name)s, employee id %(id)s: the ids differ only in leading zeros, which "
            "Excel drops when it opens a CSV.", name=rep.display_name, id=rep.external_id)))

    def account_by_unpadded_id(self, value: str) -> tuple[int, str, str] | None:
        """The one account stored before this file whose external id differs from `value`
        only in leading zeros (unpadded_id_key), as (id, external id, name); None if none or
        several do."""
        alike = self.unpadded_accounts().get(unpadded_id_key(value), ())
        return alike[0] if len(alike) == 1 else None

    def unpadded_accounts(self) -> dict[str, list[tuple[int, str, str]]]:
        """The stored accounts by unpadded_id_key, read the first time they are asked for."""
        if self.accounts_by_unpadded is None:
            self.accounts_by_unpadded = {}
            for found in self.session.execute(
                    select(Account.id, Account.external_id, Account.name)):
                self.accounts_by_unpadded.setdefault(unpadded_id_key(found.external_id),
                                                     []).append(tuple(found))
        return self.accounts_by_unpadded

    def note_unpadded_account(self, row: Row, column: str,
                              account: tuple[int, str, str]) -> None:
        """Warn, once per id, where the file named `account` by an external id that differs
        from the stored one in leading zeros."""
        value = str(row.values[column])
        if id_key(value) in self.unpadded_accounts_noted:
            return
        self.unpadded_accounts_noted.add(id_key(value))
        _account_id, external_id, name = account
        self.warnings.append(Problem(row.number, column, value, N_(
            "Read as %(name)s, account %(id)s: the ids differ only in leading zeros, which "
            "Excel drops when it opens a CSV.", name=name, id=external_id)))

    def run(self, rows: Iterable[Row], problems: ProblemList) -> Iterator[str | None]:
        """Each row's outcome (added, updated, unchanged; None for a row with a problem, noted
        in `problems`), a batch of rows at a time."""
        if self.batch_rows is None:
            yield from self.apply_batch(list(rows), problems)
            return
        iterator = iter(rows)
        while batch := list(itertools.islice(iterator, self.batch_rows)):
            yield from self.apply_batch(batch, problems)

    def apply_batch(self, rows: list[Row], problems: ProblemList) -> Iterator[str | None]:
        self.prepare(rows)
        for row in rows:
            try:
                yield self.apply(row)
            except RowProblem as problem:
                problems.add(problem.problem)
                yield None
        self.end_batch()

    def writing(self, problems: ProblemList) -> bool:
        """Whether rows are still written: not once a complete import has become impossible."""
        return not (problems and self.complete_only)

    def finish(self) -> None:
        """After the last row: forget the track-record snapshots of the reps touched."""
        self.session.flush()
        for part in chunks(sorted(self.touched_reps)):
            forget_track_record_snapshots(self.session, part)

    def start(self, source: FileSource, reader: RowReader) -> None:
        """Before the first row: whatever must be done for the file as a whole."""

    def prepare(self, rows: list[Row]) -> None:
        """Load what the rows refer to, in a few queries."""

    def end_batch(self) -> None:
        """After a batch's rows: write what they left for the batch as a whole."""

    def apply(self, row: Row) -> str:
        raise NotImplementedError

    def claim(self, row: Row, column: str, stored: User | Account | None) -> None:
        """Refuse a row naming the stored rep or account that an earlier row of the file
        already named: the later row would overwrite the earlier one. Nothing for None or a
        rep or account this file adds."""
        if stored is None or stored.id is None:
            return
        first = self.first_rows.setdefault(stored.id, row.number)
        if first != row.number:
            raise RowProblem(row, column, row.values[column], N_(
                "Row %(row)d names the same one: the ids differ only in leading zeros, which "
                "Excel drops; each %(key)s may appear only once.", row=first, key=column))

    def instant(self, day: date) -> datetime:
        """Midnight of a local calendar day, as an aware UTC instant."""
        found = self.instants.get(day)
        if found is None:
            found = self.instants[day] = datetime.combine(day, time(),
                                                          tzinfo=self.zone).astimezone(UTC)
        return found

    def refuse_if_after_today(self, row: Row, column: str, day: date, reason: Text) -> None:
        """A RowProblem on `column` when `day`, a day that records what happened (a sighting,
        a deal's opening or close, a stage reached), is after the import's: it has not yet
        come to pass."""
        if day > self.today:
            raise RowProblem(row, column, day.isoformat(), reason)

    def branch(self, row: Row) -> Branch:
        value = row.values["branch"]
        if value not in self.branch_cache:
            self.branch_cache[value] = (match_branch(self.branches, value)
                                        or match_branch_in_path(self.branches, value))
        branch = self.branch_cache[value]
        if branch is None:
            known = ", ".join(sorted(branch.code for branch in self.branches))
            raise RowProblem(row, "branch", value, N_(
                "No branch with this code or name; known: %(known)s.",
                known=known or N_("none")))
        return branch

    def open_branch(self, row: Row, current_branch_id: int | None) -> Branch:
        """The row's branch; a deactivated one only for what is already in it."""
        branch = self.branch(row)
        if not branch.is_active and branch.id != current_branch_id:
            raise RowProblem(row, "branch", row.values["branch"], N_(
                "The branch %(branch)s is deactivated; it takes no new reps, accounts or "
                "rounds.", branch=branch.name))
        return branch

    def rep(self, row: Row, column: str) -> User:
        value = row.values[column]
        rep = self.find_rep(value)
        if rep is not None:
            self.note_unpadded(row, column, rep)
        else:
            named = self.reps_by_name.get(normalise(value), ())
            if len(named) > 1:
                raise RowProblem(row, column, value, N_(
                    "%(count)d reps are named %(name)s (employee ids %(ids)s): write the "
                    "rep's employee id or username instead.", count=len(named), name=value,
                    ids=Joined(sorted(rep.external_id or rep.username for rep in named),
                               COMMA)))
            raise RowProblem(row, column, value,
                             N_("No rep with this employee id, username or name."))
        return rep

    def load_accounts(self, external_ids: Iterable[str], *options: Any) -> dict[str, Account]:
        """The accounts the ids name, by id_key."""
        found: dict[str, Account] = {}
        for part in chunks(set(external_ids)):
            query = select(Account).where(matching_ids(self.session, Account.external_id, part)).options(
                *options)
            found.update(by_id_key(self.session.scalars(query).unique(),
                                   lambda account: account.external_id, part))
        return found

    def remember_account_names(self, values: Iterable[str]) -> None:
        """Look values no account has as its id up as account names, exactly as written, each
        once per import (`accounts_named`)."""
        unnamed = [value for value in dict.fromkeys(values) if value not in self.accounts_named]
        for part in chunks(unnamed):
            for value in part:
                self.accounts_named[value] = []
            for name, account_id, external_id in self.session.execute(
                    select(Account.name, Account.id, Account.external_id)
                    .where(one_of(self.session, Account.name, part))
                    .order_by(Account.external_id)):
                self.accounts_named[name].append((account_id, external_id or ""))

    def account_named(self, row: Row, column: str = "account") -> int:
        """The account whose name a row gives in place of its id, if only one account has it
        (`remember_account_names` looked it up)."""
        value = row.values[column]
        named = self.accounts_named.get(value, [])
        if len(named) == 1:
            return named[0][0]
        if named:
            raise RowProblem(row, column, value, N_(
                "%(count)d accounts are named %(name)s (external ids %(ids)s): write the "
                "account's external id instead.", count=len(named), name=value,
                ids=Joined([external_id for _id, external_id in named], COMMA)))
        raise RowProblem(row, column, value, N_("No account with this external id or name."))

    def optional(self, column: str, fields: dict[str, Any], value: Any,
                 name: str | None = None) -> None:
        """Set a field from an optional column only when the file has that column."""
        if column in self.columns:
            fields[name or column] = value


class RepImporter(Importer):
    def prepare(self, rows: list[Row]) -> None:
        self.users_by_username = {user.username.lower(): user
                                  for user in self.session.scalars(select(User))}
        self.password_hash: str | None = None
        # Reps the file marks as left have their awards not yet in force sent back to decision
        # (`finish`), as the user form does: their rounds, then their rows, are locked before
        # the rows are written, in the order every use case locks in.
        named = (self.rep_by_employee_id(row.values["external_id"])
                 or self.users_by_username.get(str(row.values.get("username") or "").lower())
                 for row in rows if row.values.get("status") == RepStatus.LEFT)
        self.departing_rounds = lock_departing(
            self.session, [user.id for user in named if user is not None])
        self.departed: list[User] = []
        # Each user the file adds or changes, with what it was before (None: added): audited
        # as the users page audits its own changes, one entry per user.
        self.audited: list[tuple[User, dict | None]] = []

    def finish(self) -> None:
        super().finish()
        actor = self.actor()
        for user, before in self.audited:
            if before is None:
                record_audit(self.session, actor, "user.created", f"user:{user.id}", self.now,
                             after=user_snapshot(user))
            else:
                record_audit(self.session, actor, "user.updated", f"user:{user.id}", self.now,
                             before=before, after=user_snapshot(user))
        for user in self.departed:
            send_back_awards(self.session, actor, user, self.departing_rounds, self.now,
                             refuse_unlocked=False)

    def judge_hire_date(self, row: Row, user: User | None, hired_on: date | None) -> None:
        """A new or changed hire date, by the users page's rule (users.check_hire_date); the
        one bidhub already has for the rep is not judged again, as the user form does not."""
        if hired_on is None or (user is not None and hired_on == user.hired_on):
            return
        refusal = hire_date_refusal(hired_on, self.now, self.zone.key)
        if refusal is not None:
            raise RowProblem(row, "hire_date", hired_on.isoformat(), refusal)

    def apply(self, row: Row) -> str:
        values = row.values
        generated = "username" not in self.given_columns
        user = self.rep_by_employee_id(values["external_id"])
        if user is not None and id_key(values["external_id"]) != id_key(user.external_id):
            # Told apart by leading zeros alone: the same rep only under the same username (a
            # file without usernames: the same name).
            if (normalise(values["name"]) == normalise(user.display_name) if generated
                    else values["username"].lower() == user.username.lower()):
                self.note_unpadded(row, "external_id", user)
            else:
                self.warnings.append(Problem(row.number, "external_id", values["external_id"], N_(
                    "Read as a new rep: %(rep)s's employee id %(id)s differs from this one only "
                    "in leading zeros, which Excel drops, but the %(other)s differs. If they are "
                    "one person, correct the file and import it again.",
                    rep=user.display_name, id=user.external_id,
                    other=N_("name") if generated else N_("username"))))
                user = None
        self.claim(row, "external_id", user)
        if generated and user is not None:
            # A rep bidhub knows keeps the username it has; only new reps get one made.
            values = {**values, "username": user.username}
        username = values["username"].lower()
        holder = self.users_by_username.get(username)
        taken = N_("This username belongs to another user.")
        if generated:
            taken = N_("The username %(username)s, made from the employee id, belongs to "
                       "another user; give the file a username column.", username=username)
        if user is None and holder is not None:
            if holder.role != Role.REP or holder.external_id is not None:
                raise RowProblem(row, "username", values["username"], taken)
            user = holder  # a rep created by hand, now linked to the CRM
        elif holder is not None and holder is not user:
            raise RowProblem(row, "username", values["username"], taken)
        if user is not None and user.role != Role.REP:
            raise RowProblem(row, "external_id", values["external_id"], N_("Not a rep."))
        branch = self.open_branch(row, user.branch_id if user is not None else None)
        # A rep bidhub knows keeps the external id as stored, whatever its case in the file.
        external_id = (user.external_id if user is not None and user.external_id
                       else values["external_id"])
        fields = {"username": username, "display_name": values["name"],
                  "branch_id": branch.id, "external_id": external_id}
        self.optional("hire_date", fields, values.get("hire_date"), "hired_on")
        self.judge_hire_date(row, user, fields.get("hired_on"))
        self.optional("status", fields, values.get("status"))
        if user is None:
            if self.password_hash is None:
                # Nobody knows this password: imported reps sign in once an admin sets one.
                self.password_hash = hash_password(secrets.token_urlsafe(32))
            status = fields.get("status") or RepStatus.ACTIVE
            user = User(**{**fields, "status": status}, role=Role.REP,
                        password_hash=self.password_hash, is_active=status != RepStatus.LEFT,
                        session_token=new_session_token(), failed_login_count=0,
                        created_at=self.now)
            self.session.add(user)
            self.users_by_username[username] = user
            self.remember_rep(user)
            self.audited.append((user, None))
            return "added"
        previous_username, previous_status = user.username.lower(), user.status
        before = user_snapshot(user)
        changed = set_fields(user, fields)
        if user.status == RepStatus.LEFT and (previous_status != RepStatus.LEFT
                                              or user.is_active):
            self.departed.append(user)
        if user.status == RepStatus.LEFT and user.is_active:
            user.is_active = False
            user.session_token = new_session_token()  # their open sessions end now
            changed = True
        elif previous_status == RepStatus.LEFT and user.status != RepStatus.LEFT:
            # Back from having left (a re-hire, or a CRM record corrected): active again, as
            # leaving made them inactive. A rep an admin deactivated otherwise stays so.
            user.is_active = True
            user.session_token = new_session_token()
            changed = True
        if changed:
            self.touched_reps.add(user.id)
            self.remember_changed(user, previous_username)
            self.audited.append((user, before))
        return "updated" if changed else "unchanged"

    def remember_changed(self, user: User, previous_username: str) -> None:
        """Note a rep's changed row; a username given up is written at once, so that a later
        row may take it (one flush would write the reps in id order, perhaps the taker
        first, and the database would refuse the name held twice)."""
        if user.username.lower() != previous_username:
            self.session.flush()
        self.users_by_username.pop(previous_username, None)
        self.users_by_username[user.username.lower()] = user
        self.reps_by_username.pop(previous_username, None)
        self.remember_rep(user)


# New accounts whose first owners are filed in one go: enough that a flush and a pass along the
# chain serve many rows, few enough that the flush's own bookkeeping stays small in memory.
FIRST_OWNERS_AT_ONCE = 500
# Account rows read, compared and written together. A batch's accounts and contacts are let go
# once it is written, so that a file's size no longer decides the memory an import takes (a
# whole 65,000-row export held at once took most of a gigabyte).
ACCOUNT_BATCH_ROWS = 2_000


class AccountImporter(Importer):
    """Accounts with their contacts, sponsors and owners, a batch of rows at a time through
    the ORM: a row may transfer an account, which `change_owners` files and checks against
    capacity as any transfer."""

    batch_rows = ACCOUNT_BATCH_ROWS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # New accounts and their first owners, filed together (file_first_owners): at the end
        # of each batch, or sooner once FIRST_OWNERS_AT_ONCE wait.
        self.first_owners: list[tuple[Account, int]] = []
        self.changed_accounts: set[int] = set()
        # Per account of the batch, the reps bidhub took it from since the CRM's last word
        # (`taken_in_bidhub`); read in `prepare` when the file names owners.
        self.taken_in_bidhub: dict[int, dict[int, Any]] = {}
        # The batch's moves of accounts bidhub holds, judged together against capacity at
        # its end (`move_owners`), with the batch's problems to add theirs to.
        self.moves: list[tuple[Row, OwnerChange]] = []
        self.batch_problems: ProblemList | None = None

    def sponsor_fields(self, row: Row, account: Account | None, branch: Branch) -> dict:
        """The sponsor a row names: a person (username, employee id or name of an executive),
        or a title, which is the one executive holding it (a branch GM: of the account's
        branch) when there is exactly one, else the title alone, as older files gave it."""
        value = row.values.get("executive_sponsor")
        if not value:
            return {"executive_sponsor": None, "sponsor_id": None}
        if value in set(ExecutiveTitle):
            if account is not None and account.sponsor is not None and (
                    account.sponsor.executive_title == value):
                return {"executive_sponsor": value, "sponsor_id": account.sponsor_id}
            key = (value, branch.id if value == ExecutiveTitle.BRANCH_GENERAL_MANAGER else None)
            holders = self.title_holders.get(key, [])
            if len(holders) != 1:
                self.warnings.append(Problem(row.number, "executive_sponsor", value, N_(
                    "%(count)d executives hold this title, not one: the title is kept with no "
                    "sponsor person; designate the sponsor in bidhub.", count=len(holders))))
            return {"executive_sponsor": value,
                    "sponsor_id": holders[0].id if len(holders) == 1 else None}
        person = self.executives_by_name.get(value.lower())
        if person is None:
            raise RowProblem(row, "executive_sponsor", value, N_(
                "No executive with this username, employee id or name; or give a title "
                "(president, ka_vice_president, branch_general_manager)."))
        return {"executive_sponsor": person.executive_title, "sponsor_id": person.id}

    def prepare_sponsors(self) -> None:
        self.executives_by_name: dict[str, User] = {}
        self.title_holders: dict[tuple[str, int | None], list[User]] = {}
        for person in self.session.scalars(select(User).where(
                User.role == Role.EXECUTIVE, User.is_active).order_by(User.id)):
            for name in (person.username, person.external_id, person.display_name):
                if name:
                    self.executives_by_name.setdefault(name.lower(), person)
            branch_id = (person.branch_id
                         if person.executive_title == ExecutiveTitle.BRANCH_GENERAL_MANAGER
                         else None)
            self.title_holders.setdefault((person.executive_title, branch_id), []).append(person)

    def start(self, source: FileSource, reader: RowReader) -> None:
        """Lock every account the file names before any rep, in the order every ownership
        change locks (accounts, then reps), so that an import and a transfer never wait for
        each other in a circle: a later batch would otherwise lock its accounts after the reps
        of the batches before it. The file's ids are read in a pass of their own; PostgreSQL
        only, as SQLite's write transaction already excludes every other writer. An account
        whose id differs from one in the file only in leading zeros is locked too, as a row
        may name it so (`prepare`); the accounts are indexed so before any row is written."""
        self.unpadded_accounts()
        index = reader.positions.get("external_id")
        if index is None or not is_postgresql(self.session):
            return
        external_ids = {value for number, record in source.records()
                        if number > source.shape.header_row and index < len(record)
                        and (value := clean_cell(record[index]))}
        account_ids: set[int] = set()
        for part in chunks(external_ids):
            found = self.session.execute(select(Account.id, Account.external_id).where(
                matching_ids(self.session, Account.external_id, part))).all()
            account_ids.update(account_id for account_id, _ in found)
            matched = {id_key(external_id) for _, external_id in found}
            account_ids.update(unpadded[0] for value in part if id_key(value) not in matched
                               and (unpadded := self.account_by_unpadded_id(value)))
        for part in chunks(sorted(account_ids)):
            self.session.execute(select(Account.id).where(Account.id.in_(part))
                                 .order_by(Account.id).with_for_update())

    def prepare(self, rows: list[Row]) -> None:
        self.prepare_sponsors()
        self.accounts = self.load_accounts((row.values["external_id"] for row in rows),
                                           selectinload(Account.contacts))
        # A row whose id differs from a stored account's only in leading zeros (Excel drops
        # them when it opens a CSV) is that account if it gives the account's name; else it
        # is a new account, as before.
        unpadded: dict[int, set[str]] = {}
        for row in rows:
            key = id_key(row.values["external_id"])
            if key not in self.accounts and (found := self.account_by_unpadded_id(key)) \
                    and normalise(found[2]) == normalise(row.values["name"]):
                unpadded.setdefault(found[0], set()).add(key)
        for part in chunks(list(unpadded)):
            for account in self.session.scalars(select(Account).where(Account.id.in_(part))
                                                .options(selectinload(Account.contacts))):
                self.accounts.update(dict.fromkeys(unpadded[account.id], account))
        self.rules = rules_in_force(self.session)
        self.names = {rep.id: rep.display_name for rep in self.reps_by_username.values()}
        # Lock what this batch may move, in the order every ownership change locks: accounts,
        # then reps (the owners named and the accounts' owners now, in one sorted statement).
        # Across batches that order cannot hold, since a batch's accounts come after the reps
        # of the batches before it: the database may then end the import or a transfer that
        # waits for it in a circle, and import_file runs the import again.
        lock_accounts(self.session, [account.id for account in self.accounts.values()])
        if "owner" in self.columns:
            named = {str(row.values.get("owner") or "") for row in rows}
            lock_reps(self.session,
                      {rep.id for value in named if (rep := self.find_rep(value)) is not None}
                      | {account.owner_id for account in self.accounts.values()})
            self.taken_in_bidhub = taken_in_bidhub(
                self.session, [account.id for account in self.accounts.values()])

    def new_owner(self, row: Row, account: Account | None) -> int | None:
        current = account.owner_id if account else None
        if "owner" not in self.columns:
            return current
        if not row.values.get("owner"):
            if current is not None:
                raise RowProblem(row, "owner", "", N_(
                    "The account is held by %(rep)s; an import cannot take it away without "
                    "naming the new owner. Release it for bidding instead.",
                    rep=self.names.get(current, str(current))))
            return None
        rep = self.rep(row, "owner")
        if rep.id != current:
            taken = self.taken_in_bidhub.get(account.id, {}).get(rep.id) if account else None
            if taken is not None:
                # The CRM's export predates a move made in bidhub: the move stands.
                self.warnings.append(Problem(row.number, "owner", row.values["owner"], N_(
                    "bidhub moved this account from %(rep)s to %(to)s at %(decided_at)s (filing "
                    "%(seq)d); the file still names %(rep)s, as an export from before then "
                    "would, so the owner was kept. Update the owner in the CRM, or transfer the "
                    "account in bidhub if it must move.", rep=rep.display_name,
                    to=self.names.get(taken.to_rep_id, str(taken.to_rep_id)),
                    decided_at=taken.decided_at, seq=taken.seq)))
                return current
            if rep.status == RepStatus.LEFT:
                raise RowProblem(row, "owner", row.values["owner"], N_(
                    "%(rep)s has left and cannot receive accounts.", rep=rep.display_name))
            if not rep.is_active:
                raise RowProblem(row, "owner", row.values["owner"], N_(
                    "%(rep)s is deactivated and cannot receive accounts; reactivate them "
                    "under Users first.", rep=rep.display_name))
            listing = unfinished_listing_of(self.session, account.id) if account else None
            if listing is not None:
                raise RowProblem(row, "owner", row.values["owner"], listed_refusal(listing))
            if account is not None and (account.sponsor_id is not None
                                        or account.executive_sponsor):
                # As a transfer on the Transfer page: the sponsor confirms it (an admin may
                # stand in there, named in the filing); a file cannot.
                raise RowProblem(row, "owner", row.values["owner"], N_(
                    "%(account)s has an executive sponsor, so it moves to another rep only "
                    "when the sponsor confirms: transfer it on the Transfer page, where the "
                    "sponsor is asked, and the file will then agree.", account=account.name))
        return rep.id

    def apply(self, row: Row) -> str:
        values = row.values
        account = self.accounts.get(id_key(values["external_id"]))
        self.claim(row, "external_id", account)
        if account is not None and id_key(account.external_id) != id_key(values["external_id"]):
            self.note_unpadded_account(row, "external_id",
                                       (account.id, account.external_id, account.name))
        branch = self.open_branch(row, account.branch_id if account is not None else None)
        if account is not None and branch.id != account.branch_id:
            self.check_branch_change(row, account)
        owner_id = self.new_owner(row, account)
        sponsor = ({} if "executive_sponsor" not in self.columns
                   else self.sponsor_fields(row, account, branch))
        if account is not None and sponsor:
            self.check_sponsor_change(row, account, sponsor)
        previous_owner = account.owner_id if account is not None else None
        changed = False
        if account is not None and owner_id != account.owner_id:
            # Moving an account bidhub holds is a transfer, within capacity, before anything
            # else in the row changes.
            self.transfer(row, account, owner_id)
            changed = True
        fields = {"name": values["name"], "industry": values["industry"],
                  "ownership_type": values["ownership_type"], "branch_id": branch.id,
                  "annual_value_yuan": values["annual_value_yuan"]}
        fields.update(sponsor)
        if account is None:
            account = Account(external_id=values["external_id"], owner_id=None,
                              created_at=self.now, **{"executive_sponsor": None, **fields})
            self.session.add(account)
            self.accounts[id_key(account.external_id)] = account
            outcome, changed = "added", True
        else:
            outcome, changed = "updated", set_fields(account, fields) or changed
        for role in CONTACT_ROLES:
            name = values.get(role)
            if not name:
                continue
            existing = [contact for contact in account.contacts if contact.role == role]
            if not existing:
                account.contacts.append(Contact(role=role, name=name))
                changed = True
            elif existing[0].name != name:
                existing[0].name = name
                changed = True
        if outcome == "added" and owner_id is not None:
            # An account bidhub has never seen arrives with the CRM's owner as it is, even past
            # capacity: that is the state the company is in, and management releases accounts
            # from over-capacity reps. Its first owner is filed all the same, with other new
            # accounts (end_batch): one flush and one pass along the chain for them all, where
            # a flush and a filing each cost more than the rest of the row.
            self.first_owners.append((account, owner_id))
            if len(self.first_owners) >= FIRST_OWNERS_AT_ONCE:
                self.file_first_owners()
        if changed:
            self.touched_reps.update(rep_id for rep_id in (previous_owner, owner_id) if rep_id)
            if outcome == "updated":
                self.changed_accounts.add(account.id)
        if outcome == "added":
            return outcome
        return "updated" if changed else "unchanged"

    def check_branch_change(self, row: Row, account: Account) -> None:
        """An account on the market keeps its branch, as it keeps its owner: the branch is
        what a round of one branch lists and what bidders' eligibility was judged on."""
        listing = unfinished_listing_of(self.session, account.id)
        if listing is not None:
            raise RowProblem(row, "branch", row.values["branch"], listed_refusal(listing))

    def check_sponsor_change(self, row: Row, account: Account, sponsor: dict) -> None:
        """A sponsor changes only while no release or transfer of the account waits for the
        sponsor's answer, as on the sponsor page (`sponsors.designate_sponsor`): the answer
        is the designated sponsor's to give. Checked before the row writes anything."""
        if ((sponsor["sponsor_id"], sponsor["executive_sponsor"])
                != (account.sponsor_id, account.executive_sponsor)
                and waiting_for_sponsor(self.session, account.id)):
            raise RowProblem(row, "executive_sponsor", row.values.get("executive_sponsor"), N_(
                "A release or transfer of %(account)s waits for its sponsor's answer; have it "
                "answered first.", account=account.name))

    def finish(self) -> None:
        """The reps whose opportunities or incidents are on a changed account are touched too:
        their track records read the account's industry."""
        for part in chunks(sorted(self.changed_accounts)):
            for model in (Opportunity, AccountabilityIncident):
                self.touched_reps.update(self.session.scalars(
                    select(model.rep_id).where(model.account_id.in_(part)).distinct()))
        super().finish()

    def apply_batch(self, rows: list[Row], problems: ProblemList) -> Iterator[str | None]:
        self.batch_problems = problems
        return super().apply_batch(rows, problems)

    def transfer(self, row: Row, account: Account, to_rep_id: int) -> None:
        """Move an account bidhub holds, within the maximum of the rules in force, which its
        filing names, under the branch it is in before the row changes it.

        A complete import moves the batch's accounts together at its end (`move_owners`),
        so that a rep at the maximum may gain an account that the same file takes from them:
        what counts is where the file leaves each rep, whatever the order of its rows. An
        import of the valid rows only moves each row's account at once, so that a row
        refused writes nothing of itself."""
        change = OwnerChange(account.id, to_rep_id, filing={
            **self.filed, "rule_set_sha256": self.rules.sha256,
            "branch_id": account.branch_id})
        if self.complete_only:
            self.moves.append((row, change))
            return
        try:
            change_owners(self.session, [change], limit=self.rules.capacity_max, now=self.now,
                          accounts={account.id: account})
        except OwnerChangeRefused as error:
            raise RowProblem(row, "owner", row.values.get("owner"), error.message) from error

    def move_owners(self) -> None:
        """Carry out the batch's moves (`transfer`) in one change of owners, checked against
        capacity as a whole; each move it refuses is a problem on its row's owner column
        (checked even once the import has another problem, so the report names them all)."""
        moves, self.moves = self.moves, []
        problems = self.batch_problems
        if not moves or problems is None:
            return
        accounts = {account.id: account for account in self.accounts.values()}
        try:
            change_owners(self.session, [change for _, change in moves],
                          limit=self.rules.capacity_max, now=self.now,
                          accounts={change.account_id: accounts[change.account_id]
                                    for _, change in moves})
        except OwnerChangeRefused as error:
            rows = {change.account_id: row for row, change in moves}
            refused = [(rows[found.account_id], found.message)
                       for found in error.problems or () if found.account_id in rows]
            for row, message in refused or [(moves[0][0], error.message)]:
                problems.add(Problem(row.number, "owner", row.values.get("owner"), message))

    def end_batch(self) -> None:
        """Write the batch and let its accounts go: what later batches need is read again."""
        self.move_owners()
        self.file_first_owners()
        self.session.flush()
        # One account may be here under two ids that differ in leading zeros.
        for account in {id(account): account for account in self.accounts.values()}.values():
            for contact in account.contacts:
                self.session.expunge(contact)
            self.session.expunge(account)
        self.accounts = {}

    def file_first_owners(self) -> None:
        """File the first owners of the new accounts waiting (a first load: no capacity
        limit, so no row can be refused here)."""
        if not self.first_owners:
            return
        self.session.flush()  # the new accounts' ids
        change_owners(self.session, [OwnerChange(account.id, owner_id, filing=self.filed)
                                     for account, owner_id in self.first_owners],
                      limit=None, now=self.now,
                      accounts={account.id: account for account, _ in self.first_owners})
        self.first_owners = []

    @property
    def filed(self) -> dict:
        """What an import's filing says: a CRM import, by the admin importing."""
        return {"kind": FilingKind.CRM_IMPORT, "reason": CRM_IMPORT_REASON,
                "decided_by_id": self.actor_id}


def taken_in_bidhub(session: Session, account_ids: list[int]) -> dict[int, dict[int, Any]]:
    """Account -> rep -> the latest filing made in bidhub (an award or a transfer) that took
    the account from that rep, since the account's last filing by an import: a file that
    names such a rep as the owner was exported before bidhub moved the account."""
    taken: dict[int, dict[int, Any]] = {}
    for part in chunks(sorted(set(account_ids))):
        last_import = (select(Filing.account_id, func.max(Filing.seq).label("seq"))
                       .where(Filing.account_id.in_(part), Filing.kind == FilingKind.CRM_IMPORT)
                       .group_by(Filing.account_id).subquery())
        moves = session.execute(
            select(Filing.account_id, Filing.from_rep_id, Filing.to_rep_id, Filing.seq,
                   Filing.decided_at)
            .outerjoin(last_import, last_import.c.account_id == Filing.account_id)
            .where(Filing.account_id.in_(part), Filing.kind != FilingKind.CRM_IMPORT,
                   Filing.from_rep_id.is_not(None),
                   Filing.seq > func.coalesce(last_import.c.seq, 0))
            .order_by(Filing.seq))
        for move in moves:
            taken.setdefault(move.account_id, {})[move.from_rep_id] = move
    return taken


def matching_ids(session: Session, column: Any, external_ids: list[str]) -> Any:
    """Rows whose external id is one of these, in any case (by_id_key keeps the right ones).

    lower() of the column has an index; the plain comparison finds ids with letters that
    SQLite's lower() leaves as they are."""
    keys = sorted({id_key(external_id) for external_id in external_ids})
    return or_(one_of(session, column, list(external_ids)),
               one_of(session, func.lower(column), keys, column.type))


def one_of(session: Session, column: Any, values: list[Any], value_type: Any = None) -> Any:
    """`column IN values`; on PostgreSQL as `= ANY(array)`, one parameter instead of one per
    value: a batch's 2,000 ids were planned and bound as 4,000 parameters, which took the
    server three times as long as the lookup."""
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=ARRAY(value_type or column.type)))


def by_id_key(items: Iterable[Any], external_id_of: Callable[[Any], str],
              external_ids: Iterable[str]) -> dict[str, Any]:
    """The items by id_key of their external id, among the ids asked for. Where two stored
    ids differ only in case (stored before ids were compared so), the one written exactly as
    asked wins, else the first."""
    asked = set(external_ids)
    wanted = {id_key(external_id) for external_id in asked}
    found: dict[str, Any] = {}
    for item in items:
        external_id = external_id_of(item)
        key = id_key(external_id)
        if key in wanted and (key not in found or external_id in asked):
            found[key] = item
    return found


def as_stored(column: Any) -> Any:
    """A column to compare with: instants as stored, naive UTC, without turning each aware.

    Making every instant of a large table aware again costs more than comparing it."""
    if isinstance(column.type, UTCDateTime):
        return type_coerce(column, DateTime()).label(column.key)
    return column


def naive(value: Any) -> Any:
    """A value as as_stored reads it: an aware instant as naive UTC."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


# Rows compared and written together by the bulk importers: one query per table per batch
# loads what is stored, a few statements write what differs.
BATCH_ROWS = 2_000


class OpportunityImporter(Importer):
    """Opportunities and their stage history, compared with what is stored and written in
    bulk a batch at a time: a file imported again writes nothing."""

    batch_rows = BATCH_ROWS
    FIELDS = ("account_id", "rep_id", "amount_yuan", "stage", "opened_at", "closed_at")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known_accounts: dict[str, int] = {}

    def apply_batch(self, rows: list[Row], problems: ProblemList) -> Iterator[str | None]:
        accounts = self.account_ids({row.values["account"] for row in rows})
        stored = self.stored_opportunities([row.values["external_id"] for row in rows])
        histories = self.stored_histories([opportunity["id"] for opportunity in stored.values()])
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        new_histories: dict[str, list[tuple[str, datetime]]] = {}
        for row in rows:
            try:
                fields, history = self.fields(row, accounts)
            except RowProblem as problem:
                problems.add(problem.problem)
                yield None
                continue
            external_id = row.values["external_id"]
            key = id_key(external_id)
            current = stored.get(key)
            self.note_unknown_close(row, fields, history or (
                [] if current is None else histories.get(current["id"], [])), current)
            if current is None:
                new.append({"external_id": external_id, "closed_at": None, **fields})
                if history:
                    new_histories[key] = history
                self.touched_reps.add(fields["rep_id"])
                yield "added"
                continue
            differs = {name: value for name, value in fields.items()
                       if current[name] != naive(value)}
            if "stage" in differs and not history:
                self.note_stage_taken_back(row, current["stage"], fields["stage"])
            if history and [(stage, naive(at)) for stage, at in history] != histories.get(
                    current["id"], []):
                new_histories[key] = history
            if differs or key in new_histories:
                if differs:
                    changed.append({"id": current["id"], **differs})
                self.touched_reps.update({current["rep_id"], fields["rep_id"]})
                yield "updated"
            else:
                yield "unchanged"
        if self.writing(problems):
            self.write(new, changed, new_histories, stored)

    def fields(self, row: Row, accounts: dict[str, int],
               ) -> tuple[dict[str, Any], list[tuple[str, datetime]]]:
        values = row.values
        account_id = accounts.get(id_key(values["account"]))
        if account_id is None:
            unpadded = self.account_by_unpadded_id(values["account"])
            if unpadded is not None:
                self.note_unpadded_account(row, "account", unpadded)
                account_id = unpadded[0]
            else:
                account_id = self.account_named(row)
        rep = self.rep(row, "rep")
        opened, closed = values["opened"], values.get("closed")
        changes = values.get("stage_history") or ()
        if max(opened, closed or opened, *(day for _, day in changes)) > self.today:
            self.refuse_days_after_today(row, opened, closed, changes)
        fields = {"account_id": account_id, "rep_id": rep.id,
                  "amount_yuan": values["amount_yuan"], "stage": values["stage"],
                  "opened_at": self.instant(opened)}
        self.optional("closed", fields, self.instant(closed) if closed else None, "closed_at")
        history = [(stage, self.instant(day)) for stage, day in changes]
        return fields, history

    def note_unknown_close(self, row: Row, fields: dict[str, Any],
                           history: Sequence[tuple[str, Any]],
                           current: dict[str, Any] | None) -> None:
        """Warn of a won or lost deal that will be stored with no closed date and no stage
        history to tell when it closed: the win rate counts deals closed in its window, so it
        leaves this one out until a file gives the date."""
        if fields["stage"] not in CLOSED_STAGES or history:
            return
        closed = fields["closed_at"] if "closed_at" in fields else (
            None if current is None else current["closed_at"])
        if closed is None:
            self.warnings.append(Problem(row.number, "closed", row.values.get("closed"), N_(
                "A deal won or lost with no closed date and no stage history: when it closed "
                "is not known, so the win rate, which counts the deals closed in the last 12 "
                "months, leaves it out until a file gives its closed date.")))

    def note_stage_taken_back(self, row: Row, held: str, given: str) -> None:
        """Warn of a stored deal that a file without its stage history moves back a stage, or
        from one outcome to another (won to lost, closed to open): nothing records where it
        stood before, so the track record reads it as the file's stage throughout."""
        if held in CLOSED_STAGES or STAGE_ORDER.index(given) < STAGE_ORDER.index(held):
            self.warnings.append(Problem(row.number, "stage", STAGE_NAMES[given], N_(
                "bidhub held this deal as %(held)s, and the file makes it %(given)s with no "
                "stage history: nothing records that it was %(held)s, so the track record "
                "reads it as %(given)s throughout. A 阶段历史 column keeps the change.",
                held=STAGES_NAMED[held], given=STAGES_NAMED[given])))

    def refuse_days_after_today(self, row: Row, opened: date, closed: date | None,
                                changes: Sequence[tuple[str, date]]) -> None:
        """The RowProblem of the first of an opportunity's days after the import's."""
        self.refuse_if_after_today(row, "opened", opened,
                                   N_("The opened date cannot be in the future."))
        if closed is not None:
            self.refuse_if_after_today(row, "closed", closed,
                                       N_("The closed date cannot be in the future."))
        for _, day in changes:
            self.refuse_if_after_today(row, "stage_history", day,
                                       N_("A stage change cannot be in the future."))

    def account_ids(self, external_ids: Iterable[str]) -> dict[str, int]:
        """Account ids by id_key, remembered across batches (this import adds none); the values
        no account has as its id are looked up as names (`accounts_named`)."""
        known = self.known_accounts
        missing = [external_id for external_id in external_ids
                   if id_key(external_id) not in known]
        for part in chunks(missing):
            found = self.session.execute(select(Account.external_id, Account.id).where(
                matching_ids(self.session, Account.external_id, part))).all()
            known.update({key: account.id for key, account in by_id_key(
                found, lambda account: account.external_id, part).items()})
        self.remember_account_names(value for value in missing if id_key(value) not in known)
        return known

    def stored_opportunities(self, external_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored opportunities by id_key, their instants naive UTC (see naive)."""
        columns = [as_stored(getattr(Opportunity, name))
                   for name in ("id", "external_id", *self.FIELDS)]
        found: dict[str, dict[str, Any]] = {}
        for part in chunks(external_ids):
            rows = [dict(stored) for stored in self.session.execute(select(*columns).where(
                matching_ids(self.session, Opportunity.external_id, part))).mappings()]
            found.update(by_id_key(rows, lambda stored: stored["external_id"], part))
        return found

    def stored_histories(self, ids: list[int]) -> dict[int, list[tuple[str, datetime]]]:
        """Each opportunity's stage changes in the order they were written (the file's), their
        instants naive UTC."""
        histories: dict[int, list[tuple[str, datetime]]] = {}
        for part in chunks(ids):
            query = (select(OpportunityStageChange.opportunity_id, OpportunityStageChange.stage,
                            as_stored(OpportunityStageChange.changed_at))
                     .where(one_of(self.session, OpportunityStageChange.opportunity_id, part))
                     .order_by(OpportunityStageChange.opportunity_id,
                               OpportunityStageChange.changed_at, OpportunityStageChange.id))
            for opportunity_id, stage, changed_at in self.session.execute(query):
                histories.setdefault(opportunity_id, []).append((stage, changed_at))
        return histories

    def write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]],
              new_histories: dict[str, list[tuple[str, datetime]]],
              stored: dict[str, dict[str, Any]]) -> None:
        # Stored and new opportunities' ids, by id_key (as stored and new_histories are keyed).
        ids = {key: current["id"] for key, current in stored.items()}
        if changed:
            self.session.execute(update(Opportunity), changed)
        # Core statements on the tables: the ORM's bulk path would splice the RETURNING rows
        # of every batch of statements together again and again.
        table = Opportunity.__table__
        if new:
            ids.update((id_key(external_id), opportunity_id) for external_id, opportunity_id
                       in self.session.execute(
                           insert(table).returning(table.c.external_id, table.c.id), new).all())
        replaced = [ids[key] for key in new_histories if key in stored]
        for part in chunks(replaced):
            self.session.execute(delete(OpportunityStageChange).where(
                one_of(self.session, OpportunityStageChange.opportunity_id, part)))
        changes = [{"opportunity_id": ids[key], "stage": stage, "changed_at": at}
                   for key, history in new_histories.items() for stage, at in history]
        if changes:
            self.session.execute(insert(OpportunityStageChange.__table__), changes)


class ForecastImporter(Importer):
    """Monthly forecasts by rep and month, compared and written in bulk a batch at a time."""

    batch_rows = BATCH_ROWS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: dict[tuple[int, date], int] = {}

    def apply_batch(self, rows: list[Row], problems: ProblemList) -> Iterator[str | None]:
        stored = self.stored_forecasts(rows)
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        for row in rows:
            try:
                key, fields = self.fields(row)
            except RowProblem as problem:
                problems.add(problem.problem)
                yield None
                continue
            current = stored.get(key)
            if current is None:
                added = {"rep_id": key[0], "month": key[1], "actual_yuan": None, **fields}
                added["actual_known_at"] = None if added["actual_yuan"] is None else self.now
                new.append(added)
                self.touched_reps.add(key[0])
                yield "added"
                continue
            differs = {name: value for name, value in fields.items() if current[name] != value}
            if differs:
                # An actual that was not known before is known from this import on; a
                # corrected one keeps the moment it first became known.
                if (differs.get("actual_yuan") is not None and current["actual_yuan"] is None
                        and current["actual_known_at"] is None):
                    differs["actual_known_at"] = self.now
                # An actual the file takes back is unknown again, and so is when it was known.
                if "actual_yuan" in differs and differs["actual_yuan"] is None:
                    differs["actual_known_at"] = None
                    self.warnings.append(Problem(row.number, "actual_yuan", "", N_(
                        "The file leaves the actual blank: the actual of %(amount)s yuan "
                        "bidhub held for %(month)s is cleared, and forecast accuracy and "
                        "revenue attainment no longer count this month.",
                        amount=f"{current['actual_yuan']:,}", month=f"{key[1]:%Y-%m}")))
                changed.append({"id": current["id"], **differs})
                self.touched_reps.add(key[0])
                yield "updated"
            else:
                yield "unchanged"
        if self.writing(problems):
            if changed:
                self.session.execute(update(MonthlyForecast), changed)
            if new:
                self.session.execute(insert(MonthlyForecast.__table__), new)

    def fields(self, row: Row) -> tuple[tuple[int, date], dict[str, Any]]:
        values = row.values
        rep = self.rep(row, "rep")
        key = (rep.id, values["month"])
        if key in self.seen:
            raise RowProblem(row, "rep + month", f"{values['rep']}, {values['month']:%Y-%m}",
                             N_("Also in row %(row)d; each %(key)s may appear only once.",
                                row=self.seen[key], key="rep + month"))
        self.seen[key] = row.number
        fields = {"forecast_yuan": values["forecast_yuan"]}
        actual = values.get("actual_yuan")
        if actual is not None and values["month"] > self.today:
            raise RowProblem(row, "actual_yuan", str(actual),
                             N_("A month not yet begun has no actual."))
        self.optional("actual_yuan", fields, actual)
        return key, fields

    def stored_forecasts(self, rows: list[Row]) -> dict[tuple[int, date], dict[str, Any]]:
        reps = {rep.id for row in rows if (rep := self.find_rep(row.values["rep"])) is not None}
        months = sorted({row.values["month"] for row in rows})
        found: dict[tuple[int, date], dict[str, Any]] = {}
        for part in chunks(sorted(reps)):
            query = select(MonthlyForecast.id, MonthlyForecast.rep_id, MonthlyForecast.month,
                           MonthlyForecast.forecast_yuan, MonthlyForecast.actual_yuan,
                           MonthlyForecast.actual_known_at).where(
                MonthlyForecast.rep_id.in_(part), MonthlyForecast.month.in_(months))
            for stored in self.session.execute(query).mappings():
                found[(stored["rep_id"], stored["month"])] = dict(stored)
        return found


class IncidentImporter(Importer):
    """Incidents as the form logs them: only for accounts with no won deal in the policy's
    window, each with a due date counted from the sighting."""

    def prepare(self, rows: list[Row]) -> None:
        values = [row.values["account"] for row in rows]
        self.accounts = self.load_accounts(values)
        unmatched = [value for value in values if id_key(value) not in self.accounts]
        self.unpadded = {id_key(value): found for value in unmatched
                         if (found := self.account_by_unpadded_id(value)) is not None}
        self.remember_account_names(value for value in unmatched
                                    if id_key(value) not in self.unpadded)
        self.accounts_by_id = {account.id: account for account in self.accounts.values()}
        named = {found[0][0] for found in self.accounts_named.values() if len(found) == 1}
        named.update(found[0] for found in self.unpadded.values())
        for part in chunks(named - set(self.accounts_by_id)):
            self.accounts_by_id.update((account.id, account) for account in self.session.scalars(
                select(Account).where(Account.id.in_(part))))
        self.policy = accountability_policy()
        self.won_deals = recent_won_deals(self.session, list(self.accounts_by_id), self.now,
                                          self.policy, self.zone)
        self.transfers = filed_transfers(self.session, list(self.accounts_by_id))
        self.incidents: dict[str, AccountabilityIncident] = {}  # by id_key
        self.added: list[AccountabilityIncident] = []
        for part in chunks({row.values["external_id"] for row in rows}):
            query = select(AccountabilityIncident).where(
                matching_ids(self.session, AccountabilityIncident.external_id, part))
            self.incidents.update(by_id_key(self.session.scalars(query).unique(),
                                            lambda incident: incident.external_id, part))

    def apply(self, row: Row) -> str:
        values = row.values
        account = self.accounts.get(id_key(values["account"]))
        if account is None and (unpadded := self.unpadded.get(id_key(values["account"]))):
            self.note_unpadded_account(row, "account", unpadded)
            account = self.accounts_by_id[unpadded[0]]
        elif account is None:
            account = self.accounts_by_id[self.account_named(row)]
        rep = self.rep(row, "rep")
        deal = self.won_deals.get(account.id)
        # The rule is about logging: an incident already in bidhub may still be updated.
        if deal is not None and id_key(values["external_id"]) not in self.incidents:
            raise RowProblem(row, "account", values["account"],
                             won_deal_refusal(account, deal, self.policy, self.zone))
        self.refuse_if_after_today(row, "seen", values["seen"],
                                   N_("The sighting cannot be in the future."))
        seen_at = self.instant(values["seen"])
        incident = self.incidents.get(id_key(values["external_id"]))
        # Like the won deal's rule, about logging: an incident already in bidhub is checked
        # again only when the file gives it another account, rep or day.
        if incident is None or (incident.account_id, incident.rep_id, naive(incident.seen_at)) \
                != (account.id, rep.id, naive(seen_at)):
            self.refuse_unless_holder(row, account, rep, values["seen"])
        fields = {"account_id": account.id, "rep_id": rep.id,
                  "competitor_site": values["competitor_site"], "seen_at": seen_at,
                  "ad_type": values["ad_type"],
                  "explanation_due_at": explanation_due(seen_at, self.policy)}
        self.optional("page_area", fields, values.get("page_area"))
        # Like the won deal's rule, this one is about logging: an incident already in bidhub
        # (recorded before only the handbook's places were taken) may still be updated.
        if (fields.get("page_area") == PageArea.OTHER
                and id_key(values["external_id"]) not in self.incidents):
            raise RowProblem(row, "page_area", values.get("page_area"), UNWATCHED_PAGE_AREA)
        if "evidence_url" in self.columns:
            try:
                fields["evidence_url"] = checked_evidence_url(values.get("evidence_url") or "")
            except InvalidRequest as error:
                raise RowProblem(row, "evidence_url", values.get("evidence_url"),
                                 error.message) from error
        self.optional("status", fields, values.get("status"))
        self.optional("explanation", fields, values.get("explanation"))
        if incident is None:
            incident = AccountabilityIncident(
                external_id=values["external_id"], logged_by_id=self.actor_id,
                **{"status": "open", "explanation": "", "page_area": "home_page",
                   "evidence_url": "", **fields})
            self.session.add(incident)
            self.incidents[id_key(incident.external_id)] = incident
            self.added.append(incident)
            self.touched_reps.add(rep.id)
            return "added"
        self.keep_later_steps(row, incident, fields)
        previous_rep, previous_status = incident.rep_id, incident.status
        if not set_fields(incident, fields):
            return "unchanged"
        dated_status_change(incident, previous_status, self.now)
        self.touched_reps.update({previous_rep, rep.id})
        return "updated"

    def refuse_unless_holder(self, row: Row, account: Account, rep: User, seen: date) -> None:
        """A RowProblem on the rep unless the rep held the account at some time on the day it
        was seen (the department's day): an incident is the explanation the holder owes, and
        it counts against the rep's track record, as the accountability page logs it."""
        start = self.instant(seen)
        end = self.instant(date.fromordinal(seen.toordinal() + 1))
        holders = holders_during(self.transfers.get(account.id, []), account.owner_id,
                                 naive(start), naive(end))
        if rep.id in holders:
            return
        names = dict(self.session.execute(
            select(User.id, User.display_name).where(User.id.in_(holders or [0]))).all())
        raise RowProblem(row, "rep", row.values["rep"], N_(
            "%(rep)s did not hold %(account)s on %(seen_on)s; an incident is logged against "
            "the rep who held the account when it was seen (that day: %(holders)s).",
            rep=rep.display_name, account=account.name, seen_on=seen.isoformat(),
            holders=Joined(sorted(names.values()), COMMA) if names else N_("nobody")))

    def finish(self) -> None:
        """The rep of each incident the file brings that waits for their explanation is told,
        as one logged on the accountability page is (notify keeps one notice per incident)."""
        super().finish()
        for incident in self.added:
            if incident.status == IncidentStatus.OPEN:
                notify(self.session, "incident_logged", incident, self.now)


    def keep_later_steps(self, row: Row, incident: AccountabilityIncident,
                         fields: dict[str, Any]) -> None:
        """Leave out of `fields` what would take an incident back: a status at an earlier step
        than bidhub holds (an older export: the rep explained, or KA management decided, in
        bidhub since), or another decision than the one KA management made in bidhub; and a
        blank explanation where bidhub holds one. A status left out is a warning."""
        given = fields.get("status")
        if given is not None and given != incident.status:
            held = IncidentStatus(incident.status)
            decided_here = (INCIDENT_STEPS[held] == INCIDENT_STEPS[IncidentStatus.UPHELD]
                            and incident.resolved_by_id is not None)
            if INCIDENT_STEPS[IncidentStatus(given)] < INCIDENT_STEPS[held] or decided_here:
                del fields["status"]
                self.warnings.append(Problem(row.number, "status", row.values.get("status"), N_(
                    "bidhub holds this incident as %(held)s, which the file's %(given)s would "
                    "undo: its status was kept. Change it on the accountability page if it must "
                    "change.", held=INCIDENT_STATUS_NAMES[held],
                    given=INCIDENT_STATUS_NAMES[IncidentStatus(given)])))
        if "explanation" in fields and not fields["explanation"] and incident.explanation:
            del fields["explanation"]


# A filed transfer as the incidents' check reads it: (from rep, to rep, when, naive UTC).
Transfer = tuple[int | None, int, datetime]


def filed_transfers(session: Session, account_ids: list[int]) -> dict[int, list[Transfer]]:
    """Each account's filed transfers, oldest first: who held it when."""
    found: dict[int, list[Transfer]] = {}
    for part in chunks(account_ids):
        for account_id, from_rep, to_rep, decided_at in session.execute(
                select(Filing.account_id, Filing.from_rep_id, Filing.to_rep_id,
                       as_stored(Filing.decided_at))
                .where(Filing.account_id.in_(part)).order_by(Filing.seq)):
            found.setdefault(account_id, []).append((from_rep, to_rep, naive(decided_at)))
    return found


def holders_during(transfers: list[Transfer], owner_id: int | None, start: datetime,
                   end: datetime) -> set[int]:
    """The reps who held an account at some moment from `start` until `end` (naive UTC):
    `transfers` its filed transfers, oldest first (every change of holder is filed), and
    `owner_id` its holder now. Before its first filing the account was held by that filing's
    giver, or, for the filing that records its first holder, by that holder."""
    earlier = [transfer for transfer in transfers if transfer[2] < start]
    if earlier:
        held_then = earlier[-1][1]
    elif transfers:
        first_from, first_to, _ = transfers[0]
        held_then = first_to if first_from is None else first_from
    else:
        held_then = owner_id
    holders = {to_rep for _, to_rep, at in transfers if start <= at < end}
    if held_then is not None:
        holders.add(held_then)
    return holders


# How far an incident has come: an import never takes it back to an earlier step.
INCIDENT_STEPS = {IncidentStatus.OPEN: 0, IncidentStatus.EXPLAINED: 1,
                  IncidentStatus.ACCEPTED: 2, IncidentStatus.UPHELD: 2}
# The statuses as the accountability page names them.
INCIDENT_STATUS_NAMES = {IncidentStatus.OPEN: N_("Awaiting explanation"),
                         IncidentStatus.EXPLAINED: N_("Explained"),
                         IncidentStatus.ACCEPTED: N_("Explanation accepted"),
                         IncidentStatus.UPHELD: N_("Upheld")}


def dated_status_change(incident: AccountabilityIncident, previous: str, now: datetime) -> None:
    """A status the CRM changed dates from this import, as the app dates its own changes: what
    bidhub held before (open, or explained) stands until now in the track record."""
    if incident.status == previous:
        return
    if (previous == IncidentStatus.OPEN and incident.explained_at is None
            and (incident.status != IncidentStatus.UPHELD or incident.explanation)):
        incident.explained_at = now
    if incident.status in (IncidentStatus.ACCEPTED, IncidentStatus.UPHELD):
        incident.resolved_at = now


class BranchImporter(Importer):
    """Creates branches and renames them, audited as the branch pages are; matched by code."""

    def apply(self, row: Row) -> str:
        values = row.values
        code = values["code"].strip()
        branch = next((branch for branch in self.branches
                       if branch_key(branch.code) == branch_key(code)), None)
        if branch is None and not CODE_PATTERN.fullmatch(code):
            raise RowProblem(row, "code", code, N_(
                "A code uses only letters A-Z, digits, '-' and '_'."))
        fields = {"name": values["name"].strip()}
        self.optional("name_zh", fields, (values.get("name_zh") or "").strip() or None)
        others = [other for other in self.branches if other is not branch]
        checked = {**({"code": code} if branch is None else {}), **fields}
        for name, value in checked.items():
            self.check_distinct(row, others, name, value)
        if branch is None:
            branch = Branch(code=code, is_active=True, **{"name_zh": None, **fields})
            self.session.add(branch)
            self.session.flush()
            self.branches.append(branch)
            record_audit(self.session, self.actor(), "branch.created", f"branch:{branch.id}",
                         self.now, after=branch_snapshot(branch))
            return "added"
        before = branch_snapshot(branch)
        if not set_fields(branch, fields):
            return "unchanged"
        record_audit(self.session, self.actor(), "branch.renamed", f"branch:{branch.id}",
                     self.now, before=before, after=branch_snapshot(branch))
        return "updated"

    def check_distinct(self, row: Row, others: list[Branch], column: str,
                       value: str | None) -> None:
        """Files name a branch by code, name or Chinese name: each must mean one branch."""
        if not value:
            return
        key = branch_key(value)
        for other in others:
            if key in {branch_key(other.code), branch_key(other.name),
                       branch_key(other.name_zh)}:
                raise RowProblem(row, column, value, N_(
                    "The branch %(code)s is already known as '%(value)s'; files could not "
                    "tell the two apart.", code=other.code, value=value))

IMPORTERS: dict[str, type[Importer]] = {
    ImportKind.BRANCHES: BranchImporter,
    ImportKind.REPS: RepImporter,
    ImportKind.ACCOUNTS: AccountImporter,
    ImportKind.OPPORTUNITIES: OpportunityImporter,
    ImportKind.FORECASTS: ForecastImporter,
    ImportKind.INCIDENTS: IncidentImporter,
}
