"""Reading CRM export files: decode the bytes, map the headers, check each row into typed values.

Pure: the caller hands over bytes (CSV) or already-read cells (XLSX) and gets back typed rows
and problems. A problem names the row as the user sees it in Excel (the header is row 1), the
column, the value and the reason. Checks against the database happen in the service.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

MAX_ROWS = 20_000
MAX_CELL_LENGTH = 5_000
HEADER_ROW = 1
MIB = 1024 * 1024


@dataclass(frozen=True)
class UploadLimits:
    """How much one uploaded file may hold, so that reading it stays small in memory and time.

    The size limits are checked before anything is parsed (for XLSX: on the zip's directory,
    then on a streaming scan of its members), the counts as the file is read; the first one
    exceeded refuses the whole file. Tests configure small ones.
    """

    max_rows: int = MAX_ROWS  # data rows, blank ones not counted
    max_lines: int = 5 * MAX_ROWS  # rows up to the last data row, blank ones counted
    max_columns: int = 100
    max_cells: int = 250_000  # 20,000 rows of 12 columns, with room to spare
    max_cell_length: int = MAX_CELL_LENGTH  # characters; a longer value is a row problem
    max_cell_bytes: int = 32 * 1024  # a cell's text or markup beyond this refuses the file
    max_file_bytes: int = 8 * MIB  # the file as uploaded
    max_uncompressed_bytes: int = 64 * MIB  # XLSX: the zip's members together, unpacked
    max_shared_strings_bytes: int = 16 * MIB  # XLSX: the shared-strings part, unpacked
    max_shared_strings: int = 150_000  # XLSX: distinct strings the workbook may share
    max_text_runs: int = 20_000  # XLSX: pieces of differently formatted text, all cells
    max_zip_members: int = 1_000
    max_problems: int = 1_000  # problems kept in the report; the rest are counted
    max_value_chars: int = 200  # of a problem's value (and column) kept in the report
    max_reason_chars: int = 1_000


def default_limits() -> UploadLimits:
    return UploadLimits(max_rows=MAX_ROWS, max_lines=5 * MAX_ROWS, max_cell_length=MAX_CELL_LENGTH)


class ImportKind:
    REPS = "reps"
    ACCOUNTS = "accounts"
    OPPORTUNITIES = "opportunities"
    FORECASTS = "forecasts"
    INCIDENTS = "incidents"


KINDS = (ImportKind.REPS, ImportKind.ACCOUNTS, ImportKind.OPPORTUNITIES, ImportKind.FORECASTS,
         ImportKind.INCIDENTS)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: row (None for the whole file), column, value, reason."""

    row: int | None
    column: str
    value: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "value": self.value,
                "reason": self.reason}

    def clipped(self, limits: UploadLimits) -> Problem:
        """The problem as a report keeps it: long values, columns and reasons cut short."""
        return Problem(self.row, clip(self.column, limits.max_value_chars),
                       clip(self.value, limits.max_value_chars),
                       clip(self.reason, limits.max_reason_chars))


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


class ProblemList:
    """Problems in row order; past the limit only counted (bounded_problems clips them).

    Rows are checked in order, so the problems kept are the ones a report shows first.
    """

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self.kept: list[Problem] = []
        self.more = 0

    def add(self, problem: Problem) -> None:
        if len(self.kept) < self.limits.max_problems:
            self.kept.append(problem)
        else:
            self.more += 1


def bounded_problems(problems: Iterable[Problem], more: int,
                     limits: UploadLimits) -> tuple[list[Problem], int]:
    """The problems a report stores, in row order, and how many more there were."""
    ordered = sorted(problems, key=lambda problem: problem.row or 0)
    kept = [problem.clipped(limits) for problem in ordered[:limits.max_problems]]
    return kept, more + len(ordered) - len(kept)


class FileRefused(Exception):
    """The file as a whole cannot be read; `str()` says why."""


@dataclass(frozen=True)
class Row:
    number: int  # as Excel shows it: the header is row 1
    values: dict[str, Any]


