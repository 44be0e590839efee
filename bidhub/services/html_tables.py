"""Web-page "Excel" exports: an HTML table saved under an .xls name.

Many web-based CRMs and office systems export "Excel" as a web page holding a table, saved as
.xls; Excel opens it after a warning that the format does not match the name. bidhub reads the
table as Excel would show it: the first table with rows, each <tr> a row and each <td> or
<th> a cell, a cell spanning several columns or rows leaving the others it covers empty (as a
merged cell does; a place a cell spanning rows covers is read in a row of the table as that
cell's value, MergedDown), text without its markup and with its character references decoded,
runs of white space as one space; a row the page hides (`hidden`, or `display: none`, as Excel
saves a hidden row in a web page) is a HiddenRow.

The page is decoded as its <meta charset> says, else as a CSV is (UTF-8, else GBK/GB18030),
and parsed as it is read, a piece at a time, by the standard library's HTMLParser: a row is
the most it holds at once, and the upload limits (columns, cells, a cell's length) are checked
as rows are made.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from html.parser import HTMLParser

from bidhub.domain.imports import (
    COVERED,
    FileRefused,
    HiddenRow,
    UploadLimits,
    csv_encoding,
    default_limits,
    too_large,
    too_long_cell,
    too_wide,
)
from bidhub.domain.text import N_

PIECE = 64 * 1024
# How a page starts (after a BOM, white space and an XHTML page's XML declaration): a document
# type, <html>, or a bare table with perhaps its <meta> and <style> before it.
PAGE_START = re.compile(rb"\s*(?:<\?xml[^>]*\?>\s*)?<(?:!doctype\s+html|html[\s>]|head[\s>]|meta\s"
                        rb"|style[\s>]|table[\s>]|body[\s>])", re.IGNORECASE)
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w-]+)""", re.IGNORECASE)
NO_TABLE = N_("This is a web page (HTML), not a spreadsheet, and it holds no table of rows to "
              "read. Export the data again as Excel or CSV.")
# The most columns or rows a cell may span, as browsers read it (a wider row is then refused
# by the upload limits).
MAX_SPAN = 1_000


def is_html_table(data: bytes) -> bool:
    """Whether the file is a web page (an HTML export saved as .xls, or a bare table)."""
    start = data[:1024].removeprefix(codecs.BOM_UTF8)
    return PAGE_START.match(start) is not None


def page_encoding(data: bytes) -> str:
    """The page's encoding: its <meta charset> when the whole page reads so (gb2312 read as
    GB18030, which holds it), else as a CSV's is found (UTF-8, else GBK/GB18030)."""
    found = META_CHARSET.search(data[:4096])
    if found is not None:
        name = found.group(1).decode("ascii").lower()
        if name in ("gb2312", "gbk", "gb18030", "x-gbk", "cp936"):
            name = "gb18030"
        try:
            decoder = codecs.getincrementaldecoder(name)()
            for offset in range(0, len(data), PIECE):
                decoder.decode(data[offset:offset + PIECE])
            decoder.decode(b"", final=True)
            return codecs.lookup(name).name
        except (LookupError, UnicodeDecodeError):
            pass
    return csv_encoding(data)


def html_rows(data: bytes, limits: UploadLimits | None = None) -> Iterator[list[str]]:
    """The first table's rows as text; FileRefused when the page holds none or passes a limit."""
    limits = limits or default_limits()
    if len(data) > limits.max_file_bytes:
        raise FileRefused(too_large(limits))
    decoder = codecs.getincrementaldecoder(page_encoding(data))()
    parser = TableParser(limits)
    for offset in range(0, len(data), PIECE):
        parser.feed(decoder.decode(data[offset:offset + PIECE]))
        yield from parser.take_rows()
        if parser.ended:
            return
    parser.feed(decoder.decode(b"", final=True))
    parser.close()
    rows = parser.take_rows()
    if not (rows or parser.rows_given):
        raise FileRefused(NO_TABLE)
    yield from rows


