"""Reading CRM export files: decode the bytes, map the headers, check each row into typed values.

Pure: the caller hands over bytes (CSV) or already-read cells (XLSX) and gets back typed rows
and problems. A problem names the row as the user sees it in Excel (the header is row 1), the
column, the value and the reason. Checks against the database happen in the service.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

MAX_ROWS = 20_000
MAX_CELL_LENGTH = 5_000
HEADER_ROW = 1


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

    def problem_rows(self) -> set[int | None]:
        return {problem.row for problem in self.problems}

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


def read_csv(data: bytes) -> list[list[str]]:
    text = decode(data)
    try:
        return [list(record) for record in csv.reader(io.StringIO(text, newline=""))]
    except csv.Error as error:
        raise FileRefused(f"The file is not valid CSV: {error}.") from None


# --- rows to typed values ---------------------------------------------------------------------

def parse_rows(kind: str, records: Sequence[Sequence[str]]) -> Parsed:
    """Typed rows and problems from the file's records (the first is the header)."""
    if kind not in COLUMNS:
        raise FileRefused(f"Unknown import kind '{kind}'; choose one of {', '.join(KINDS)}.")
    parsed = Parsed(kind=kind)
    records = [[(cell or "").strip() for cell in record] for record in records]
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
    if len(data_records) > MAX_ROWS:
        raise FileRefused(f"The file has more than {MAX_ROWS:,} rows, the most one import "
                          "takes. Split it into smaller files.")

    mapping = header_map(kind)
    positions: dict[str, int] = {}
    for index, header in enumerate(records[0]):
        if not header:
            continue
        column = mapping.get(normalise(header))
        if column is None:
            parsed.ignored_columns.append(header)
        elif column.name in positions:
            parsed.problems.append(Problem(HEADER_ROW, header, header,
                                           f"A second column for '{column.name}'."))
        else:
            positions[column.name] = index
    for column in COLUMNS[kind]:
        if column.required and column.name not in positions:
            names = " / ".join(filter(None, (column.name, column.chinese)))
            parsed.problems.append(Problem(HEADER_ROW, names, "",
                                           "This required column is missing."))
    parsed.columns = [column.name for column in COLUMNS[kind] if column.name in positions]
    if parsed.problems:
        return parsed

    seen_keys: dict[tuple[str, ...], dict[tuple[Any, ...], int]] = {
        key: {} for key in KEYS[kind]}
    for offset, record in enumerate(data_records):
        number = offset + 2
        if not any(record):
            continue
        parsed.rows_total += 1
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
        row_problems += cross_checks(kind, number, values)
        if not row_problems:
            for key, seen in seen_keys.items():
                identity = tuple(normalise(str(values[name])) for name in key)
                if identity in seen:
                    label = " + ".join(key)
                    row_problems.append(Problem(number, label, ", ".join(
                        str(values[name]) for name in key),
                        f"Also in row {seen[identity]}; each {label} may appear only once."))
                else:
                    seen[identity] = number
        parsed.problems += row_problems
        if not row_problems:
            parsed.rows.append(Row(number, values))
    return parsed


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


def parse_file(kind: str, records: Sequence[Sequence[str]]) -> Parsed:
    """Like parse_rows, but a file that cannot be read becomes a file-level problem."""
    try:
        return parse_rows(kind, records)
    except FileRefused as error:
        return Parsed(kind=kind, problems=[Problem(None, "", "", str(error))])


def parse_csv(kind: str, data: bytes) -> Parsed:
    try:
        records = read_csv(data)
    except FileRefused as error:
        return Parsed(kind=kind, problems=[Problem(None, "", "", str(error))])
    return parse_file(kind, records)


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