@dataclass
class Parsed:
    kind: str
    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # canonical names present in the file
    rows_total: int = 0
    problems_not_kept: int = 0  # problems beyond the report's limit, counted only

    @property
    def file_problems(self) -> list[Problem]:
        """Problems that concern the whole file (no row can be imported at all)."""
        return [problem for problem in self.problems
                if problem.row is None or problem.row == HEADER_ROW]


# --- values -------------------------------------------------------------------------------

def normalise(header: str) -> str:
    return re.sub(r"[\s_\-]+", "", header.strip().lower())


class BadValue(ValueError):
    pass


def parse_text(value: str) -> str:
    if len(value) > MAX_CELL_LENGTH:
        raise BadValue(f"Longer than {MAX_CELL_LENGTH} characters.")
    return value


def text_of(limit: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if len(value) > limit:
            raise BadValue(f"Longer than {limit} characters.")
        return value

    return parse


DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d")


def parse_date(value: str) -> date:
    text = value.strip()
    match = re.fullmatch(r"(\d{4})年(\d{1,2})月(\d{1,2})日", text)
    if match:
        text = "-".join(match.groups())
    text = text.split(" ")[0].split("T")[0]
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise BadValue("Not a date; write it as YYYY-MM-DD.")


def parse_month(value: str) -> date:
    text = value.strip()
    match = (re.fullmatch(r"(\d{4})[-/.](\d{1,2})", text)
             or re.fullmatch(r"(\d{4})年(\d{1,2})月", text))
    if match:
        year, month = int(match.group(1)), int(match.group(2))
        if 1 <= month <= 12:
            return date(year, month, 1)
        raise BadValue("Not a month; write it as YYYY-MM.")
    try:
        return parse_date(text).replace(day=1)
    except BadValue:
        raise BadValue("Not a month; write it as YYYY-MM.") from None


def parse_yuan(value: str) -> int:
    text = value.strip().replace(",", "").replace("，", "").replace("¥", "").replace("￥", "")
    text = text.removesuffix("元").strip()
    if not re.fullmatch(r"\d+(\.\d+)?", text):
        raise BadValue("Not an amount in yuan; write a whole number of at least 0.")
    number = float(text)
    if number != int(number):
        raise BadValue("Write a whole number of yuan.")
    if number > 10**13:
        raise BadValue("Too large for an amount in yuan.")
    return int(number)


def choice(values: dict[str, str]) -> Callable[[str], str]:
    """A parser accepting the codes and their aliases (case-insensitive), giving the code."""
    lookup = {normalise(alias): code for alias, code in values.items()}
    lookup.update({normalise(code): code for code in set(values.values())})
    codes = sorted(set(values.values()))

    def parse(value: str) -> str:
        code = lookup.get(normalise(value))
        if code is None:
            raise BadValue(f"Unknown value; use one of: {', '.join(codes)}.")
        return code

    return parse


REP_STATUSES = {"active": "active", "on_leave": "on_leave", "left": "left",
                "在职": "active", "休假": "on_leave", "请假": "on_leave", "离职": "left"}
OWNERSHIP_TYPES = {"民营": "private", "私营": "private", "国有": "state_owned",
                   "国企": "state_owned", "中外合资": "joint_venture", "合资": "joint_venture",
                   "政府机关": "government", "政府": "government", "上市公司": "listed",
                   "上市": "listed", "private": "private", "state_owned": "state_owned",
                   "joint_venture": "joint_venture", "government": "government",
                   "listed": "listed"}
EXECUTIVE_SPONSORS = {"总裁": "president", "KA副总裁": "ka_vice_president",
                      "副总裁": "ka_vice_president", "分公司总经理": "branch_general_manager",
                      "president": "president", "ka_vice_president": "ka_vice_president",
                      "branch_general_manager": "branch_general_manager"}
STAGES = {"潜在客户": "potential", "潜在": "potential", "意向客户": "intent", "意向": "intent",
          "方案阶段": "proposal", "方案": "proposal", "商务谈判": "negotiation",
          "谈判": "negotiation", "销售实现": "won", "赢单": "won", "成交": "won",
          "丢单": "lost", "输单": "lost", "失败": "lost", "potential": "potential",
          "intent": "intent", "proposal": "proposal", "negotiation": "negotiation",
          "won": "won", "closed_won": "won", "lost": "lost"}
CLOSED_STAGES = frozenset({"won", "lost"})
AD_TYPES = {"标志": "logo", "横幅": "banner", "横幅广告": "banner", "招聘广告": "job_post",
            "职位广告": "job_post", "logo": "logo", "banner": "banner", "job_post": "job_post"}
INCIDENT_STATUSES = {"待说明": "open", "未说明": "open", "已说明": "explained",
                     "已接受": "accepted", "说明接受": "accepted", "成立": "upheld",
                     "维持": "upheld", "open": "open", "explained": "explained",
                     "accepted": "accepted", "upheld": "upheld"}
CONTACT_ROLES = ("decision_maker", "user", "purchaser", "contact")

parse_rep_status = choice(REP_STATUSES)
parse_stage = choice(STAGES)


def parse_stage_history(value: str) -> tuple[tuple[str, date], ...]:
    """'potential:2026-01-05;intent:2026-02-01' -> ((stage, date), ...), oldest first."""
    history = []
    for part in re.split(r"[;；\n]", value):
        if not part.strip():
            continue
        stage_text, separator, date_text = part.replace("：", ":").partition(":")
        if not separator:
            raise BadValue("Write the history as stage:YYYY-MM-DD;stage:YYYY-MM-DD.")
        try:
            history.append((parse_stage(stage_text), parse_date(date_text)))
        except BadValue as error:
            raise BadValue(f"'{part.strip()}': {error}") from None
    if [when for _, when in history] != sorted(when for _, when in history):
        raise BadValue("List the stage changes oldest first.")
    return tuple(history)


# --- columns of each kind ---------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    name: str  # canonical, also the English header
    headers: tuple[str, ...]  # further accepted headers, English and Chinese
    parse: Callable[[str], Any] = parse_text
    required: bool = True  # the column must be there and every row must give a value
    default: Any = None  # the value of a blank optional cell

    @property
    def chinese(self) -> str:
        return next((header for header in self.headers if not header.isascii()), "")


COLUMNS: dict[str, tuple[Column, ...]] = {
    ImportKind.REPS: (
        Column("external_id", ("external id", "员工编号", "工号", "外部编号"), text_of(64)),
        Column("username", ("用户名", "登录名"), text_of(64)),
        Column("name", ("display name", "姓名", "销售姓名"), text_of(100)),
        Column("branch", ("branch code", "分公司", "分公司代码"), text_of(32)),
        Column("hire_date", ("hired on", "入职日期"), parse_date, required=False),
        Column("status", ("状态", "在职状态"), parse_rep_status, required=False,
               default="active"),
    ),
    ImportKind.ACCOUNTS: (
        Column("external_id", ("account id", "external id", "客户编号"), text_of(64)),
        Column("name", ("account name", "客户名称"), text_of(200)),
        Column("industry", ("行业",), text_of(64)),
        Column("ownership_type", ("ownership", "所有制", "所有制类型"), choice(OWNERSHIP_TYPES)),
        Column("branch", ("branch code", "分公司", "分公司代码"), text_of(32)),
        Column("annual_value_yuan", ("annual value", "annual value yuan", "年度金额",
                                     "年度价值"), parse_yuan),
        Column("owner", ("owner rep", "rep", "所属销售", "负责销售"), text_of(64), required=False),
        Column("executive_sponsor", ("sponsor", "老板负责", "负责高管"),
               choice(EXECUTIVE_SPONSORS), required=False),
        Column("decision_maker", ("决策人",), text_of(100), required=False),
        Column("user", ("使用人",), text_of(100), required=False),
        Column("purchaser", ("采购人",), text_of(100), required=False),
        Column("contact", ("接口人",), text_of(100), required=False),
    ),
    ImportKind.OPPORTUNITIES: (
        Column("external_id", ("opportunity id", "external id", "商机编号"), text_of(64)),
        Column("account", ("account id", "客户编号"), text_of(64)),
        Column("rep", ("销售", "所属销售"), text_of(64)),
        Column("amount_yuan", ("amount", "金额", "商机金额"), parse_yuan),
        Column("stage", ("阶段", "销售阶段"), parse_stage),
        Column("opened", ("opened date", "opened on", "创建日期", "开始日期"), parse_date),
        Column("closed", ("closed date", "closed on", "关闭日期", "结束日期"), parse_date,
               required=False),
        Column("stage_history", ("history", "阶段历史"), parse_stage_history, required=False,
               default=()),
    ),
    ImportKind.FORECASTS: (
        Column("rep", ("销售", "所属销售"), text_of(64)),
        Column("month", ("月份",), parse_month),
        Column("forecast_yuan", ("forecast", "预测金额", "月度预测"), parse_yuan),
        Column("actual_yuan", ("actual", "实际金额", "实际完成"), parse_yuan, required=False),
    ),
    ImportKind.INCIDENTS: (
        Column("external_id", ("incident id", "external id", "事件编号"), text_of(64)),
        Column("account", ("account id", "客户编号"), text_of(64)),
        Column("rep", ("销售", "所属销售"), text_of(64)),
        Column("competitor_site", ("competitor", "竞争对手网站", "竞品网站"), text_of(200)),
        Column("seen", ("date seen", "seen on", "发现日期"), parse_date),
        Column("ad_type", ("ad", "广告类型"), choice(AD_TYPES)),
        Column("status", ("状态",), choice(INCIDENT_STATUSES), required=False, default="open"),
        Column("explanation", ("说明", "情况说明"), parse_text, required=False, default=""),
    ),
}

# The columns whose values identify a row; a file may not give the same key twice.
KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    ImportKind.REPS: (("external_id",), ("username",)),
    ImportKind.ACCOUNTS: (("external_id",),),
    ImportKind.OPPORTUNITIES: (("external_id",),),
    ImportKind.FORECASTS: (("rep", "month"),),
    ImportKind.INCIDENTS: (("external_id",),),
}


