"""Excel 97-2003 workbooks (.xls): what many CRMs, and WPS, still export.

xlrd reads the file; bidhub first checks the workbook's records against the upload limits, as
it scans an .xlsx before openpyxl sees it. xlrd keeps a whole sheet in memory, a list per row
as long as the row's last cell, so the check counts the cells and finds the rightmost column
(and the number of distinct strings) by reading only the records' headers, before any sheet is
built. A workbook protected by a password cannot be read and is refused saying so.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator

from bidhub.domain.imports import (
    MAX_MERGED_RANGES,
    CoveredCells,
    FileRefused,
    HiddenRow,
    ShownNumber,
    UploadLimits,
    cell_text,
    default_limits,
    shown_number,
    too_large,
    too_long_cell,
    too_many_cells,
    too_wide,
)
from bidhub.domain.text import N_

# Every OLE2 compound file starts so: .xls, but also an .xlsx saved with a password, and .doc.
OLE2_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
NOT_AN_XLS = N_("The file is not a readable Excel workbook (.xls). Save it again from Excel, "
                "or export CSV.")
PROTECTED = N_("The workbook is protected by a password, so it cannot be read. Save a copy "
               "without the password (or export CSV), and import that.")

# BIFF8 records (the workbook stream is a sequence of: type, length, data).
FILEPASS = 0x002F  # the workbook is encrypted
BOF = 0x0809  # the start of the workbook's globals, then of each sheet
SST = 0x00FC  # the shared strings: total count, then the distinct count
EOF = 0x000A  # the end of the globals, or of a sheet
MERGEDCELLS = 0x00E5  # a sheet's merged ranges: a count, then each range
RANGE = struct.Struct("<HHHH")  # a merged range: first row, last row, first column, last column
# A row's height and options: its number (from 0) first, its options at byte 12.
ROW = 0x0208
ROW_NUMBER = struct.Struct("<H")
ROW_OPTIONS_AT = 12
ROW_HIDDEN = 0x0020  # fDyZero: the row is hidden
# Records holding one cell, each starting with its row and column.
ONE_CELL = frozenset({0x0203, 0x00FD, 0x0204, 0x027E, 0x0006, 0x0205, 0x00D6})
# Records holding a run of cells in one row: row, first column, ..., last column.
CELL_RUNS = frozenset({0x00BD})  # MULRK; MULBLANK (0x00BE) is formatting, which is not read
HEADER = struct.Struct("<HH")
ROW_COLUMN = struct.Struct("<HH")
LAST_COLUMN = struct.Struct("<H")
# Number formats, read as xlrd reads them only with the cells' formatting (which is not read).
BIFF8 = 0x0600  # the version a BOF record gives for Excel 97 and later
FORMAT = 0x041E  # a number format: its number, then its code as a BIFF8 string
XF = 0x00E0  # a cell format, numbered in the order the globals give them: font, number format
FIRST_CUSTOM_FORMAT = 164  # below: Excel's built-in formats, none of which pads
NUMBER_CELLS = frozenset({0x0203, 0x027E, 0x0006})  # NUMBER, RK, FORMULA: row, column, XF
MULRK = 0x00BD  # a run of numbers in one row: row, first column, (XF, number) each, last column
ROW_COLUMN_XF = struct.Struct("<HHH")
FORMAT_HEAD = struct.Struct("<HHB")  # its number, its length in characters, the string's flags
XF_AT_MULRK = struct.Struct("<H")
MULRK_CELL_BYTES = 6


def is_xls(data: bytes) -> bool:
    return data.startswith(OLE2_SIGNATURE)


def workbook_stream(data: bytes) -> bytes:
    """The workbook stream of the compound file; FileRefused when it holds none."""
    from xlrd import compdoc

    try:
        document = compdoc.CompDoc(data, logfile=io.StringIO())
        for name in ("Workbook", "Book"):
            memory, base, length = document.locate_named_stream(name)
            if memory:
                return bytes(memory[base:base + length])
    except Exception as error:  # xlrd raises its own errors and struct's for a broken file
        if "encrypt" in str(error).lower():  # an .xlsx with a password is a compound file too
            raise FileRefused(PROTECTED) from error
        raise FileRefused(NOT_AN_XLS) from error
    names = {entry.name for entry in getattr(document, "dirlist", ())}
    if "EncryptedPackage" in names:
        raise FileRefused(PROTECTED)
    raise FileRefused(NOT_AN_XLS)


def check_xls(data: bytes, limits: UploadLimits | None = None) -> None:
    """Refuse an .xls file (FileRefused) that is protected, broken, or holds more than one
    import takes: a column past the limit, too many distinct strings, or too many cells,
    counting those xlrd makes to fill each row up to its last cell (one far cell per row
    would otherwise cost a whole row of them)."""
    limits = limits or default_limits()
    if len(data) > limits.max_file_bytes:
        raise FileRefused(too_large(limits))
    stream = workbook_stream(data)
    row_widths: dict[tuple[int, int], int] = {}  # (sheet, row) -> its cells up to the last
    cells = sheet = 0
    position, end = 0, len(stream) - HEADER.size
    while position <= end:
        record, length = HEADER.unpack_from(stream, position)
        body = position + HEADER.size
        position = body + length
        if record == FILEPASS:
            raise FileRefused(PROTECTED)
        if record == BOF:
            sheet += 1
            continue
        if record in ONE_CELL and length >= ROW_COLUMN.size:
            row, column = ROW_COLUMN.unpack_from(stream, body)
        elif record in CELL_RUNS and length >= ROW_COLUMN.size + LAST_COLUMN.size:
            row = ROW_COLUMN.unpack_from(stream, body)[0]
            column = LAST_COLUMN.unpack_from(stream, position - LAST_COLUMN.size)[0]
        elif record == SST and length >= 8:
            if struct.unpack_from("<I", stream, body + 4)[0] > limits.max_shared_strings:
                raise FileRefused(N_(
                    "The workbook holds more than %(n)s different texts, the most one import "
                    "takes. Split it into smaller files, or export CSV.",
                    n=f"{limits.max_shared_strings:,}"))
            continue
        else:
            continue
        if column >= limits.max_columns:
            raise FileRefused(too_wide(limits))
        width = row_widths.get((sheet, row), 0)
        if column + 1 > width:
            row_widths[sheet, row] = column + 1
            cells += column + 1 - width
            if cells > limits.max_cells:
                raise FileRefused(too_many_cells(limits))


def xls_rows(data: bytes, limits: UploadLimits | None = None) -> Iterator[list[str]]:
    """The first visible sheet's rows as text (check_xls first): a date cell as its date (and
    time, if it has one), a number as Excel shows it, an error as its code (#N/A); a row the
    sheet hides as a HiddenRow."""
    import xlrd

    limits = limits or default_limits()
    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True, ragged_rows=True,
                                  logfile=io.StringIO())
        visible = [index for index, hidden in enumerate(book._sheet_visibility) if not hidden]
        sheet = book.sheet_by_index(visible[0] if visible else 0)
    except xlrd.XLRDError as error:
        raise FileRefused(PROTECTED if "encrypt" in str(error).lower() else NOT_AN_XLS) from error
    except Exception as error:  # xlrd raises many kinds for a broken file
        raise FileRefused(NOT_AN_XLS) from error
    start = book._sh_abs_posn[sheet.number]
    covered = CoveredCells(merged_down(book.mem, start))
    hidden = hidden_rows(book.mem, start)
    shown_as = shown_cells(book.mem, start, shown_formats(book.mem, book.base))
    for number in range(sheet.nrows):
        record = []
        for column, (kind, value) in enumerate(zip(sheet.row_types(number),
                                                   sheet.row_values(number), strict=True)):
            shown = (shown_as[number, column].shown(value)
                     if kind == xlrd.XL_CELL_NUMBER and (number, column) in shown_as else None)
            text = shown if shown is not None else xls_cell_text(kind, value, book.datemode)
            if len(text) > limits.max_cell_bytes:
                raise FileRefused(too_long_cell(limits))
            record.append(text)
        yield covered.marked(number + 1, HiddenRow(record) if number + 1 in hidden else record)


def xls_visible_sheets(data: bytes) -> list[str]:
    """The names of the workbook's visible sheets, in order (the first is the one read); none
    for a file xlrd cannot open."""
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True, logfile=io.StringIO())
        return [name for name, hidden in zip(book.sheet_names(), book._sheet_visibility,
                                             strict=True) if not hidden]
    except Exception:  # the reading proper refuses a broken file
        return []


def sheet_records(stream: bytes, start: int) -> Iterator[tuple[int, int, int]]:
    """(type, start of its data, length) of each whole record of the sheet whose records
    start at `start` in the workbook stream (its BOF), but those of a chart in the sheet."""
    depth = 0  # a chart in the sheet has a BOF and an EOF of its own
    position, end = start, len(stream) - HEADER.size
    while position <= end:
        record, length = HEADER.unpack_from(stream, position)
        body = position + HEADER.size
        position = body + length
        if record == BOF:
            depth += 1
        elif record == EOF:
            depth -= 1
            if depth <= 0:
                return
        elif depth == 1 and position <= len(stream):
            yield record, body, length


def merged_down(stream: bytes, start: int) -> list[tuple[int, int, int]]:
    """The ranges merged over more than one row in the sheet whose records start at `start`
    in the workbook stream (its BOF), as (first row, last row, first column's index from 0),
    rows counted from 1. xlrd reads them only with the cells' formatting, which is not read."""
    ranges: list[tuple[int, int, int]] = []
    for record, body, length in sheet_records(stream, start):
        if record == MERGEDCELLS and length >= 2:
            count = min(struct.unpack_from("<H", stream, body)[0], (length - 2) // RANGE.size)
            for index in range(count):
                first_row, last_row, first_column, _ = RANGE.unpack_from(
                    stream, body + 2 + index * RANGE.size)
                if last_row > first_row and len(ranges) < MAX_MERGED_RANGES:
                    ranges.append((first_row + 1, last_row + 1, first_column))
    return ranges


def hidden_rows(stream: bytes, start: int) -> set[int]:
    """The rows, counted from 1, that the sheet whose records start at `start` hides (by hand,
    in a collapsed group or by a filter): its ROW records' flag. xlrd reads it only with the
    cells' formatting, which is not read."""
    return {ROW_NUMBER.unpack_from(stream, body)[0] + 1
            for record, body, length in sheet_records(stream, start)
            if record == ROW and length >= ROW_OPTIONS_AT + 2
            and ROW_NUMBER.unpack_from(stream, body + ROW_OPTIONS_AT)[0] & ROW_HIDDEN}


def shown_formats(stream: bytes, start: int = 0) -> dict[int, ShownNumber]:
    """The workbook's cell formats (by their number from 0) whose number format shows a
    number otherwise than the number is: a built-in percentage, or a custom format padding
    whole numbers with zeros (000000, "KA-"0000) or scaling them (#,##0, or 0!.0000;
    `shown_number`), read from the globals, whose records start at `start` (their BOF); none
    for a workbook older than Excel 97, whose records are laid out otherwise."""
    if len(stream) < start + HEADER.size + 2 or HEADER.unpack_from(stream, start)[0] != BOF or (
            struct.unpack_from("<H", stream, start + HEADER.size)[0] != BIFF8):
        return {}
    codes: dict[int, str] = {}
    number_formats: list[int] = []  # each cell format's number format, in the XFs' order
    position, end = start, len(stream) - HEADER.size
    while position <= end:
        record, length = HEADER.unpack_from(stream, position)
        body = position + HEADER.size
        position = body + length
        if record == EOF or position > len(stream):
            break
        if record == XF and length >= 4:
            number_formats.append(struct.unpack_from("<H", stream, body + 2)[0])
        elif record == FORMAT and length >= FORMAT_HEAD.size:
            index, characters, flags = FORMAT_HEAD.unpack_from(stream, body)
            # A rich or extended string carries a count before its characters.
            text_at = body + FORMAT_HEAD.size + (2 if flags & 0x08 else 0) + (
                4 if flags & 0x04 else 0)
            if flags & 0x01:  # two bytes a character
                codes[index] = stream[text_at:text_at + 2 * characters].decode(
                    "utf-16-le", "replace")
            else:
                codes[index] = stream[text_at:text_at + characters].decode("latin-1")
    return {cell_format: found for cell_format, number_format in enumerate(number_formats)
            if (found := shown_number(number_format, codes.get(number_format)
                                      if number_format >= FIRST_CUSTOM_FORMAT else None))
            is not None}


def shown_cells(stream: bytes, start: int, formats: dict[int, ShownNumber]
                ) -> dict[tuple[int, int], ShownNumber]:
    """The number cells of the sheet whose records start at `start` (its BOF) formatted by
    one of `formats`, by (row, column) from 0."""
    cells: dict[tuple[int, int], ShownNumber] = {}
    if not formats:
        return cells
    for record, body, length in sheet_records(stream, start):
        if record in NUMBER_CELLS and length >= ROW_COLUMN_XF.size:
            row, column, cell_format = ROW_COLUMN_XF.unpack_from(stream, body)
            if cell_format in formats:
                cells[row, column] = formats[cell_format]
        elif record == MULRK and length >= ROW_COLUMN.size + LAST_COLUMN.size:
            row, first = ROW_COLUMN.unpack_from(stream, body)
            count = (length - ROW_COLUMN.size - LAST_COLUMN.size) // MULRK_CELL_BYTES
            for offset in range(count):
                cell_format = XF_AT_MULRK.unpack_from(
                    stream, body + ROW_COLUMN.size + offset * MULRK_CELL_BYTES)[0]
                if cell_format in formats:
                    cells[row, first + offset] = formats[cell_format]
    return cells


def xls_is_1904(data: bytes) -> bool:
    """Whether the workbook counts its days in the 1904 date system (xlrd's datemode 1)."""
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True, logfile=io.StringIO())
    except Exception:  # a broken file is refused when its rows are read
        return False
    try:
        return book.datemode == 1
    finally:
        book.release_resources()


def xls_cell_text(kind: int, value: object, datemode: int) -> str:
    """A cell as the text a CSV export would hold (as cell_text does for an .xlsx cell)."""
    import xlrd

    if kind == xlrd.XL_CELL_DATE:
        try:
            when = xlrd.xldate_as_datetime(value, datemode)
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return cell_text(value)
        return cell_text(when)  # a date alone when its time is midnight
    if kind == xlrd.XL_CELL_BOOLEAN:
        return "TRUE" if value else "FALSE"
    if kind == xlrd.XL_CELL_ERROR:
        return xlrd.error_text_from_code.get(value, "#VALUE!")
    if kind in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        return ""
    return cell_text(value).strip()