class TableParser(HTMLParser):
    """Rows of the first table that has any, read as the page arrives (see the module)."""

    def __init__(self, limits: UploadLimits) -> None:
        super().__init__(convert_charrefs=True)
        self.limits = limits
        self.depth = 0  # tables open; the first one's rows are read, nested ones are text
        self.ended = False  # the first table with rows has ended: the rest is not read
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.cell_length = 0
        self.column_span = 1
        self.row_span = 1
        self.covered: dict[int, int] = {}  # column -> rows, this one on, a cell above covers
        self.spanning: dict[int, int] = {}  # the same for this row's cells, from the next row
        self.ready: list[list[str]] = []
        self.rows_given = 0
        self.skipping = 0  # inside <script> or <style>

    def take_rows(self) -> list[list[str]]:
        rows, self.ready = self.ready, []
        self.rows_given += len(rows)
        return rows

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skipping += 1
        elif self.ended or self.skipping:
            return
        elif tag == "table":
            self.depth += 1
        elif self.depth != 1:
            if tag == "br" and self.cell is not None:
                self.add_text(" ")
        elif tag == "tr":
            self.end_row()
            self.row = HiddenRow() if is_hidden(dict(attrs)) else []
        elif tag in ("td", "th"):
            if self.row is None:
                self.row = []
            self.end_cell()
            self.cell, self.cell_length = [], 0
            values = dict(attrs)
            self.column_span = span(values.get("colspan"), MAX_SPAN)
            self.row_span = span(values.get("rowspan"), MAX_SPAN)
        elif tag == "br" and self.cell is not None:
            self.add_text(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skipping = max(0, self.skipping - 1)
        elif self.ended or self.skipping:
            return
        elif tag == "table":
            if self.depth == 1:
                self.end_row()
                if self.rows_given or self.ready:
                    self.ended = True
            self.depth = max(0, self.depth - 1)
        elif self.depth == 1 and tag in ("td", "th"):
            self.end_cell()
        elif self.depth == 1 and tag == "tr":
            self.end_row()

    def handle_data(self, data: str) -> None:
        if self.cell is not None and not self.skipping and not self.ended:
            self.add_text(data)

    def add_text(self, text: str) -> None:
        self.cell_length += len(text)
        if self.cell_length > self.limits.max_cell_bytes:
            raise FileRefused(too_long_cell(self.limits))
        self.cell.append(text)

    def end_cell(self) -> None:
        if self.cell is None or self.row is None:
            return
        self.skip_covered()
        text = " ".join("".join(self.cell).split())
        column = len(self.row)
        self.row.append(text)
        self.row.extend([""] * (self.column_span - 1))
        if self.row_span > 1:
            for covered in range(column, column + self.column_span):
                self.spanning[covered] = self.row_span - 1
        self.cell = None
        if len(self.row) > self.limits.max_columns:
            raise FileRefused(too_wide(self.limits))

    def skip_covered(self) -> None:
        """Mark the places of this row that a cell above covers (empty, read as the cell above
        in a row of the table)."""
        while len(self.row) in self.covered:
            self.row.append(COVERED)

    def end_row(self) -> None:
        self.end_cell()
        if self.row is None:
            return
        self.skip_covered()
        # A place right of the row's last cell that a cell above covers is empty, as the row's
        # end is: only the rows still to cover count down.
        self.covered = {column: rows - 1 for column, rows in self.covered.items() if rows > 1}
        self.covered.update(self.spanning)
        self.spanning = {}
        self.ready.append(self.row)
        self.row = None


# A row the page does not show, as Excel writes a hidden row into a web page
# (<tr height=0 style='display:none'>).
DISPLAY_NONE = re.compile(r"display\s*:\s*none", re.IGNORECASE)


def is_hidden(attributes: dict[str, str | None]) -> bool:
    """Whether a row's attributes hide it: `hidden`, or a style of `display: none`."""
    return "hidden" in attributes or DISPLAY_NONE.search(attributes.get("style") or "") is not None


def span(value: str | None, most: int) -> int:
    """A colspan or rowspan as a count of 1 to `most` (a browser reads anything else as 1)."""
    try:
        return min(max(int((value or "1").strip()), 1), most)
    except ValueError:
        return 1