def header_map(kind: str) -> dict[str, Column]:
    mapping: dict[str, Column] = {}
    for column in COLUMNS[kind]:
        for header in (column.name, *column.headers):
            mapping[normalise(header)] = column
    return mapping


# --- bytes to cells ---------------------------------------------------------------------------

def decode(data: bytes) -> str:
    """The text of a CSV file in UTF-8 (with or without BOM) or GBK/GB18030; else FileRefused."""
    if not data.strip():
        raise FileRefused("The file is empty.")
    if b"\x00" in data[:8192]:
        raise FileRefused("This is not a text (CSV) file. Save the export as CSV (UTF-8 or "
                          "GBK) or as an Excel workbook (.xlsx).")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if any(ord(char) < 32 and char not in "\t\r\n" for char in text[:8192]):
            break
        return text
    raise FileRefused("The file's characters cannot be read as UTF-8 or GBK. Save it again as "
                      "CSV (UTF-8) and retry.")


def read_csv(data: bytes, limits: UploadLimits | None = None) -> list[list[str]]:
    """The CSV file's records, within the limits (else FileRefused)."""
    limits = limits or default_limits()
    if len(data) > limits.max_file_bytes:
        raise FileRefused(too_large(limits))
    text = decode(data)
    commas = [0]  # separators since the last complete record

    def lines() -> Iterator[str]:
        # csv builds a record's fields before handing it over; a record with millions of tiny
        # fields would take hundreds of MiB, so it is stopped while it is being read.
        for line in io.StringIO(text, newline=""):
            commas[0] += line.count(",")
            if commas[0] > limits.max_columns * 20:
                raise FileRefused(too_wide(limits))
            yield line

    def records() -> Iterator[list[str]]:
        for record in csv.reader(lines()):
            commas[0] = 0
            yield record

    try:
        return collect_records(records(), limits)
    except csv.Error as error:
        if "field larger than field limit" in str(error):
            raise FileRefused(too_long_cell(limits)) from None
        raise FileRefused(f"The file is not valid CSV: {error}.") from None


def too_large(limits: UploadLimits) -> str:
    return (f"The file is larger than {limits.max_file_bytes / MIB:g} MiB, the most one import "
            f"takes. Split it into smaller files.")


def too_wide(limits: UploadLimits) -> str:
    return (f"A row has more than {limits.max_columns:,} columns, the most one import takes. "
            f"Keep only the columns bidhub reads.")


def too_long_cell(limits: UploadLimits) -> str:
    return (f"A cell holds far more than the {limits.max_cell_length:,} characters a cell may "
            f"have; the file was not read. Check the export.")


def too_many_rows(limits: UploadLimits) -> str:
    return (f"The file has more than {limits.max_rows:,} rows, the most one import takes. "
            f"Split it into smaller files.")


def collect_records(rows: Iterable[Sequence[str]], limits: UploadLimits) -> list[list[str]]:
    """The records of a file being read, stopped at the first limit it passes (FileRefused).

    Blank rows are kept as one shared empty record, so that row numbers stay those of Excel;
    blank rows after the last data row are counted but not kept.
    """
    records: list[list[str]] = []
    blank: list[str] = []
    lines = blanks = data_rows = cells = 0
    for record in rows:
        lines += 1
        if lines > limits.max_lines + 1:
            raise FileRefused(f"The file has more than {limits.max_lines:,} rows counting blank "
                              f"ones. Remove the blank rows, or split the file.")
        if len(record) > limits.max_columns:
            record = list(record)
            while record and not record[-1].strip():
                record.pop()
            if len(record) > limits.max_columns:
                raise FileRefused(too_wide(limits))
        cells += len(record)
        if cells > limits.max_cells:
            raise FileRefused(f"The file has more than {limits.max_cells:,} cells, the most one "
                              f"import takes. Split it into smaller files.")
        if any(len(cell) > limits.max_cell_bytes for cell in record):
            raise FileRefused(too_long_cell(limits))
        if not any(cell.strip() for cell in record):
            blanks += 1
            continue
        if records:
            data_rows += 1
            if data_rows > limits.max_rows:
                raise FileRefused(too_many_rows(limits))
        records.extend([blank] * blanks)
        blanks = 0
        records.append(list(record))
    return records


# --- XLSX: checked on its zip directory and by a streaming scan, before any parser sees it ----

SCAN_CHUNK = MIB
# An element's opening tag, with or without a namespace prefix.
# The start and end tags of rows and shared strings, each bounded in size.
ELEMENT_TAG = re.compile(rb"<(/?)(?:[A-Za-z_][\w.-]*:)?(row|si)(?=[\s/>])")
CELL_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c[\s/>]")
RUN_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:r|rPh)[\s/>]")
# The column letters of a cell's reference (r="AB12"): a reader pads each row up to its last.
CELL_COLUMN = re.compile(rb"""<(?:[A-Za-z_][\w.-]*:)?c\s[^>]*?\br\s*=\s*["']\$?([A-Za-z]+)""")
# Excel never writes these; a document type can define entities that expand without end.
FORBIDDEN_MARKUP = re.compile(rb"<!(?:DOCTYPE|ENTITY|\[CDATA\[)", re.IGNORECASE)
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
              NotImplementedError, ValueError)
NOT_A_WORKBOOK = ("The file is not a readable Excel workbook (.xlsx). Save it again from Excel, "
                  "or export CSV.")


def check_workbook(data: bytes, limits: UploadLimits | None = None) -> None:
    """Refuse an XLSX file (FileRefused) that would take too much memory or time to read.

    First the zip's own directory: the size of every part once unpacked (the unpacking stops
    at the stated size and checks the checksum, so a part cannot hold more than it states).
    Then each part is unpacked a piece at a time and scanned, without parsing, for a text
    longer than a cell may hold, the number of shared strings and of cells, and markup that
    Excel never writes.
    """
    limits = limits or default_limits()
    if len(data) > limits.max_file_bytes:
        raise FileRefused(too_large(limits))
    # zipfile reads the whole directory into objects first; its stated length is checked
    # before (0xFFFF means a zip64 directory, far more parts than a workbook has).
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if end != -1 and int.from_bytes(data[end + 10:end + 12], "little") > limits.max_zip_members:
        raise FileRefused(f"The workbook has more than {limits.max_zip_members:,} parts. "
                          f"{NOT_A_WORKBOOK}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except ZIP_ERRORS:
        raise FileRefused(NOT_A_WORKBOOK) from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_zip_members:
            raise FileRefused(f"The workbook has more than {limits.max_zip_members:,} parts. "
                              f"{NOT_A_WORKBOOK}")
        unpacked = sum(member.file_size for member in members)
        if unpacked > limits.max_uncompressed_bytes:
            raise FileRefused(
                f"The workbook unpacks to {unpacked / MIB:,.0f} MiB, more than the "
                f"{limits.max_uncompressed_bytes / MIB:g} MiB one import takes. Split it into "
                f"smaller files, or export CSV.")
        scan = WorkbookScan(limits)
        for member in members:
            try:
                with archive.open(member) as stream:
                    scan.member(member.file_size, stream)
            except ZIP_ERRORS:
                raise FileRefused(NOT_A_WORKBOOK) from None


class WorkbookScan:
    """Counts and checks over a workbook's parts, read in pieces (memory: one piece).

    openpyxl holds a whole row, and a whole shared string, as a tree until it ends, so each
    row and shared string is bounded in size and in elements as well as the file in total.
    Counting is done by the regular-expression engine; Python loops only over rows and
    shared strings.
    """

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self.shared_strings = 0
        self.cells = 0
        self.runs = 0
        # A run of text (anything between two '<') longer than a cell may take: one '<' and
        # more bytes than any cell's text.
        self.long_text = re.compile(rb"<[^<]{%d}" % (limits.max_cell_bytes + 1))
        # Per element: the most bytes and tags a row or a shared string may span.
        self.element_bytes = {b"row": limits.max_columns * limits.max_cell_bytes,
                              b"si": limits.max_cell_bytes}
        self.element_tags = {b"row": limits.max_columns * 32, b"si": 2_048}

    def member(self, size: int, stream: Any) -> None:
        self.size = size
        self.open: bytes | None = None  # the row or shared string being read: its name,
        self.open_at = 0  # where it began in the part,
        self.open_tags = 0  # and its tags before the current piece
        # Scanned in pieces; a piece's unfinished tail (from its last '<') goes with the next
        # one, so every match lies wholly inside the part scanned. A '<' is put before the
        # first byte so that the part's start counts as a run's start.
        tail, base = b"<", -1  # base: where the buffer starts in the part
        while chunk := stream.read(SCAN_CHUNK):
            buffer = tail + chunk
            end = buffer.rfind(b"<")
            self.check(buffer, end, base)
            base += end
            tail = buffer[end:]
            if len(tail) > self.limits.max_cell_bytes + 1:
                raise FileRefused(too_long_cell(self.limits))
        self.check(tail, len(tail), base)

    def check(self, buffer: bytes, end: int, base: int) -> None:
        limits = self.limits
        if self.long_text.search(buffer, 0, end):
            raise FileRefused(too_long_cell(limits))
        if FORBIDDEN_MARKUP.search(buffer, 0, end):
            raise FileRefused(NOT_A_WORKBOOK)
        self.cells += len(CELL_TAG.findall(buffer, 0, end))
        if self.cells > limits.max_cells:
            raise FileRefused(f"The file has more than {limits.max_cells:,} cells, the most one "
                              f"import takes. Split it into smaller files.")
        self.runs += len(RUN_TAG.findall(buffer, 0, end))
        if self.runs > limits.max_text_runs:
            # Formatted pieces of text: openpyxl builds an object for each, slowly.
            raise FileRefused(
                f"The workbook holds more than {limits.max_text_runs:,} pieces of formatted "
                f"text, the most one import takes. Clear the formatting (or export CSV) and try "
                f"again.")
        for letters in set(CELL_COLUMN.findall(buffer, 0, end)):
            if column_number(letters) > limits.max_columns:
                raise FileRefused(too_wide(limits))
        position = 0  # where the open element's part of this piece begins
        for match in ELEMENT_TAG.finditer(buffer, 0, end):
            closing, name = match.groups()
            if self.open is not None:
                self.close(buffer, match.start(), base, position)
            if closing:
                continue
            self.open, self.open_at, self.open_tags = name, base + match.start(), 0
            position = match.start()
            if name == b"si":
                self.shared_string()
        if self.open is not None:
            self.open_tags += buffer.count(b"<", position, end)
            self.close_check(base + end)

    def close(self, buffer: bytes, at: int, base: int, position: int = 0) -> None:
        """The open element ends at `at` in this piece (or is cut off by another one)."""
        self.open_tags += buffer.count(b"<", position, at)
        self.close_check(base + at)
        self.open = None

    def close_check(self, reached: int) -> None:
        name = self.open
        if (reached - self.open_at > self.element_bytes[name]
                or self.open_tags > self.element_tags[name]):
            if name == b"si":
                raise FileRefused(too_long_cell(self.limits))
            raise FileRefused(f"A row holds more than a row of {self.limits.max_columns:,} "
                              f"cells may. Check the export.")

    def shared_string(self) -> None:
        limits = self.limits
        if self.size > limits.max_shared_strings_bytes:
            raise FileRefused(
                f"The workbook's shared text unpacks to {self.size / MIB:,.0f} MiB, more than "
                f"the {limits.max_shared_strings_bytes / MIB:g} MiB one import takes. Split it "
                f"into smaller files, or export CSV.")
        self.shared_strings += 1
        if self.shared_strings > limits.max_shared_strings:
            raise FileRefused(
                f"The workbook holds more than {limits.max_shared_strings:,} different texts, "
                f"the most one import takes. Split it into smaller files, or export CSV.")


def column_number(letters: bytes) -> int:
    """A spreadsheet column's number from its letters: A is 1, Z 26, AA 27."""
    number = 0
    for letter in letters.upper()[:8]:
        number = number * 26 + letter - ord("A") + 1
    return number


# --- rows to typed values ---------------------------------------------------------------------

def parse_rows(kind: str, records: Sequence[Sequence[str]],
               limits: UploadLimits | None = None) -> Parsed:
    """Typed rows and problems from the file's records (the first is the header)."""
    limits = limits or default_limits()
    if kind not in COLUMNS:
        raise FileRefused(f"Unknown import kind '{kind}'; choose one of {', '.join(KINDS)}.")
    parsed = Parsed(kind=kind)
    records = [[(cell or "").strip() for cell in record] for record in records]
    data_records = checked_data_records(records, limits)
    positions = column_positions(kind, records[0], parsed, limits)
    if parsed.problems:
        return parsed
    problems = ProblemList(limits)
    seen_keys: dict[tuple[str, ...], dict[tuple[Any, ...], int]] = {
        key: {} for key in KEYS[kind]}
    for offset, record in enumerate(data_records):
        number = offset + 2
        if not any(record):
            continue
        parsed.rows_total += 1
        values, row_problems = typed_values(kind, number, record, positions)
        row_problems += cross_checks(kind, number, values)
        if not row_problems:
            row_problems = duplicate_problems(number, values, seen_keys)
        for problem in row_problems:
            problems.add(problem)
        if not row_problems:
            parsed.rows.append(Row(number, values))
    parsed.problems, parsed.problems_not_kept = problems.kept, problems.more
    return parsed


def checked_data_records(records: list[list[str]], limits: UploadLimits) -> list[list[str]]:
    """The records after the header, once the file's shape is acceptable (trailing blanks cut)."""
    while records and not any(records[-1]):
        records.pop()
    header_index = next((index for index, record in enumerate(records) if any(record)), None)
    if header_index is None:
        raise FileRefused("The file is empty.")
    if header_index != 0:
        raise FileRefused("The first row must hold the column names.")
    data_records = records[1:]
    if not any(any(record) for record in data_records):
        raise FileRefused("The file has column names but no rows.")
    if sum(1 for record in data_records if any(record)) > limits.max_rows:
        raise FileRefused(too_many_rows(limits))
    return data_records


def column_positions(kind: str, header: list[str], parsed: Parsed,
                     limits: UploadLimits) -> dict[str, int]:
    """Canonical column name -> its index; header problems and ignored columns go to `parsed`."""
    mapping = header_map(kind)
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        if not name:
            continue
        column = mapping.get(normalise(name))
        if column is None:
            parsed.ignored_columns.append(name)
        elif column.name in positions:
            parsed.problems.append(Problem(HEADER_ROW, name, name,
                                           f"A second column for '{column.name}'."))
        else:
            positions[column.name] = index
    for column in COLUMNS[kind]:
        if column.required and column.name not in positions:
            names = " / ".join(filter(None, (column.name, column.chinese)))
            parsed.problems.append(Problem(HEADER_ROW, names, "",
                                           "This required column is missing."))
    parsed.columns = [column.name for column in COLUMNS[kind] if column.name in positions]
    parsed.ignored_columns = [clip(name, limits.max_value_chars)
                              for name in parsed.ignored_columns]
    return positions


def typed_values(kind: str, number: int, record: list[str],
                 positions: dict[str, int]) -> tuple[dict[str, Any], list[Problem]]:
    """One record's values by column, defaults filled, and the problems of its cells."""
    values: dict[str, Any] = {}
    row_problems = []
    for column in COLUMNS[kind]:
        if column.name not in positions:
            continue
        index = positions[column.name]
        raw = record[index] if index < len(record) else ""
        if not raw:
            if column.required:
                row_problems.append(Problem(number, column.name, "", "A value is required."))
            else:
                values[column.name] = column.default
            continue
        try:
            values[column.name] = column.parse(raw)
        except BadValue as error:
            row_problems.append(Problem(number, column.name, raw, str(error)))
    return values, row_problems


def duplicate_problems(number: int, values: dict[str, Any],
                       seen_keys: dict[tuple[str, ...], dict[tuple[Any, ...], int]],
                       ) -> list[Problem]:
    """A problem per key an earlier row already has; otherwise the row's keys are noted."""
    problems = []
    for key, seen in seen_keys.items():
        identity = tuple(normalise(str(values[name])) for name in key)
        if identity in seen:
            label = " + ".join(key)
            problems.append(Problem(number, label, ", ".join(
                str(values[name]) for name in key),
                f"Also in row {seen[identity]}; each {label} may appear only once."))
        else:
            seen[identity] = number
    return problems


def cross_checks(kind: str, number: int, values: dict[str, Any]) -> list[Problem]:
    """Checks between the values of one row."""
    problems = []
    if kind == ImportKind.OPPORTUNITIES and "opened" in values and "stage" in values:
        closed = values.get("closed")
        if closed is not None and closed < values["opened"]:
            problems.append(Problem(number, "closed", closed.isoformat(),
                                    "Closed before it was opened."))
        if closed is not None and values["stage"] not in CLOSED_STAGES:
            problems.append(Problem(number, "closed", closed.isoformat(),
                                    "Only won or lost opportunities have a closed date."))
        history = values.get("stage_history") or ()
        if history and history[0][1] < values["opened"]:
            problems.append(Problem(number, "stage_history", history[0][1].isoformat(),
                                    "A stage change before the opened date."))
        if history and history[-1][0] != values["stage"]:
            problems.append(Problem(number, "stage_history", history[-1][0],
                                    f"The last stage in the history is not the stage "
                                    f"'{values['stage']}'."))
    return problems


def parse_file(kind: str, records: Sequence[Sequence[str]],
               limits: UploadLimits | None = None) -> Parsed:
    """Like parse_rows, but a file that cannot be read becomes a file-level problem."""
    try:
        return parse_rows(kind, records, limits)
    except FileRefused as error:
        return refused(kind, error)


def refused(kind: str, error: FileRefused) -> Parsed:
    return Parsed(kind=kind, problems=[Problem(None, "", "", str(error))])


def parse_csv(kind: str, data: bytes, limits: UploadLimits | None = None) -> Parsed:
    try:
        records = read_csv(data, limits)
    except FileRefused as error:
        return refused(kind, error)
    return parse_file(kind, records, limits)


def cell_text(value: Any) -> str:
    """A spreadsheet cell as the text a CSV export would hold."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else (
            value.isoformat(sep=" "))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
