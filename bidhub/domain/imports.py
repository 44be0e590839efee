"""Reading CRM export files: decode the bytes, map the headers, check each row into typed values.

Pure: the caller hands over bytes (CSV) or already-read cells (XLSX) and gets back typed rows
and problems. A problem names the row as the user sees it in Excel (the header is row 1), the
column, the value and the reason. Checks against the database happen in the service.
"""

from __future__ import annotations

import calendar
import codecs
import csv
import difflib
import functools
import hashlib
import io
import itertools
import math
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import cache, lru_cache
from typing import Any

from bidhub.domain.text import COMMA, N_, Joined, Text
from bidhub.domain.typed_text import username_key, username_problem, visible_text

# Data rows one file may hold: a CRM's whole opportunity history, read as a stream.
MAX_ROWS = 200_000
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
    max_cells: int = 2_500_000  # 200,000 rows of 12 columns, with room to spare
    max_cell_length: int = MAX_CELL_LENGTH  # characters; a longer value is a row problem
    max_cell_bytes: int = 32 * 1024  # a cell's text or markup beyond this refuses the file
    # The file as given; the web's upload limit (MAX_CONTENT_LENGTH) is the smaller bound there.
    max_file_bytes: int = 64 * MIB
    max_uncompressed_bytes: int = 64 * MIB  # XLSX: the zip's members together, unpacked
    max_shared_strings_bytes: int = 16 * MIB  # XLSX: the shared-strings part, unpacked
    # XLSX and XLS: distinct strings the workbook may share. Excel shares every distinct text,
    # so a 65,000-row export of ids, names and contacts shares some 300,000; the 16 MiB of
    # shared text bound them to about 800,000, which read in 6 s and 210 MB when measured.
    max_shared_strings: int = 1_000_000
    max_text_runs: int = 20_000  # XLSX: pieces of differently formatted text, all cells
    max_zip_members: int = 1_000
    max_problems: int = 1_000  # problems kept in the report; the rest are counted
    max_value_chars: int = 200  # of a problem's value (and column) kept in the report
    max_reason_chars: int = 1_000


def default_limits() -> UploadLimits:
    return UploadLimits(max_rows=MAX_ROWS, max_lines=5 * MAX_ROWS, max_cell_length=MAX_CELL_LENGTH)



class ImportKind:
    BRANCHES = "branches"
    REPS = "reps"
    ACCOUNTS = "accounts"
    OPPORTUNITIES = "opportunities"
    FORECASTS = "forecasts"
    INCIDENTS = "incidents"


KINDS = (ImportKind.BRANCHES, ImportKind.REPS, ImportKind.ACCOUNTS, ImportKind.OPPORTUNITIES, ImportKind.FORECASTS,
         ImportKind.INCIDENTS)


Message = Text | Joined | str


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: row (None for the whole file), column, value, reason.

    The reason is a `Text` (translated where it is shown; `str()` is the English).
    """

    row: int | None
    column: str
    value: str
    reason: Message

    def __post_init__(self) -> None:
        # A blank cell is shown blank, never as "None"; a read value as text.
        if not isinstance(self.value, str):
            object.__setattr__(self, "value", "" if self.value is None else str(self.value))

    def as_dict(self) -> dict[str, Any]:
        """The problem as a report stores it: the English reason, and the message to translate."""
        return {"row": self.row, "column": self.column, "value": self.value,
                "reason": str(self.reason), "message": message_json(self.reason)}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Problem:
        """A stored problem, its reason a `Text` again when the report kept the message."""
        reason = stored.get("reason", "")
        if "message" in stored:
            reason = message_from_json(stored["message"])
        return cls(stored.get("row"), stored.get("column", ""), stored.get("value", ""), reason)

    def clipped(self, limits: UploadLimits) -> Problem:
        """The problem as a report keeps it: long values, columns and reasons cut short."""
        reason = self.reason
        if isinstance(reason, str):
            reason = clip(reason, limits.max_reason_chars)
        return Problem(self.row, clip(self.column, limits.max_value_chars),
                       clip(self.value, limits.max_value_chars), reason)


def message_json(message: Message) -> Any:
    """A message as JSON that keeps it translatable: msgid and parameters, nested as needed;
    a day or an instant among the parameters as its ISO text."""
    if isinstance(message, Text):
        return {"msgid": message.msgid,
                "params": {name: message_json(value) if isinstance(value, Text | Joined)
                           else value.isoformat() if isinstance(value, date)
                           else value for name, value in message.params.items()}}
    if isinstance(message, Joined):
        return {"parts": [message_json(part) for part in message.parts],
                "separator": message.separator}
    return str(message)


def message_from_json(stored: Any) -> Message:
    if isinstance(stored, dict) and "msgid" in stored:
        params = {name: message_from_json(value) if isinstance(value, dict) else value
                  for name, value in (stored.get("params") or {}).items()}
        return Text(str(stored["msgid"]), params)
    if isinstance(stored, dict) and "parts" in stored:
        return Joined([message_from_json(part) for part in stored["parts"]],
                      str(stored.get("separator", "; ")))
    return str(stored)


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


class ProblemList:
    """The problems of the earliest rows, up to the report's limit; the rest only counted.

    Problems arrive nearly in row order (a file is checked, then written, a batch of rows at a
    time), so the list is trimmed to the earliest rows whenever it doubles: memory stays
    bounded whatever the file holds. `finish()` trims it for the report.
    """

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self.kept: list[Problem] = []
        self.more = 0

    def add(self, problem: Problem) -> None:
        self.kept.append(problem)
        if len(self.kept) >= 2 * max(1, self.limits.max_problems):
            self.finish()

    def finish(self) -> None:
        self.kept.sort(key=lambda problem: problem.row or 0)
        self.more += max(0, len(self.kept) - self.limits.max_problems)
        del self.kept[self.limits.max_problems:]

    def __bool__(self) -> bool:
        return bool(self.kept) or self.more > 0


def bounded_problems(problems: Iterable[Problem], more: int,
                     limits: UploadLimits) -> tuple[list[Problem], int]:
    """The problems a report stores, in row order, and how many more there were."""
    ordered = sorted(problems, key=lambda problem: problem.row or 0)
    kept = [problem.clipped(limits) for problem in ordered[:limits.max_problems]]
    return kept, more + len(ordered) - len(kept)


class FileRefused(Exception):
    """The file as a whole cannot be read; `message` says why (`str()` in English)."""

    def __init__(self, message: Message) -> None:
        super().__init__(str(message))
        self.message = message


class NoTable(FileRefused):
    """The file, or the sheet of a workbook that is read, holds no table: nothing at all, no
    row of column names, or no row below them."""


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
    # The file's column -> the field it was read into, and the unit of each amount read.
    mapping: dict[str, str] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)
    generated_usernames: bool = False  # reps: usernames made from the employee ids
    rows_total: int = 0
    problems_not_kept: int = 0  # problems beyond the report's limit, counted only
    # Totals rows skipped (row, the word that made it one), up to the report's limit.
    totals_rows: list[tuple[int, str]] = field(default_factory=list)
    # Notes below the table skipped (row, its text), as `note_text` finds them.
    note_rows: list[tuple[int, str]] = field(default_factory=list)
    header_row: int = HEADER_ROW  # the row the column names are in
    # Rows above the column names skipped (row, its text), as `split_header` finds them.
    rows_above: list[tuple[int, str]] = field(default_factory=list)
    # The note above or below the table that names the amounts' unit (单位：万元), by which
    # the amount columns whose names give no unit are read (`unit_note_of`).
    unit_note: UnitNote | None = None
    # The columns read whose cells merged down over rows of the table gave a value to rows
    # below their first (`FillDown`), by their names in the file.
    merged_down: list[str] = field(default_factory=list)
    # The rows of the table hidden in the workbook (`HiddenRow`), read like the others: as
    # ranges of rows (first, last), up to the report's limit, and how many there were.
    hidden_rows: list[tuple[int, int]] = field(default_factory=list)
    hidden_rows_count: int = 0
    # Per amount field, how many rows read had a fraction of a yuan rounded away (`yuan_read`)
    rounded: dict[str, int] = field(default_factory=dict)

    @property
    def file_problems(self) -> list[Problem]:
        """Problems that concern the whole file (no row can be imported at all)."""
        return [problem for problem in self.problems
                if problem.row is None or problem.row == self.header_row]


# --- values -------------------------------------------------------------------------------

# What normalise drops from plain ASCII text: the characters \s matches there, '_' and '-'.
ASCII_IGNORED = str.maketrans("", "", " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f_-")
IGNORED = re.compile(r"[\s_\-]+")


def normalise(header: str) -> str:
    """How headers and coded values compare: full-width as half-width, any case, no spaces."""
    if header.isascii():  # NFKC leaves ASCII as it is; every key of a large file goes here
        return header.lower().translate(ASCII_IGNORED)
    return IGNORED.sub("", unicodedata.normalize("NFKC", header).strip().lower())


def clean_cell(value: str | None) -> str:
    """A cell as it is read: without invisible formatting characters (zero-width spaces, a BOM
    where two exports were joined, direction marks pasted from chat) or surrounding spaces."""
    if not value:
        return ""
    if value.isascii():
        return value.strip()
    return visible_text(value)


# Line breaks inside a cell (Alt+Enter in Excel, or a wrapped paste): never part of an id.
LINE_BREAKS = re.compile("[\r\n\v\f\x85\u2028\u2029]+")


def clean_id(value: str) -> str:
    """An id as stored: NFKC (full-width letters and digits as ASCII), without invisible
    characters, line breaks or surrounding spaces; its case and punctuation kept."""
    if value.isascii():
        value = value.strip()
        return LINE_BREAKS.sub("", value) if "\n" in value or "\r" in value else value
    return LINE_BREAKS.sub("", visible_text(unicodedata.normalize("NFKC", value)))


def id_key(value: str | None) -> str:
    """How ids compare, in a file and with what is stored: as clean_id, in any case.

    KA-3001, ka-3001 and ＫＡ－３００１ are one id; KA-20-11, KA-2011 and KA_20_11 are three.
    """
    return clean_id(value or "").lower()


# Zeros that lead a run of digits: 001234 -> 1234, KA-0012 -> KA-12 (a 0 alone stays).
LEADING_ZEROS = re.compile(r"(?<![0-9])0+(?=[0-9])")


def unpadded_id_key(value: str | None) -> str:
    """id_key without the zeros leading its numbers: Excel drops them from 001234 when it
    opens a CSV, and a workbook may keep 1234 in a cell formatted to show 001234."""
    return LEADING_ZEROS.sub("", id_key(value))


class BadValue(ValueError):
    """A cell's value cannot be read; `message` says why (a `Text`)."""

    def __init__(self, message: Message) -> None:
        super().__init__(str(message))
        self.message = message


def parse_text(value: str) -> str:
    if len(value) > MAX_CELL_LENGTH:
        raise BadValue(N_("Longer than %(n)d characters.", n=MAX_CELL_LENGTH))
    return value


parse_text.free_text = True  # type: ignore[attr-defined]  # see NO_VALUE_MARKS


# How Excel shows a number too long for its column, or of more than 15 digits: 1.23457E+11.
EXCEL_SCIENTIFIC = re.compile(r"\d(?:\.\d+)?e\+\d+", re.IGNORECASE)


def id_of(limit: int) -> Callable[[str], str]:
    """An id or a reference to one (external id, username, code), as clean_id leaves it.

    An id Excel turned into a number in scientific notation is refused: its last digits are
    gone, so it would be read as another id (or as one shared by several rows)."""
    def parse(value: str) -> str:
        value = clean_id(value)
        if len(value) > limit:
            raise BadValue(N_("Longer than %(n)d characters.", n=limit))
        if "+" in value and EXCEL_SCIENTIFIC.fullmatch(value):
            raise BadValue(N_("Excel shortened this id to a number in scientific notation, so "
                              "its last digits are lost. Export the file from the CRM again, "
                              "and format the column as text if you open it in Excel."))
        return value

    return parse


def text_of(limit: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if len(value) > limit:
            raise BadValue(N_("Longer than %(n)d characters.", n=limit))
        return value

    parse.free_text = True  # type: ignore[attr-defined]  # see NO_VALUE_MARKS
    return parse


# What exports write in a cell that has no value: a dash, N/A, 无 (none), 暂无 (none yet).
# Read as a blank cell in every column but those of free text (a name or an explanation may
# be 无). A lone hyphen is left out in amount columns, where Excel's accounting format writes
# it for 0, so it stays a problem there rather than a blank or a zero.
NO_VALUE_MARKS = frozenset({"—", "——", "–", "--", "－－", "-", "－", "/", "／", "n/a", "无",
                            "暂无", "null"})
HYPHENS = frozenset({"-", "－"})


def means_no_value(raw: str, parse: Callable[[str], Any], amount: bool) -> bool:
    """Whether a cell (of at most four characters: the longest mark's) holds only a mark for
    no value (NO_VALUE_MARKS) in a column that is not free text."""
    return (raw.lower() in NO_VALUE_MARKS
            and not getattr(parse, "free_text", False) and not (amount and raw in HYPHENS))


def parse_username(value: str) -> str:
    """A username as the users' own form takes it (username_key, username_problem)."""
    username = username_key(value)
    problem = username_problem(username)
    if problem is not None:
        raise BadValue(problem)
    return username


# The ways a day is written, read without strptime (a large file has hundreds of thousands of
# them). Without separators it takes all eight digits: strptime's %Y%m%d reads 202611 as
# 2026-1-1 and 2026111 as 2026-11-1, where 2026-1-11 may be meant.
PLAIN_DATE = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})")
# 号 for 日 is how many type a day by hand (2026年3月5号), 號 in traditional characters.
CHINESE_DATE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})[日号號]")
# Typesetting puts spaces between digits and Chinese (2026 年 3 月 5 日), as Word does.
SPACED_CHINESE_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*([日号號])")
SPACED_CHINESE_MONTH = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(份?)")
COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")


def ascii_width(text: str) -> str:
    """A date's text with full-width digits, punctuation and spaces as ASCII (NFKC)."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text).strip()


# What may follow a day in a cell, and is dropped: a time of day (14:30, 14:30:00.000,
# 下午 2:30, 2:30 PM, 14时30分, with a zone such as Z or +08:00) and a weekday (星期四, 周四, Thu),
# as exports write a moment. Anything else (2026-03-05 至 2026-04-01, 2026-03-05 foo) is not
# a date: a range or a note must not pass for its first day.
_WEEKDAY = (r"(?:星期|周|礼拜)[一二三四五六日天]|(?:mon|tue|wed|thu|fri|sat|sun)"
            r"(?:day|sday|nesday|rsday|urday)?\.?")
_TIME_OF_DAY = (r"(?:(?P<part_before>上午|下午|凌晨|早上|中午|晚上|am|pm)\s*)?"
                r"(?:(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.\d+)?)?"
                r"|(?P<chinese_hour>\d{1,2})时(?:(?P<chinese_minute>\d{1,2})分(?:\d{1,2}秒)?)?)"
                r"(?:\s*(?P<part_after>am|pm))?"
                r"(?:\s*(?P<offset>z|(?:utc|gmt)(?:\s*[+-]\d{1,2}(?::?\d{2})?)?|[+-]\d{2}:?\d{2}))?")
AFTER_THE_DAY = re.compile(rf"(?:[(（]?(?:{_WEEKDAY})[)）]?\s*)?(?:{_TIME_OF_DAY})?"
                           rf"(?:\s*[(（]?(?:{_WEEKDAY})[)）]?)?", re.IGNORECASE)

# The parts of the day the hours after them count in: 下午 2:30 and 2:30 PM are 14:30, 凌晨 12:30
# and 12:30 AM are 00:30.
_AFTERNOON = frozenset(("下午", "晚上", "pm"))
_MORNING = frozenset(("上午", "凌晨", "早上", "am"))
_ZONE_OFFSET = re.compile(r"([+-])(\d{1,2}):?(\d{2})?")


def written_moment(moment: re.Match) -> tuple[time, timedelta | None] | None:
    """The time of day and the zone's offset (None when it names no zone) that `moment`
    (AFTER_THE_DAY's match after a day) writes, or None when it writes no time of day; a time
    that no clock shows (25:61, 14:75, an offset of a day or more) is not a date."""
    if not (moment["hour"] or moment["chinese_hour"]):
        return None
    hour = int(moment["hour"] or moment["chinese_hour"])
    minute = int(moment["minute"] or moment["chinese_minute"] or 0)
    second = int(moment["second"] or 0)
    part = (moment["part_before"] or moment["part_after"] or "").lower()
    if part in _AFTERNOON or (part == "中午" and hour < 11):
        hour = hour + 12 if hour < 12 else hour
    elif part in _MORNING and hour == 12:
        hour = 0
    offset = None
    if written := moment["offset"]:
        offset = timedelta()
        if found := _ZONE_OFFSET.search(written):
            sign = -1 if found[1] == "-" else 1
            offset = sign * timedelta(hours=int(found[2]), minutes=int(found[3] or 0))
    try:
        at = time(hour, minute, second, tzinfo=None if offset is None else timezone(offset))
    except ValueError:  # 25:00, 14:75, an offset of a day or more
        raise BadValue(N_("Not a date; write it as YYYY-MM-DD.")) from None
    return at.replace(tzinfo=None), offset


def zone_day(day: date, moment: re.Match, zone: tzinfo) -> date:
    """The day in `zone` of the moment `moment` (AFTER_THE_DAY's match after `day`) writes,
    when it names its own zone (Z, UTC, GMT+8, +08:00); `day` as written when it does not.

    A CRM that exports moments in UTC writes a deal closed at 07:30 in Beijing on 6 March as
    2026-03-05T23:30:00Z: the department's day is the 6th.
    """
    written = written_moment(moment)
    if written is None or written[1] is None:
        return day
    at, offset = written
    return datetime.combine(day, at, timezone(offset)).astimezone(zone).date()


# The years a date in an export may fall in. A hire date, an opportunity or a sighting outside
# them is a typing slip or a placeholder (0001-01-01, 9999-12-31); the first and last years
# also overflow when a day is moved between time zones.
FIRST_YEAR = 1900
LAST_YEAR = 2100


def sensible_day(day: date) -> date:
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise BadValue(N_("Enter a date between the years %(first)d and %(last)d.",
                          first=FIRST_YEAR, last=LAST_YEAR))
    return day


# A day as Excel counts them, which a date cell shows (and a CSV saved from it holds) once its
# date format is lost: 45296 is 2024-01-05, 45296.5729 that day at 13:45. Five digits from
# 30000 (1982-02-18) only: a year alone (2024), 20261 (a month cut short?) or 20240105 is no
# such number.
EXCEL_SERIAL_DAY = re.compile(r"([3-9]\d{4})(?:\.\d+)?")
EXCEL_DAY_ZERO = date(1899, 12, 30)  # serial 1 is 1900-01-01, past Excel's 1900-02-29
# A workbook saved with the 1904 date system (Excel for Mac once, or the option set by hand)
# counts its days from 1904-01-01: its 43834 is the 1900 system's 45296, 2024-01-05.
EXCEL_1904_DAY_ZERO = date(1904, 1, 1)


@lru_cache(maxsize=8192)  # a file's dates repeat: a few years of days
def parse_date(value: str, day_zero: date = EXCEL_DAY_ZERO, zone: tzinfo | None = None) -> date:
    """A day written 2026-03-05 (or with / or . , or 20260305) or 2026年3月5日 (or 5号, or
    with spaces: 2026 年 3 月 5 日), in either width, or as Excel's serial number of the day
    (45296); a time of day or a weekday after it (2026-03-05 14:30, 2026年3月5日 星期四
    14:30:00) is dropped; anything else after it is not a date. A moment that names its zone
    (2026-03-05T23:30:00Z, 2026-03-05 14:30 GMT+8) is the day it falls on in `zone`, the
    department's time zone, when one is given (see `zone_day`). A serial number counts from
    `day_zero`, the day before serial 1 in the workbook's date system (EXCEL_1904_DAY_ZERO:
    1904's)."""
    text = ascii_width(value.strip())
    if serial := EXCEL_SERIAL_DAY.fullmatch(text):
        return sensible_day(day_zero + timedelta(days=int(serial[1])))
    if spaced := SPACED_CHINESE_DATE.match(text):
        text = "{}年{}月{}{}".format(*spaced.groups()) + text[spaced.end():]
    day, _, rest = text.partition(" ")
    day, _, moment = day.partition("T")  # 2026-03-05T14:30:00
    rest = f"{moment} {rest}".strip()
    after = AFTER_THE_DAY.fullmatch(rest) if rest else None
    if rest and after is None:
        raise BadValue(N_("Not a date; write it as YYYY-MM-DD."))
    text = day
    match = PLAIN_DATE.fullmatch(text)
    parts = (match[1], match[3], match[4]) if match else None
    if parts is None and (match := CHINESE_DATE.fullmatch(text) or COMPACT_DATE.fullmatch(text)):
        parts = match.groups()
    if parts:
        year, month, day_of_month = map(int, parts)
        try:
            day = date(year, month, day_of_month)
        except ValueError:
            raise BadValue(no_such_day(year, month)) from None
        if after is not None:
            if zone is not None:
                day = zone_day(sensible_day(day), after, zone)
            else:
                written_moment(after)  # a time no clock shows makes the cell no date
        return sensible_day(day)
    raise BadValue(N_("Not a date; write it as YYYY-MM-DD."))


# The earliest hire date taken, by the user form and the reps import alike (services.users
# checks it against today). Nobody hired before it still sells for the department: an earlier
# day is a typing slip or a placeholder (1900-01-01), counted as decades of tenure.
EARLIEST_HIRE_DATE = date(1950, 1, 1)
LEADING_YEAR = re.compile(r"(\d{4})")


def parse_hire_date(value: str, day_zero: date = EXCEL_DAY_ZERO,
                    zone: tzinfo | None = None) -> date:
    """A hire date as `parse_date` reads a day; one whose year is beyond any date's range
    (9999-12-31, 1899-01-01) is refused with the hire date's own range, as the user form says
    it, rather than the range of every date."""
    try:
        return parse_date(value, day_zero, zone)
    except BadValue:
        year = LEADING_YEAR.match(ascii_width(value.strip()))
        if year is not None and not FIRST_YEAR <= int(year[1]) <= LAST_YEAR:
            raise BadValue(N_("Enter a hire date between %(earliest)s and today.",
                              earliest=EARLIEST_HIRE_DATE)) from None
        raise


def no_such_day(year: int, month: int) -> Text:
    """Why a date written as a date names no day (2026-02-30, 2026-13-05): a typing slip the
    cell's form does not explain."""
    if not 1 <= month <= 12:
        return N_("No such day: there is no month %(month)d.", month=month)
    if year < 1:
        return N_("Not a date; write it as YYYY-MM-DD.")
    return N_("No such day: %(month)s has %(days)d days.", month=f"{year}-{month:02d}",
              days=calendar.monthrange(year, month)[1])


def parse_month(value: str, day_zero: date = EXCEL_DAY_ZERO, zone: tzinfo | None = None
                ) -> date:
    text = ascii_width(value.strip())
    if spaced := SPACED_CHINESE_MONTH.fullmatch(text):
        text = "{}年{}月{}".format(*spaced.groups())
    match = (re.fullmatch(r"(\d{4})[-/.](\d{1,2})", text)
             or re.fullmatch(r"(\d{4})年(\d{1,2})月份?", text)  # 2026年3月份, as people say it
             or re.fullmatch(r"(\d{4})(\d{2})", text))  # 202603, as reports write a month
    if match:
        year, month = int(match.group(1)), int(match.group(2))
        if 1 <= month <= 12:
            return sensible_day(date(year, month, 1))
        raise BadValue(N_("No such month: there is no month %(month)d.", month=month))
    try:
        day = parse_date(text, day_zero, zone)
    except BadValue:
        raise BadValue(N_("Not a month; write it as YYYY-MM.")) from None
    return day.replace(day=1)


# A unit written in a cell: "120万" is 1,200,000 yuan whatever the column's unit.
# The units a cell may write after its amount, as a column's name may (HEADER_UNITS), the
# longest first: 2千万 is 20,000,000, not 2千 of 万.
CELL_UNITS = (("千万元", 10_000_000), ("百万元", 1_000_000), ("十万元", 100_000),
              ("亿元", 100_000_000), ("万元", 10_000), ("千元", 1_000), ("千万", 10_000_000),
              ("百万", 1_000_000), ("十万", 100_000), ("亿", 100_000_000), ("万", 10_000),
              ("千", 1_000), ("元", 1))
# Words for the yuan an amount may carry, in a cell (¥1,000, RMB 1000, CNY 1,000, 1000元人民币)
# as in a column's name (年度金额(RMB万元), (万元人民币), (¥)); compared in lower case, and
# full-width as half-width (￥ is ¥). Cells and names take the same ones.
CURRENCY_WORDS = ("人民币", "rmb", "cny", "yuan", "¥")


# The largest amount a row can hold: amounts are stored in INTEGER columns, which PostgreSQL
# keeps to 32 bits (SQLite would store more, so a file must be refused alike on both).
MAX_YUAN = 2**31 - 1
YUAN_NOISE = Decimal("0.000001")
# Digits grouped by three, with commas or with spaces (1,200,000 or 1 200 000), perhaps with a
# fraction; and digits separated otherwise (12,00 may be twelve written with a decimal comma,
# 1,2345 a typing slip), which are refused rather than read as 1200 and 12345.
THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+")  # 1,200,000
AMOUNT_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?: \d{3})+(?:\.\d+)?")
GROUPED_BADLY = re.compile(r"(?=.*\d[, ]\d)(?!(?:" + AMOUNT_GROUPED.pattern + r")$)[\d, .]+")


# The unit of a column of amounts in 分 (fen), a hundredth of a yuan, as a payment system's
# export writes them (金额(分)): read as whole fen, stored as yuan rounded half up.
FEN = Fraction(1, 100)
Unit = int | Fraction  # yuan per unit of an amount column


def parse_yuan(value: str, unit: Unit = 1) -> int:
    """Whole yuan from "1,200,000", "¥1,200,000", "CNY 1,200,000", "120万" or, in a column of
    `unit` yuan, "1.2"; in a column of fen (`FEN`), see `yuan_of_fen`. A fraction of a yuan
    is rounded half up: "1,234,567.89" is 1,234,568 yuan (see `yuan_read`)."""
    return yuan_read(value, unit)[0]


def yuan_read(value: str, unit: Unit = 1) -> tuple[int, bool]:
    """`parse_yuan`'s whole yuan, and whether a fraction of a yuan was rounded away to give
    them (the noise of a computed amount aside, and a column in fen aside: its amounts are
    always rounded to yuan, as its unit says)."""
    if isinstance(unit, Fraction):  # FEN, the one unit below a yuan
        return yuan_of_fen(value), False
    if value.isascii() and (value.isdigit() and len(value) <= 13
                            or THOUSANDS.fullmatch(value)):  # most cells of an export
        number = int(value.replace(",", "")) * unit
        if number > MAX_YUAN:
            raise BadValue(N_("Too large for an amount in yuan."))
        return number, False
    text = without_currency(" ".join(unicodedata.normalize("NFKC", value).lower().split()))
    for suffix, cell_unit in CELL_UNITS:
        if text.endswith(suffix):
            text, unit = without_currency(text.removesuffix(suffix).rstrip()), cell_unit
            break
    text = ungrouped(text)
    if not re.fullmatch(r"\d+(\.\d+)?", text):
        if re.fullmatch(r"-\s*\d[\d,]*(\.\d+)?", text):  # a number, but below zero
            raise BadValue(N_("An amount cannot be below 0; write 0 or more."))
        if unit != 1:  # a column of 万元, say: 1.5 is read, as a whole number of yuan is not
            raise BadValue(N_("Not an amount; write a number of at least 0 (this column is "
                              "read in units of %(unit)s yuan).", unit=f"{unit:,}"))
        raise BadValue(N_("Not an amount in yuan; write a whole number of at least 0."))
    number = Decimal(text) * unit
    whole = number.to_integral_value(rounding=ROUND_HALF_UP)
    if whole > MAX_YUAN:
        raise BadValue(N_("Too large for an amount in yuan."))
    # Within a millionth of a yuan of a whole number is the noise of a computed amount
    # (Excel's =1200*1.1 is 1320.0000000000002); a real fraction of a yuan (fen an export
    # carries, 1,234,567.89) is rounded away, and the import's report says where.
    return int(whole), abs(number - whole) > YUAN_NOISE


def yuan_of_fen(value: str) -> int:
    """Whole yuan, rounded half up, from an amount in fen: "123,450" and "123450.00" are 1,235
    yuan. A cell that names its own unit ("120万", "1,234元") is read in that unit."""
    if value.isascii() and value.isdigit() and len(value) <= 15:  # most cells of an export
        fen = int(value)
    else:
        text = without_currency(" ".join(unicodedata.normalize("NFKC", value).lower().split()))
        if any(text.endswith(suffix) for suffix, _ in CELL_UNITS):
            return parse_yuan(value)
        text = ungrouped(text)
        if not re.fullmatch(r"\d+(\.\d+)?", text):
            raise BadValue(N_("Not an amount in fen (分); write a whole number of at least 0."))
        number = Decimal(text)
        if number > MAX_YUAN * 100:
            raise BadValue(N_("Too large for an amount in yuan."))
        fen = int(number.to_integral_value())
        if abs(number - fen) > YUAN_NOISE:
            raise BadValue(N_("Amounts in fen (分) are whole numbers; write one without a "
                              "fraction."))
    yuan = (fen + 50) // 100
    if yuan > MAX_YUAN:
        raise BadValue(N_("Too large for an amount in yuan."))
    return yuan


def ungrouped(text: str) -> str:
    """An amount's digits without the commas or spaces that group them by three (1,200,000);
    BadValue for digits separated otherwise (12,00 may be twelve with a decimal comma)."""
    if "," in text or " " in text:
        if GROUPED_BADLY.fullmatch(text):
            raise BadValue(N_("Commas or spaces in an amount group its digits by three "
                              "(1,200,000); write it so, or without them."))
        return re.sub(r"[, ]", "", text) if AMOUNT_GROUPED.fullmatch(text) else text
    return text


def without_currency(text: str) -> str:
    """An amount's text without the currency word before it and the one after it, if any, and
    the spaces beside them."""
    for word in CURRENCY_WORDS:
        if text.startswith(word):
            text = text.removeprefix(word).lstrip()
            break
    for word in CURRENCY_WORDS:
        if text.endswith(word):
            return text.removesuffix(word).rstrip()
    return text


def as_named(values: dict[str, str]) -> dict[str, Text | str]:
    """Code -> how a message names it: its first Chinese alias with the code beside it in the
    page's brackets (民营 (private), 民营（private） on a Chinese page), or the code alone; in
    the order of `values`."""
    named: dict[str, Text | str] = {}
    for alias, code in values.items():
        if not alias.isascii():
            named.setdefault(code, N_("%(text)s (%(note)s)", text=alias, note=code))
    for code in values.values():
        named.setdefault(code, code)
    return named


def as_written(values: dict[str, str]) -> dict[str, str]:
    """as_named's names as plain text (民营 (private)), for a report's column of values read."""
    return {code: str(name) for code, name in as_named(values).items()}


# The marks that join the words of a CRM's value (方案/报价, 谈判、审核, Proposal/Price Quote,
# Id. Decision Makers): a coded value compares without them, as it does without spaces.
CHOICE_JOINERS = str.maketrans("", "", "/、&·.")


def choice_key(value: str) -> str:
    """How a coded value compares: as a header does (`normalise`), without CHOICE_JOINERS."""
    return normalise(value).translate(CHOICE_JOINERS)


def choice(values: dict[str, str]) -> Callable[[str], str]:
    """A parser accepting the codes and their aliases (case-insensitive), giving the code.

    An unknown value is told the accepted ones as a CRM writes them: each code's first
    Chinese alias with the code beside it (民营 (private)), in the order of `values`, listed
    as the page's language lists them."""
    lookup = {choice_key(alias): code for alias, code in values.items()}
    lookup.update({choice_key(code): code for code in set(values.values())})
    accepted = Joined(as_named(values).values(), separator=COMMA)

    def parse(value: str) -> str:
        code = lookup.get(value) or lookup.get(choice_key(value))
        if code is None:
            raise BadValue(N_("Unknown value; use one of: %(codes)s.", codes=accepted))
        return code

    return parse


def title_or_person(titles: dict[str, str]) -> Callable[[str], str]:
    """An executive sponsor: a title's code (from its aliases), or else the text as written,
    naming a person (username, employee id or name) that the importer looks up."""
    title = choice(titles)
    person = text_of(64)

    def parse(value: str) -> str:
        try:
            return title(value)
        except BadValue:
            return person(value.strip())

    return parse


# The first Chinese alias of each code is the one a refusal lists; the others are the ones HR
# and CRM exports write: 试用 (on probation) and 正式 are employed, as 在职 is.
REP_STATUSES = {"active": "active", "on_leave": "on_leave", "left": "left",
                "在职": "active", "休假": "on_leave", "请假": "on_leave", "离职": "left",
                "在岗": "active", "试用": "active", "试用期": "active", "正式": "active",
                "产假": "on_leave", "病假": "on_leave", "停薪留职": "on_leave",
                "已离职": "left"}
OWNERSHIP_TYPES = {"民营": "private", "私营": "private", "民营企业": "private",
                   "私营企业": "private", "国有": "state_owned", "国有企业": "state_owned",
                   "国企": "state_owned", "央企": "state_owned", "中外合资": "joint_venture",
                   "合资企业": "joint_venture", "政府机关": "government", "事业单位": "government",
                   "政府部门": "government", "上市公司": "listed", "上市企业": "listed",
                   "合资": "joint_venture", "政府": "government",
                   "上市": "listed", "民企": "private", "民营公司": "private",
                   "国有控股": "state_owned", "国有控股企业": "state_owned",
                   "地方国企": "state_owned", "地方国有企业": "state_owned",
                   "中央企业": "state_owned", "中外合资企业": "joint_venture",
                   "政府单位": "government", "机关单位": "government",
                   "private": "private", "state_owned": "state_owned",
                   "joint_venture": "joint_venture", "government": "government",
                   "listed": "listed"}
EXECUTIVE_SPONSORS = {"总裁": "president", "老板": "president", "董事长": "president",
                      "KA副总裁": "ka_vice_president",
                      "副总裁": "ka_vice_president", "分公司总经理": "branch_general_manager",
                      "president": "president", "ka_vice_president": "ka_vice_president",
                      "branch_general_manager": "branch_general_manager"}
STAGES = {"潜在客户": "potential", "潜在": "potential", "意向客户": "intent", "意向": "intent",
          "方案阶段": "proposal", "方案": "proposal", "商务谈判": "negotiation",
          "谈判": "negotiation", "销售实现": "won", "赢单": "won", "成交": "won",
          "丢单": "lost", "输单": "lost", "失败": "lost", "potential": "potential",
          "intent": "intent", "proposal": "proposal", "negotiation": "negotiation",
          "won": "won", "closed_won": "won", "lost": "lost",
          # As CRMs name the same stages: 初步接洽 ... 赢单, and Closed Won / Closed Lost.
          "初步接洽": "potential", "需求确认": "intent", "方案报价": "proposal",
          "报价": "proposal", "谈判审核": "negotiation", "已成交": "won", "签约": "won",
          "已签约": "won", "已输单": "lost", "已丢单": "lost", "closed_lost": "lost",
          # 销售易 and 纷享销客's default stages (验证客户, 需求确定, 方案/报价, 谈判/审核, 赢单, 输单);
          # Salesforce's, in English and Chinese, folded in their order onto the funnel:
          # Prospecting and Qualification are potential; Needs Analysis up to Perception
          # Analysis, intent; Proposal/Price Quote, proposal; Negotiation/Review, negotiation.
          "验证客户": "potential", "需求确定": "intent",
          "prospecting": "potential", "qualification": "potential", "资格审查": "potential",
          "needs analysis": "intent", "需求分析": "intent", "value proposition": "intent",
          "价值主张": "intent", "id. decision makers": "intent", "确定决策者": "intent",
          "确定决策人": "intent", "perception analysis": "intent", "感知分析": "intent",
          "proposal/price quote": "proposal", "提案/报价": "proposal",
          "negotiation/review": "negotiation", "谈判/审查": "negotiation",
          "结束并赢单": "won", "结束并输单": "lost"}
STAGE_NAMES = as_written(STAGES)
STAGES_NAMED = as_named(STAGES)
CLOSED_STAGES = frozenset({"won", "lost"})
# The funnel's stages in the order a deal moves through them, won and lost at its end.
STAGE_ORDER = ("potential", "intent", "proposal", "negotiation", "won", "lost")
# The handbook's kinds (logo, banner, text); job_post stays readable for older files.
AD_TYPES = {"标志": "logo", "标识": "logo", "横幅": "banner", "横幅广告": "banner",
            "文字": "text", "文字广告": "text", "文字链": "text", "文字链接": "text",
            "招聘广告": "job_post", "职位广告": "job_post", "logo": "logo", "banner": "banner",
            "text": "text", "job_post": "job_post"}
PAGE_AREAS = {"首页": "home_page", "主页": "home_page", "专题": "special_section",
              "专题页": "special_section", "专栏": "special_section", "专区": "special_section",
              "其他": "other", "其它": "other", "其他页面": "other", "其它页面": "other",
              "home page": "home_page",
              "home_page": "home_page", "special section": "special_section",
              "special_section": "special_section", "other": "other"}
INCIDENT_STATUSES = {"待说明": "open", "未说明": "open", "已说明": "explained",
                     "已接受": "accepted", "说明接受": "accepted", "成立": "upheld",
                     "维持": "upheld", "open": "open", "explained": "explained",
                     "accepted": "accepted", "upheld": "upheld"}
CONTACT_ROLES = ("decision_maker", "user", "purchaser", "contact")

parse_rep_status = choice(REP_STATUSES)
_stage_named = choice(STAGES)
# The handbook's win probability of each funnel stage, in percent (lost: 0), as CRM exports
# write it beside the stage (商务谈判(70%)) or in its place (70%).
STAGE_PERCENTS = {"potential": 10, "intent": 30, "proposal": 50, "negotiation": 70,
                  "won": 100, "lost": 0}
# A stage written with its probability: the name (or nothing), then the percentage, perhaps
# in brackets (compared after NFKC, so full-width brackets and ％ are these).
STAGE_WITH_PERCENT = re.compile(r"(.*?)[\s(\[:-]*(\d{1,3})\s*%[)\]]?")


def parse_stage(value: str) -> str:
    """A funnel stage by any of its names (STAGES), written alone or with its probability
    (商务谈判(70%), 意向客户 30%), or by its probability alone (70%); a probability that is
    not the stage's is refused, naming the stage's."""
    try:
        return _stage_named(value)
    except BadValue:
        written = STAGE_WITH_PERCENT.fullmatch(unicodedata.normalize("NFKC", value).strip())
        if written is None:
            raise
    name, percent = written[1].strip(), int(written[2])
    if not name:
        code = next((code for code, share in STAGE_PERCENTS.items() if share == percent), None)
        if code is None:
            raise BadValue(N_("No funnel stage has a probability of %(percent)d%%: the stages "
                              "are 10%%, 30%%, 50%%, 70%% and 100%% (won).", percent=percent))
        return code
    code = _stage_named(name)
    if STAGE_PERCENTS[code] != percent:
        raise BadValue(N_("%(stage)s has a probability of %(expected)d%% in the funnel, not "
                          "%(percent)d%%.", stage=STAGES_NAMED[code],
                          expected=STAGE_PERCENTS[code], percent=percent))
    return code


def parse_stage_history(value: str, day_zero: date = EXCEL_DAY_ZERO,
                        zone: tzinfo | None = None) -> tuple[tuple[str, date], ...]:
    """'potential:2026-01-05;intent:2026-02-01' -> ((stage, date), ...), oldest first."""
    history = []
    parts = value.split(";") if "；" not in value and "\n" not in value else re.split(
        r"[;；\n]", value)
    for part in parts:
        if not part.strip():
            continue
        stage_text, separator, date_text = part.replace("：", ":").partition(":")
        if not separator:
            raise BadValue(N_("Write the history as stage:YYYY-MM-DD;stage:YYYY-MM-DD."))
        try:
            history.append((parse_stage(stage_text), parse_date(date_text, day_zero, zone)))
        except BadValue as error:
            raise BadValue(N_("'%(part)s': %(reason)s", part=part.strip(), reason=error.message)) from None
    if [when for _, when in history] != sorted(when for _, when in history):
        raise BadValue(N_("List the stage changes oldest first."))
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
    ImportKind.BRANCHES: (
        Column("code", ("branch code", "分公司编码", "分公司代码"), id_of(32)),
        Column("name", ("branch name", "分公司名称", "名称"), text_of(100)),
        Column("name_zh", ("chinese name", "中文名称", "中文名"), text_of(100), required=False),
    ),
    ImportKind.REPS: (
        Column("external_id", ("external id", "员工编号", "工号", "外部编号"), id_of(64)),
        Column("username", ("用户名", "登录名"), parse_username),
        # Every cell is read as clean_cell leaves it, invisible characters gone: a name of
        # only those is as blank as an empty cell, and a required one is refused as such.
        Column("name", ("display name", "姓名", "销售姓名"), text_of(100)),
        Column("branch", ("branch code", "分公司", "分公司代码"), id_of(32)),
        Column("hire_date", ("hired on", "入职日期"), parse_hire_date, required=False),
        Column("status", ("状态", "在职状态"), parse_rep_status, required=False,
               default="active"),
    ),
    ImportKind.ACCOUNTS: (
        Column("external_id", ("account id", "external id", "客户编号"), id_of(64)),
        Column("name", ("account name", "客户名称"), text_of(200)),
        Column("industry", ("行业",), text_of(64)),
        Column("ownership_type", ("ownership", "所有制", "所有制类型"), choice(OWNERSHIP_TYPES)),
        Column("branch", ("branch code", "分公司", "分公司代码"), id_of(32)),
        Column("annual_value_yuan", ("annual value", "annual value yuan", "年度金额",
                                     "年度价值"), parse_yuan),
        Column("owner", ("owner rep", "rep", "所属销售", "负责销售"), id_of(64), required=False),
        Column("executive_sponsor", ("sponsor", "老板负责", "负责高管"),
               title_or_person(EXECUTIVE_SPONSORS), required=False),
        Column("decision_maker", ("决策人",), text_of(100), required=False),
        Column("user", ("使用人",), text_of(100), required=False),
        Column("purchaser", ("采购人",), text_of(100), required=False),
        Column("contact", ("接口人",), text_of(100), required=False),
    ),
    ImportKind.OPPORTUNITIES: (
        Column("external_id", ("opportunity id", "external id", "商机编号"), id_of(64)),
        Column("account", ("account id", "客户编号"), id_of(64)),
        Column("rep", ("销售", "所属销售"), id_of(64)),
        Column("amount_yuan", ("amount", "金额", "商机金额"), parse_yuan),
        Column("stage", ("阶段", "销售阶段"), parse_stage),
        Column("opened", ("opened date", "opened on", "创建日期", "开始日期"), parse_date),
        Column("closed", ("closed date", "closed on", "关闭日期", "结束日期"), parse_date,
               required=False),
        Column("stage_history", ("history", "阶段历史"), parse_stage_history, required=False,
               default=()),
    ),
    ImportKind.FORECASTS: (
        Column("rep", ("销售", "所属销售"), id_of(64)),
        Column("month", ("月份",), parse_month),
        Column("forecast_yuan", ("forecast", "预测金额", "月度预测"), parse_yuan),
        Column("actual_yuan", ("actual", "实际金额", "实际完成"), parse_yuan, required=False),
    ),
    ImportKind.INCIDENTS: (
        Column("external_id", ("incident id", "external id", "事件编号"), id_of(64)),
        Column("account", ("account id", "客户编号"), id_of(64)),
        Column("rep", ("销售", "所属销售"), id_of(64)),
        Column("competitor_site", ("competitor", "竞争对手网站", "竞品网站"), text_of(200)),
        Column("seen", ("date seen", "seen on", "发现日期"), parse_date),
        Column("ad_type", ("ad", "广告类型"), choice(AD_TYPES)),
        Column("page_area", ("page area", "页面位置", "广告位置"), choice(PAGE_AREAS), required=False,
               default="home_page"),
        Column("evidence_url", ("evidence url", "证据链接", "截图链接"), text_of(500), required=False,
               default=""),
        Column("status", ("状态",), choice(INCIDENT_STATUSES), required=False, default="open"),
        Column("explanation", ("说明", "情况说明"), parse_text, required=False, default=""),
    ),
}

# The columns whose values identify a row; a file may not give the same key twice.
KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    ImportKind.BRANCHES: (("code",),),
    ImportKind.REPS: (("external_id",), ("username",)),
    ImportKind.ACCOUNTS: (("external_id",),),
    ImportKind.OPPORTUNITIES: (("external_id",),),
    ImportKind.FORECASTS: (("rep", "month"),),
    ImportKind.INCIDENTS: (("external_id",),),
}


# The cells that identify a row of each kind: a totals row leaves them empty (or holds its word
# there); a row that gives one is never a totals row.
ROW_IDS: dict[str, tuple[str, ...]] = {
    ImportKind.BRANCHES: ("code",),
    ImportKind.REPS: ("external_id", "username"),
    ImportKind.ACCOUNTS: ("external_id",),
    ImportKind.OPPORTUNITIES: ("external_id",),
    ImportKind.FORECASTS: ("rep",),
    ImportKind.INCIDENTS: ("external_id",),
}
# What a totals row says it is (合计 under a whole export, 小计 under each group), compared as
# normalise leaves it, a colon after it dropped; and the first characters that may begin it.
TOTALS_WORDS = frozenset({"合计", "总计", "小计", "共计", "汇总", "total", "totals", "subtotal",
                          "subtotals", "grandtotal", "grandtotals"})
TOTALS_INITIALS = frozenset("合总小共汇TtＴｔSsＳｓGgＧｇ")
# A pivot table's subtotal, as Excel writes it in the group's cell: the group's value, a space
# and 汇总 (Total in English): rep01 汇总, R1001 Total. Compared NFKC-folded and lower-cased.
PIVOT_SUBTOTAL = re.compile(r"\S.*\s(?:汇\s*总|total)", re.S)
PIVOT_ENDINGS = ("汇总", "Total", "total", "TOTAL", "Ｔｏｔａｌ", "ｔｏｔａｌ")
# The word with what an export writes after it (合计 | 5人, 合计：5人, Total: 7,760,000, 小计（3家）),
# in a cell NFKC-folded and lower-cased: after the word a colon, bar, bracket, comma or digit,
# perhaps after spaces. A letter right after it makes a name (合计科技有限公司, Total Solutions).
TOTALS_WITH_TEXT = re.compile(
    r"(?:[合总小共]\s*计|(?:sub\s*-?\s*|grand\s*)?totals?)\s*[:|(\[【,;/、=\d].*", re.S)


# How many rows a totals row sums, which staff lists put in an id column (合计 | 5人): a number
# with a counting word after it, 共 or 计 before it allowed. No id ends in such a word.
COUNT_WORDS = "人名个家条项位户笔单"
ROW_COUNT = re.compile(rf"[共计]?\d[\d,]*[{COUNT_WORDS}]")


def is_totals_word(cell: str) -> bool:
    """Whether a cell (cleaned) says its row is a totals row: the word alone, any case or
    width, spaced or not (合 计, Grand total), or followed by what the export adds (合计 | 5人);
    or a pivot table's subtotal of a group (rep01 汇总: PIVOT_SUBTOTAL)."""
    if cell[:1] not in TOTALS_INITIALS:
        return cell.endswith(PIVOT_ENDINGS) and PIVOT_SUBTOTAL.fullmatch(
            unicodedata.normalize("NFKC", cell).lower()) is not None
    return (normalise(cell).rstrip(":") in TOTALS_WORDS
            or TOTALS_WITH_TEXT.fullmatch(unicodedata.normalize("NFKC", cell).lower())
            is not None)


def is_row_count(cell: str) -> bool:
    return cell[-1] in COUNT_WORDS and ROW_COUNT.fullmatch(normalise(cell)) is not None


# A row whose cells may say it is a totals row, looked for in its cells joined: a quick test
# every row of a file's first pass takes (TotalsCells decides, once the mapping is known).
TOTALS_TEXT = re.compile(r"[合总小共][\s:：]*计|汇\s*总|[tTｔＴ][oOｏＯ][tTｔＴ][aAａＡ][lLｌＬ]")
# The most such rows a file's shape keeps; beyond them the count leaves totals rows in.
MAX_TOTALS_CANDIDATES = 1_000


def may_be_totals(record: Sequence[str]) -> bool:
    joined = "\x1f".join(map(str, record))
    # Every totals word holds 计, 汇 or an l: most rows hold none and need no search.
    return (("计" in joined or "汇" in joined or "l" in joined or "L" in joined
             or "ｌ" in joined or "Ｌ" in joined) and TOTALS_TEXT.search(joined) is not None)


# Notes an export writes below its table (导出人：张三 导出时间：2026-11-30, 注：金额单位为元,
# 数据来源：CRM): rows of one cell after the last row of the table, or of labels ending in a
# colon each followed by its value in the next cell (制表人： | 张三 | 审核人： | 李四), as
# `note_text` finds them. In the middle of the table such a row is read as a row (and refused
# for what it lacks), since it may be a row cut short.
MAX_NOTE_ROWS = 20  # a longer run of such rows at the end is read as rows
MAX_LABELLED_CELLS = 6  # the most cells a row of labels and their values holds
NOTE_SHOWN = 60  # the characters of a note the report keeps
# Rows above the column names that are skipped: a title merged across the sheet
# (2026年11月客户清单), lines an export adds under it (导出时间：2026-11-28), each a row of one
# cell that is no column name; and a row of headings over groups of columns (客户信息 over
# A:D, 归属 over E:G) right above them. More one-cell rows than this before any row of two
# cells or more is a file with no column names.
MAX_ROWS_ABOVE = 10


def note_text(record: Sequence[str], *, cleaned: bool = False) -> str | None:
    """The text of a record that reads as a note (a title above a table, a line below it): its
    one cell holding anything (`lone_cell`), or its cells when the first ends with a colon, as
    a label does, and it holds at most MAX_LABELLED_CELLS (制表人： | 张三 | 审核人： | 李四 reads
    制表人：张三 审核人：李四); else None. A totals row (合计： | 5人) is no note."""
    lone = lone_cell(record, cleaned=cleaned)
    if lone is not None:
        return lone
    cells = [cell for cell in (record if cleaned else map(clean_cell, record)) if cell]
    if (not 2 <= len(cells) <= MAX_LABELLED_CELLS or not cells[0].endswith((":", "："))
            or is_totals_word(cells[0])):
        return None
    text = cells[0]
    for before, cell in itertools.pairwise(cells):
        text += cell if before.endswith((":", "：")) else " " + cell
    return text


def lone_cell(record: Sequence[str], *, cleaned: bool = False) -> str | None:
    """The one cell of a record holding anything (cleaned), if that cell is not a totals word
    (a lone 合计 is a totals row); else None. `cleaned`: the cells are cleaned already."""
    found = None
    for cell in record:
        if cell and (cell := cell if cleaned else clean_cell(cell)):
            if found is not None:
                return None
            found = cell
    return None if found is None or is_totals_word(found) else found


@dataclass(frozen=True)
class TotalsCells:
    """Where a kind's row is told apart from a totals row: its id cells and its name cell."""

    ids: tuple[int, ...]
    names: tuple[int, ...]

    @classmethod
    def of(cls, kind: str, positions: Mapping[str, int]) -> TotalsCells:
        return cls(tuple(positions[name] for name in ROW_IDS[kind] if name in positions),
                   (positions["name"],) if "name" in positions else ())

    def word(self, record: Sequence[str]) -> str | None:
        """The word that makes a record (cells cleaned, not blank) a totals row, else None.

        Its first non-empty cell, an id cell or its name cell is 合计, 总计, 小计, 共计 or
        Total(s), and no id cell holds anything but that word or a count of rows (5人): a row
        with an id is read as a row.
        """
        width = len(record)
        for index in self.ids:  # every row passes here: the usual one leaves at its id
            if (index < width and record[index] and not is_totals_word(record[index])
                    and not is_row_count(record[index])):
                return None
        ids = [record[index] for index in self.ids if index < width and record[index]]
        first = next(cell for cell in record if cell)
        names = [record[index] for index in self.names if index < width]
        return next((cell for cell in (first, *ids, *names) if is_totals_word(cell)), None)


def header_map(kind: str) -> dict[str, Column]:
    """Each field's name and accepted headers, as `plain_key` gives them -> the field."""
    mapping: dict[str, Column] = {}
    for column in COLUMNS[kind]:
        for header in (column.name, *column.headers):
            mapping[plain_key(header)] = column
    return mapping


# --- mapping a file's columns onto the fields of a kind ----------------------------------------
#
# A header that is a field's name or one of its accepted headers (Column.headers) matches
# exactly and is read without asking. Any other header is matched by suggestion: the synonym
# table (names real CRM and Excel exports use), then similarity; the admin confirms the
# suggestion on the mapping step (or with --map on the command line).

# A rep's id under the names CRMs give the person who holds an account or a deal (负责人,
# 跟进人, 客户经理, 所有人): a CRM names that person in one column and gives the id in another,
# and the id keeps the field when a file has both (the names, in NAME_SYNONYMS, rank below).
_PERSON_IDS = tuple(f"{person}{id_word}" for person in ("负责人", "跟进人", "客户经理", "所有人",
                                                        "销售人员", "销售代表", "所属销售", "负责销售")
                    for id_word in ("工号", "编号", "员工编号", "id", "编码")) + (
    "owner id", "owner employee id", "sales rep id", "salesperson id", "employee no")

# Names real exports give each field, Chinese and English, beyond the accepted headers.
SHARED_SYNONYMS: dict[str, tuple[str, ...]] = {
    "branch": ("分公司", "所属分公司", "所属分支", "分支机构", "所属机构", "区域", "所属区域", "大区",
               "分公司名称", "分公司编码", "branch", "branch name", "region", "office"),
    "rep": ("销售", "所属销售", "负责销售", "销售编号", "销售工号", "工号", "员工编号", "销售代表",
            "销售人员", *_PERSON_IDS, "sales rep", "rep id", "owner", "salesperson",
            "employee id"),
    "account": ("客户编号", "客户ID", "客户编码", "客户代码", "客户号", "account", "account no",
                "customer id", "customer no", "client id"),
}
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    ImportKind.BRANCHES: {
        "code": ("分公司编码", "分公司代码", "编码", "代码", "编号", "code", "branch id"),
        "name": ("分公司名称", "分公司", "名称", "英文名称", "英文名", "name", "english name"),
        "name_zh": ("中文名称", "中文名", "分公司中文名", "分公司中文名称", "中文", "name zh",
                    "chinese"),
    },
    ImportKind.REPS: {
        "external_id": ("员工编号", "销售编号", "工号", "员工号", "编号", "员工ID", "人员编号",
                        "职工编号", "销售工号", "编码", "人员编码", "员工编码", "employee id", "employee no", "employee number",
                        "emp no", "emp id", "staff id", "staff no", "id"),
        "username": ("用户名", "登录名", "账号", "帐号", "登录账号", "系统账号", "用户账号",
                     "login", "login name", "user name", "user id", "account name"),
        "name": ("姓名", "销售姓名", "员工姓名", "名字", "人员姓名", "销售人员", "full name",
                 "employee name", "rep name", "name"),
        "branch": SHARED_SYNONYMS["branch"],
        "hire_date": ("入职日期", "入职时间", "入司日期", "入职", "hire date", "start date",
                      "date hired", "joined"),
        "status": ("状态", "在职状态", "员工状态", "人员状态", "任职状态", "在职情况", "是否在职",
                   "employment status"),
    },
    ImportKind.ACCOUNTS: {
        "external_id": ("客户编号", "客户ID", "客户编码", "客户代码", "客户号", "编号",
                        "customer id", "customer no", "client id", "account no"),
        "name": ("客户名称", "客户名", "公司名称", "企业名称", "单位名称", "客户全称",
                 "customer name", "company name", "company"),
        "industry": ("行业", "所属行业", "行业类别", "行业分类", "industry", "sector"),
        "ownership_type": ("所有制", "所有制类型", "企业性质", "公司性质", "单位性质", "企业类型",
                           "公司类型", "性质", "ownership type", "company type"),
        "branch": SHARED_SYNONYMS["branch"],
        "annual_value_yuan": ("年度金额", "年度金额(元)", "年度金额(万元)", "年销售额",
                              "年销售额(万元)", "年度价值", "年度销售额", "年合同额",
                              "年度合同金额", "年采购额", "年营业额", "年收入", "客户价值",
                              "annual revenue", "annual sales", "yearly value", "value"),
        "owner": ("所属销售", "负责销售", "销售代表", "归属销售", "销售负责人", "所属人", "销售",
                  *_PERSON_IDS, "account owner", "sales rep", "account manager", "owner"),
        "executive_sponsor": ("老板负责", "负责高管", "高管负责人", "老板负责人", "老板负责客户",
                              "高管", "负责领导", "高层负责人", "executive sponsor",
                              "executive"),
        "decision_maker": ("决策人", "决策者", "关键决策人", "decision maker"),
        "user": ("使用人", "使用者", "使用部门负责人", "end user", "user"),
        "purchaser": ("采购人", "采购", "采购负责人", "采购经理", "purchaser", "buyer",
                      "procurement"),
        "contact": ("接口人", "联系人", "对接人", "客户联系人", "contact", "contact person"),
    },
    ImportKind.OPPORTUNITIES: {
        "external_id": ("商机编号", "商机ID", "机会编号", "项目编号", "opportunity no",
                        "deal id"),
        "account": SHARED_SYNONYMS["account"],
        "rep": SHARED_SYNONYMS["rep"],
        "amount_yuan": ("金额", "商机金额", "预计金额", "项目金额", "合同金额", "预计成交金额",
                        "deal amount", "value"),
        "stage": ("阶段", "销售阶段", "商机阶段", "当前阶段", "sales stage"),
        "opened": ("创建日期", "开始日期", "创建时间", "立项日期", "opened", "created",
                   "created on", "create date"),
        "closed": ("关闭日期", "结束日期", "关闭时间", "成交日期", "结单日期", "实际成交日期",
                   "实际关闭日期", "实际结束日期", "赢单日期", "输单日期", "赢单/输单日期", "关单日期",
                   "closed", "close date", "actual close date"),
        "stage_history": ("阶段历史", "阶段记录", "阶段变更", "历史阶段", "stage history"),
    },
    ImportKind.FORECASTS: {
        "rep": SHARED_SYNONYMS["rep"],
        "month": ("月份", "月", "预测月份", "年月", "期间", "month", "period"),
        "forecast_yuan": ("预测金额", "月度预测", "预测", "预测销售额", "预测额",
                          "forecast amount"),
        "actual_yuan": ("实际金额", "实际完成", "实际", "实际销售额", "完成金额", "实际业绩",
                        "actual amount"),
    },
    ImportKind.INCIDENTS: {
        "external_id": ("事件编号", "问责编号", "事件ID", "记录编号", "incident no"),
        "account": SHARED_SYNONYMS["account"],
        "rep": SHARED_SYNONYMS["rep"],
        "competitor_site": ("竞争对手网站", "竞品网站", "竞争对手", "竞品网址", "对手网站", "网站",
                            "competitor site", "website"),
        "seen": ("发现日期", "发现时间", "日期", "监控日期", "seen", "date"),
        "ad_type": ("广告类型", "广告形式", "类型", "ad type"),
        "page_area": ("页面位置", "广告位置", "投放位置", "位置", "页面", "page area", "placement"),
        "evidence_url": ("证据链接", "截图链接", "证据", "链接", "网址链接", "evidence",
                         "evidence link", "screenshot url", "url"),
        "status": ("状态", "处理状态", "事件状态"),
        "explanation": ("说明", "情况说明", "解释", "销售说明", "备注说明", "note"),
    },
}

# Headers that name what a field may be written as in place of an id: an opportunity's or
# an incident's account by the account's name, a rep by the rep's name (the import looks a value no
# account or rep has as its id up as a name, when only one has it). Suggested below every
# synonym (NAME_SYNONYM_SCORE), so that a column holding the id keeps the field when the
# file has both.
_ACCOUNT_NAMES = ("客户名称", "客户名", "客户全称", "所属客户", "公司名称", "企业名称", "单位名称",
                  "customer name", "account name", "company name", "customer", "company")
NAME_SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    ImportKind.OPPORTUNITIES: {"account": _ACCOUNT_NAMES},
    ImportKind.INCIDENTS: {"account": _ACCOUNT_NAMES},
}
# 负责人, 跟进人, 客户经理 and 所有人 (商机所有人: Salesforce's opportunity owner) are how CRMs
# head the column with the person's name.
_REP_NAMES = ("销售姓名", "销售人员姓名", "销售代表姓名", "负责人姓名", "负责销售姓名",
              "所属销售姓名", "客户经理姓名", "跟进人姓名", "负责人", "跟进人", "客户经理", "所有人",
              "商机所有人", "客户所有人", "商机负责人", "rep name", "sales rep name",
              "salesperson name", "owner name")
for _kind, _field in ((ImportKind.OPPORTUNITIES, "rep"), (ImportKind.FORECASTS, "rep"),
                      (ImportKind.INCIDENTS, "rep"), (ImportKind.ACCOUNTS, "owner")):
    NAME_SYNONYMS.setdefault(_kind, {})[_field] = _REP_NAMES
# A rep's or an account's department (部门, 所属部门) holds the branch as one level of a path
# (华北大区/北京分公司/KA一部), which the import reads; a column of the branch itself keeps the
# field.
_DEPARTMENTS = ("部门", "所属部门", "部门名称", "组织", "所属组织", "组织架构", "department",
                "dept", "organization")
for _kind in (ImportKind.REPS, ImportKind.ACCOUNTS):
    NAME_SYNONYMS.setdefault(_kind, {})["branch"] = _DEPARTMENTS
NAME_SYNONYM_SCORE = 1.5

# Fields whose column must never be dropped quietly: a file column that is likely one of
# them and is left unmapped is a warning the admin acknowledges (dropping the executive
# sponsor would remove the release protection; dropping the owner, the ownership).
IMPORTANT: dict[str, frozenset[str]] = {
    ImportKind.BRANCHES: frozenset({"code", "name", "name_zh"}),
    ImportKind.REPS: frozenset({"external_id", "username", "branch", "status", "hire_date"}),
    ImportKind.ACCOUNTS: frozenset({"external_id", "branch", "annual_value_yuan", "owner",
                                    "executive_sponsor", "ownership_type"}),
    ImportKind.OPPORTUNITIES: frozenset({"account", "rep", "amount_yuan", "stage", "closed",
                                         "stage_history"}),
    ImportKind.FORECASTS: frozenset({"rep", "month", "forecast_yuan", "actual_yuan"}),
    ImportKind.INCIDENTS: frozenset({"account", "rep", "status", "explanation", "page_area",
                                     "evidence_url"}),
}

EXACT, SYNONYM, SIMILAR = "exact", "synonym", "similar"
SIMILARITY_THRESHOLD = 0.6  # difflib ratio; below it a header suggests nothing
# Units an amount column's header may name (compared as header_key leaves them), in yuan.
HEADER_UNITS = {"元": 1, **dict.fromkeys(CURRENCY_WORDS, 1),
                "千元": 1_000, "千": 1_000, "k": 1_000, "thousand": 1_000, "thousands": 1_000,
                "万元": 10_000, "万": 10_000, "10k": 10_000,
                "十万元": 100_000, "十万": 100_000,
                "百万元": 1_000_000, "百万": 1_000_000, "m": 1_000_000, "mn": 1_000_000,
                "million": 1_000_000, "millions": 1_000_000,
                "千万元": 10_000_000, "千万": 10_000_000,
                "亿元": 100_000_000, "亿": 100_000_000, "分": FEN, "fen": FEN}
# A unit at the end of a header without brackets: 年销售额万元, 年度金额万, 年度金额/亿元.
TRAILING_UNITS = ("十万元", "百万元", "千万元", "千元", "万元", "亿元", "万", "亿")
PER_YEAR = re.compile(r"(?:/|每)(?:年|yr|year)$|peryear$")
# Words that name a unit or a currency: a header holding one that is not understood is
# refused rather than read as yuan.
UNIT_LIKE = re.compile(r"[元万亿¥$€£]|单位|币|rmb|cny|usd|hkd|eur|jpy|gbp|yuan|dollar")
# Units that only brackets name as such (金额(角)): in a name, 分 and 角 are other words
# (分摊金额, an apportioned amount).
BRACKETED_UNIT_LIKE = re.compile(r"^(?:角|毛|cents?)$")


# A note that names the unit of a table's amounts, as Chinese reports write one above or
# below the table instead of in each column's name: 单位：万元, （单位：人民币万元）, 金额单位为
# 万元, 单位：元; Unit: 10k yuan. A unit word that goes on into another word (单位：万人, a
# headcount) names no amount.
UNIT_NOTE = re.compile(
    r"单位\s*(?:[:：]|为|是)?\s*[(（]?\s*(?:人民币|rmb|cny|[¥￥])?\s*"
    r"(十万元|百万元|千万元|千元|万元|亿元|元|十万|百万|千万|万|亿)(?=人民币|[^\u4e00-\u9fff]|$)"
    r"|\bunits?\s*[:：]\s*(?:rmb|cny)?\s*(10,000|10k|thousands?|millions?|mn|k|m|yuan|rmb|cny)\b",
    re.IGNORECASE)
NOTE_UNITS = {"10,000": 10_000, "10k": 10_000, "thousand": 1_000, "thousands": 1_000,
              "million": 1_000_000, "millions": 1_000_000, "mn": 1_000_000, "k": 1_000,
              "m": 1_000_000, "yuan": 1, "rmb": 1, "cny": 1}
UnitNote = tuple[int, str, Unit]  # (row, the note's text as shown, the unit it names)


def units_in_note(text: str) -> set[Unit]:
    """The units of amounts a note names (UNIT_NOTE): none, one, or several (单价单位：元，
    金额单位：万元, which bidhub cannot tell apart by column)."""
    units: set[Unit] = set()
    for found in UNIT_NOTE.finditer(text):
        chinese, english = found.groups()
        units.add(HEADER_UNITS[chinese] if chinese else NOTE_UNITS[english.lower()])
    return units


def unit_notes(numbered_texts: Iterable[tuple[int, str]]) -> tuple[UnitNote, ...]:
    """The notes among (row, text) that name the unit of amounts, with that unit; a note that
    names several is given once for each."""
    return tuple((number, text[:NOTE_SHOWN], unit) for number, text in numbered_texts
                 for unit in sorted(units_in_note(text)))


def unit_note_of(notes: Sequence[UnitNote]) -> UnitNote | None:
    """The note whose unit reads the amount columns that name none: the first of `notes`;
    None without any. FileRefused when they name different units, since bidhub cannot tell
    which column each means."""
    if not notes:
        return None
    first = notes[0]
    other = next((note for note in notes if note[2] != first[2]), None)
    if other is not None:
        raise FileRefused(N_(
            "The notes around the table name different units for amounts (row %(first)d: "
            "“%(first_text)s”; row %(second)d: “%(second_text)s”), so bidhub cannot tell "
            "which unit each column is in. Write the unit in each amount column's name "
            "(年度金额（万元）) and import the file again.", first=first[0],
            first_text=first[1], second=other[0], second_text=other[1]))
    return first


def unknown_unit(header: str, unit: str) -> BadValue:
    return BadValue(N_("The column '%(column)s' names the unit '%(unit)s', which bidhub does not "
                       "read; give the amounts in 元, 千元, 万元, 百万元 or 亿元 and name that unit "
                       "in the column name.", column=header, unit=unit))


def bracket_unit(header: str, inside: str) -> Unit | None:
    """The unit in a header's brackets ((单位:万元), (RMB万元), (万元/年)); None when the
    brackets hold no unit-like word ((含税)); BadValue when they hold one not understood."""
    text = PER_YEAR.sub("", inside.removeprefix("单位:").removeprefix("单位"))
    for word in CURRENCY_WORDS:
        if text != word:
            text = text.removeprefix(word).removesuffix(word)
    text = PER_YEAR.sub("", text)
    if text in HEADER_UNITS:
        return HEADER_UNITS[text]
    if UNIT_LIKE.search(inside) or BRACKETED_UNIT_LIKE.match(text):
        raise unknown_unit(header, inside)
    return None


def split_unit(header: str) -> tuple[str, Unit | None]:
    """The header as compared without its unit, and the unit it names (None: none).

    The unit is in brackets of any width, perhaps after 单位: and beside a currency word, or
    ends the header (年销售额万元, 年度金额万); a trailing * (a required field) or /年 does not
    matter. Raises BadValue when the header names a unit or currency that is not understood.
    """
    key = PER_YEAR.sub("", header_key(header).strip("*"))
    while key.endswith(")") and "(" in key:
        start = key.rindex("(")
        unit = bracket_unit(header, key[start + 1:-1])
        base = key[:start].rstrip("*/:")
        if unit is not None:
            return base or key, unit
        key = base
    for word in TRAILING_UNITS:
        if key.endswith(word) and len(key) > len(word):
            return key.removesuffix(word).rstrip("/:") or key, HEADER_UNITS[word]
    for word in CURRENCY_WORDS + ("元",):
        if key.endswith(word) and len(key) > len(word) and not UNIT_LIKE.search(
                key.removesuffix(word)):
            return key.removesuffix(word).rstrip("/:") or key, 1
    found = UNIT_LIKE.search(key)
    if found is not None:
        raise unknown_unit(header, key[found.start():])
    return key, None


def header_key(header: str) -> str:
    """A header as compared: normalised, with any kind of bracket written as ()."""
    text = normalise(header)
    for opening in "[【〔":
        text = text.replace(opening, "(")
    for closing in "]】〕":
        text = text.replace(closing, ")")
    return text


# What an import template adds to a column's name to say it must or may be filled: * before
# or after it, (必填) or (选填) after it. 【客户名称】 is 客户名称 in brackets.
FILL_MARKS = re.compile(r"^\*+|\*+$|\((?:必填项?|选填项?|可选|非必填)\)$")


def plain_key(header: str) -> str:
    """A header as compared for an exact match: its key without the marks a template adds
    (*客户名称, 客户名称(必填), 【客户名称】 are 客户名称)."""
    key, previous = header_key(header), None
    while key != previous:
        previous, key = key, FILL_MARKS.sub("", key)
    if key.startswith("(") and key.endswith(")") and key.count("(") == 1:
        key = key[1:-1]
    return key


def header_unit(header: str) -> Unit:
    """How many yuan one unit of an amount column is, from its header: (万元) 10,000; (单位:
    百万元) 1,000,000; 年度金额万 10,000; none named: 1. BadValue for a unit not understood."""
    return split_unit(header)[1] or 1


def column_unit(header: str, note: UnitNote | None) -> Unit:
    """An amount column's unit: the one its name gives, else the one a note around the
    table names (`unit_note_of`), else yuan. BadValue for a unit not understood."""
    named = split_unit(header)[1]
    if named is not None:
        return named
    return note[2] if note is not None else 1


def header_base(header: str) -> str:
    """The header without its unit: 年度金额(万元) -> 年度金额."""
    try:
        return split_unit(header)[0]
    except BadValue:
        return header_key(header)


def is_amount(column: Column) -> bool:
    return column.parse is parse_yuan


def headers_key(headers: Sequence[str]) -> str:
    """SHA-256 of a header row, normalised, in order: the key a saved mapping is found by."""
    return hashlib.sha256("\x1f".join(header_key(header) for header in headers)
                          .encode("utf-8")).hexdigest()


def field_names(kind: str) -> tuple[str, ...]:
    return tuple(column.name for column in COLUMNS[kind])


def column_of(kind: str, name: str) -> Column | None:
    return next((column for column in COLUMNS[kind] if column.name == name), None)


@cache
def _names(kind: str) -> tuple[dict[str, str], dict[str, str]]:
    """The exact names (header key -> field) and the synonyms (key -> field) of a kind."""
    exact = {header_key(name): column.name for column in COLUMNS[kind]
             for name in (column.name, *column.headers)}
    synonyms: dict[str, str] = {}
    for name, extra in SYNONYMS[kind].items():
        for synonym in extra:
            synonyms.setdefault(header_key(synonym), name)
    return exact, synonyms


def exact_field(kind: str, header: str) -> str | None:
    """The field a header names exactly (a field's name or accepted header, perhaps marked as
    one to fill: see `plain_key`), else None."""
    return _names(kind)[0].get(plain_key(header))


@cache
def _name_synonyms(kind: str) -> dict[str, str]:
    """NAME_SYNONYMS of a kind: header key -> field."""
    return {header_key(synonym): name for name, extra in NAME_SYNONYMS.get(kind, {}).items()
            for synonym in extra}


# Fields that hold the day something happened, and the words of a header that gives a day
# planned or expected (预计成交日期, 计划关闭日期, Expected Close Date): such a column is not
# suggested for them, however alike the names (an open deal's expected day is no closed date).
EVENT_DAYS = frozenset({"opened", "closed", "seen", "hire_date"})
PLANNED = re.compile(r"预计|预期|计划|预测|期望|目标|expected|estimated|planned|forecast|target|"
                     r"projected|scheduled")


def match_scores(kind: str, header: str) -> list[tuple[float, str, str]]:
    """(score, field, how) for each field the header may be: exact 3, synonym 2, a name the
    field may be written by 1.5 (NAME_SYNONYMS), similar <= 1."""
    exact, synonyms = _names(kind)
    key, base = plain_key(header), header_base(header)
    if not key:
        return []
    if key in exact:
        return [(3.0, exact[key], EXACT)]
    found: dict[str, tuple[float, str, str]] = {}
    for candidate in (key, base):
        name = exact.get(candidate) or synonyms.get(candidate)
        if name is not None:
            found[name] = (2.0, name, SYNONYM)
        name = _name_synonyms(kind).get(candidate)
        if name is not None and name not in found:
            found[name] = (NAME_SYNONYM_SCORE, name, SYNONYM)
    if found:
        # A column the table names is that field and no other: when the field goes to another
        # column (负责人 beside 负责人工号), it is suggested for nothing rather than for a field
        # it merely resembles (高管负责人).
        return sorted(found.values(), key=lambda entry: (-entry[0], entry[1]))
    planned = PLANNED.search(base) is not None
    for names in (exact, synonyms):
        for known, name in names.items():
            if planned and name in EVENT_DAYS:
                continue
            ratio = difflib.SequenceMatcher(None, base, known).ratio()
            if len(known) >= 2 and known in base:
                # 客户年度金额 holds 年度金额; the more of it, the likelier, and a Chinese
                # header names its thing last (销售人员编码 is a 编码, not a 销售人员).
                ratio = max(ratio, min(0.99, 0.5 + 0.5 * len(known) / len(base)
                                       + (0.05 if base.endswith(known) else 0)))
            if ratio >= SIMILARITY_THRESHOLD and ratio > found.get(name, (0.0,))[0]:
                found[name] = (round(ratio, 3), name, SIMILAR)
    return sorted(found.values(), key=lambda entry: (-entry[0], entry[1]))


@dataclass(frozen=True)
class ColumnMatch:
    """A file column and the field suggested for it (None: not imported), and how it was found."""

    column: str
    field: str | None
    how: str = ""  # exact | synonym | similar | "" (nothing suggested)
    score: float = 0.0


def suggest_mapping(kind: str, headers: Sequence[str]) -> list[ColumnMatch]:
    """Each non-blank column with its most likely field; one field per column and vice versa.

    The best-scoring pairs are taken first (exact before synonym before similar), so a column
    named exactly keeps its field even when another column resembles it more loosely.
    """
    columns = unique_headers(headers)
    candidates = sorted(((score, index, name, how) for index, column in enumerate(columns)
                         for score, name, how in match_scores(kind, column)),
                        key=lambda entry: (-entry[0], entry[1]))
    chosen: dict[int, tuple[str, str, float]] = {}
    taken: set[str] = set()
    for score, index, name, how in candidates:
        if index in chosen or name in taken:
            continue
        chosen[index] = (name, how, score)
        taken.add(name)
    return [ColumnMatch(column, *chosen[index]) if index in chosen else ColumnMatch(column, None)
            for index, column in enumerate(columns)]


def unique_headers(headers: Sequence[str]) -> list[str]:
    """The non-blank headers, each once, in file order."""
    seen: list[str] = []
    for header in headers:
        header = (header or "").strip()
        if header and header not in seen:
            seen.append(header)
    return seen


def repeated_headers(headers: Sequence[str]) -> dict[str, list[int]]:
    """The non-blank headers that name more than one column, each with its columns' indexes."""
    indexes: dict[str, list[int]] = {}
    for index, header in enumerate(headers):
        header = (header or "").strip()
        if header:
            indexes.setdefault(header, []).append(index)
    return {header: found for header, found in indexes.items() if len(found) > 1}


def repeated_header(header: str, indexes: Sequence[int]) -> Text:
    """Why a column name that several columns have cannot be read: which one is meant is
    unknown, and a mapping names columns by their names, so it cannot tell them apart either."""
    return N_("The column name '%(column)s' is used %(count)d times (columns %(letters)s), so "
              "bidhub cannot tell which column to read. Rename the columns so that each name is "
              "used once, and import the file again.", column=header, count=len(indexes),
              letters=", ".join(map(column_letters, indexes)))


def exact_mapping(kind: str, headers: Sequence[str]) -> dict[str, str]:
    """The mapping a file gets without asking: each column named exactly, first one wins."""
    mapping: dict[str, str] = {}
    for column in unique_headers(headers):
        name = exact_field(kind, column)
        if name is not None and name not in mapping.values():
            mapping[column] = name
    return mapping


def likely_field(kind: str, header: str) -> str | None:
    scores = match_scores(kind, header)
    return scores[0][1] if scores else None


@dataclass(frozen=True)
class MappingWarning:
    """A column that is likely an important field, left unmapped while that field has none."""

    column: str
    field: str

    @property
    def message(self) -> Text:
        return N_("The column '%(column)s' looks like '%(field)s', which matters, but is not "
                  "imported.", column=self.column, field=self.field)


def required_fields(kind: str) -> list[str]:
    """Fields a file must give; a reps file without usernames gets them from employee ids."""
    return [column.name for column in COLUMNS[kind] if column.required
            and not (kind == ImportKind.REPS and column.name == "username")]


@dataclass
class MappingCheck:
    """A mapping checked against a file's headers."""

    columns: dict[str, str]  # file column -> field
    errors: list[Text] = field(default_factory=list)  # the mapping cannot be used
    missing: list[str] = field(default_factory=list)  # required fields no column gives
    warnings: list[MappingWarning] = field(default_factory=list)  # not acknowledged
    units: dict[str, Unit] = field(default_factory=dict)  # amount field -> yuan per unit
    generated_usernames: bool = False
    # Column names several columns have, among those mapped or likely a field: the file must
    # be changed first, since no mapping can tell those columns apart (one error each).
    repeated: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not (self.errors or self.missing or self.warnings)

    @property
    def refusals(self) -> list[Text]:
        """Why the mapping cannot be used as it is, one message each."""
        missing = [N_("No column is mapped to the required field '%(field)s'.", field=name)
                   for name in self.missing]
        return [*self.errors, *missing, *(warning.message for warning in self.warnings)]


def check_mapping(kind: str, headers: Sequence[str], columns: Mapping[str, str | None],
                  acknowledged: Iterable[str] = (), unit_note: UnitNote | None = None
                  ) -> MappingCheck:
    """Whether `columns` (file column -> field, blank for none) can read a file with `headers`.

    Errors: a header that names several columns and is mapped or likely a field, a column
    the file does not have, a field the kind does not have, two columns for one field. Then
    the required fields left without a column and the important columns left unmapped that
    were not acknowledged.
    """
    present = unique_headers(headers)
    counts = {header: sum(1 for other in headers if (other or "").strip() == header)
              for header in present}
    # A column named as the file writes it in another width or case (年度金额(万元) for
    # 年度金额（万元）, typed on a command line) is that column, when only one header reads so.
    by_key: dict[str, list[str]] = {}
    for header in present:
        by_key.setdefault(header_key(header), []).append(header)

    def in_file(column: str) -> str:
        if column in counts:
            return column
        found = by_key.get(header_key(column), [])
        return found[0] if len(found) == 1 else column

    known = set(field_names(kind))
    check = MappingCheck(columns={})
    repeated = repeated_headers(headers)
    named = {in_file(column) for column, name in columns.items() if name}
    check.repeated = [header for header in repeated
                      if header in named or likely_field(kind, header) is not None]
    check.errors += [repeated_header(header, repeated[header]) for header in check.repeated]
    by_field: dict[str, str] = {}
    acknowledged = [in_file(column) for column in acknowledged]
    for column, name in columns.items():
        if not name:
            continue
        column = in_file(column)
        if counts.get(column, 0) > 1:
            continue  # an error above
        if column not in counts:
            check.errors.append(N_("The file has no column '%(column)s'.", column=column))
        elif name not in known:
            check.errors.append(N_("'%(field)s' is not a field of this kind; use one of %(fields)s.",
                                   field=name, fields=", ".join(sorted(known))))
        elif name in by_field:
            check.errors.append(N_("The columns '%(first)s' and '%(second)s' are both mapped to "
                                   "'%(field)s'; map one column to each field.",
                                   first=by_field[name], second=column, field=name))
        else:
            by_field[name] = column
            check.columns[column] = name
    mapped = set(by_field)
    check.missing = [name for name in required_fields(kind) if name not in mapped]
    check.generated_usernames = kind == ImportKind.REPS and "username" not in mapped
    acknowledged = set(acknowledged)
    for column in present:
        name = likely_field(kind, column)
        if (column not in check.columns and column not in acknowledged and name is not None
                and name in IMPORTANT[kind] and name not in mapped and column not in repeated):
            check.warnings.append(MappingWarning(column, name))
    for column, name in check.columns.items():
        column_spec = column_of(kind, name)
        if column_spec is not None and is_amount(column_spec):
            try:
                check.units[name] = column_unit(column, unit_note)
            except BadValue as error:
                check.errors.append(error.message)
    return check


def mapping_needed(kind: str, headers: Sequence[str]) -> bool:
    """Whether a file must go through the mapping step: its headers are not all exact.

    A column that is suggested as a field, a required field it names only by synonym, or an
    important column that would be dropped: the admin confirms the mapping first. Columns that
    resemble nothing are ignored and listed, as before.
    """
    exact = exact_mapping(kind, headers)
    suggested = {match.column: match.field for match in suggest_mapping(kind, headers)
                 if match.field is not None}
    return suggested != exact or not check_mapping(kind, headers, exact).usable and any(
        column not in exact for column in unique_headers(headers))


# --- bytes to cells ---------------------------------------------------------------------------

DECODE_CHUNK = MIB


UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
NOT_TEXT = N_("This is not a text (CSV) file. Save the export as CSV (UTF-8 or GBK) or as an "
              "Excel workbook (.xlsx or .xls).")


def refuse_empty_or_no_text(data: bytes) -> None:
    """FileRefused for an empty file, or one whose first bytes say it is no text
    (UNMISTAKABLE_SIGNATURES)."""
    if not data.strip():
        raise FileRefused(N_("The file is empty."))
    if data.startswith(UNMISTAKABLE_SIGNATURES):
        raise FileRefused(NOT_TEXT)


def csv_encoding(data: bytes) -> str:
    """The encoding of a CSV file: UTF-8 (with or without BOM), GBK/GB18030, or UTF-16 with its
    BOM (Excel's "Unicode Text") or without it when its lines say the byte order
    (utf16_byte_orders); else FileRefused.

    The whole file is checked a piece at a time, so its text is never held twice in memory.
    """
    refuse_empty_or_no_text(data)
    if data.startswith(UTF16_BOMS) and not data.startswith(codecs.BOM_UTF32_LE):
        candidates: tuple[str, ...] = ("utf-16",)  # the BOM says which byte order
    elif b"\x00" in data[:8192]:
        if data.startswith(BINARY_SIGNATURES):
            raise FileRefused(NOT_TEXT)
        orders = utf16_byte_orders(data[:8192])
        if len(orders) != 1:
            if orders or unmarked_utf16(data[:8192]):
                raise FileRefused(N_(
                    "The file seems to be UTF-16 text without the mark (BOM) that says so, and "
                    "its first lines do not tell its byte order. Save it from Excel as “CSV "
                    "UTF-8 (Comma delimited)” or as “Unicode Text”, and import it again."))
            raise FileRefused(NOT_TEXT)
        candidates = orders
    else:
        candidates = ("utf-8-sig", "gb18030")
    view = memoryview(data)
    for encoding in candidates:
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            start = decoder.decode(view[:4 * 8192])
            for offset in range(4 * 8192, len(data), DECODE_CHUNK):
                decoder.decode(view[offset:offset + DECODE_CHUNK])
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        if is_binary(start[:8192]):
            raise FileRefused(NOT_TEXT)
        if encoding == "gb18030" and (line := utf8_line(data)) is not None:
            raise FileRefused(N_(
                "Line %(line)d is written in UTF-8 while the rest of the file is not, so its "
                "Chinese characters would be read wrongly. Save the whole file again in one "
                "encoding, as CSV (UTF-8), and import it again.", line=line))
        return encoding
    if candidates == ("utf-16",):
        raise FileRefused(N_("The file is marked as UTF-16 text, but not all of it reads as "
                             "UTF-16. Save it from Excel once more (as “CSV UTF-8 (Comma "
                             "delimited)” or “Unicode Text”) and import it again."))
    if candidates != ("utf-8-sig", "gb18030"):
        raise FileRefused(N_("The file's first lines read as UTF-16 text without the mark (BOM) "
                             "that says so, but not all of it reads as UTF-16. Save it from "
                             "Excel once more (as “CSV UTF-8 (Comma delimited)” or “Unicode "
                             "Text”) and import it again."))
    if is_binary(data[:8192].decode("latin-1")):
        raise FileRefused(NOT_TEXT)  # control bytes throughout: no text in any encoding
    raise FileRefused(N_("The characters of line %(line)d cannot be read as UTF-8 or GBK. Save "
                         "the whole file again as CSV (UTF-8) and retry.",
                         line=undecodable_line(data, candidates)))


def undecodable_line(data: bytes, encodings: Sequence[str]) -> int:
    """The line where a file that none of `encodings` reads whole stops being read by the one
    that reads furthest into it: the line to mend. Neither UTF-8 nor GB18030 has a line feed
    inside a character, so each line decodes on its own."""
    stops = []
    for encoding in encodings:
        number, start = 1, 0
        while start <= len(data):
            end = data.find(b"\n", start)
            end = len(data) if end == -1 else end
            try:
                data[start:end].decode(encoding if number == 1 else encoding.removesuffix("-sig"))
            except UnicodeDecodeError:
                break
            number, start = number + 1, end + 1
        stops.append(number)
    return max(stops)


# The end-of-file mark (Ctrl-Z, SUB) that DOS-era programs and some CRMs write after the last
# line, and Excel ignores.
END_OF_FILE_MARK = re.compile(r"\x1a+\s*\Z")
END_OF_LINE_MARK = re.compile(r"\x1a+[ \t]*(?=[\r\n]*\Z)")


def is_binary(text: str) -> bool:
    """Whether the start of a decoded file holds control characters more than now and then,
    as a binary file does. A few are left to the rows, which name each one's row and column;
    so is an end-of-file mark."""
    text = END_OF_FILE_MARK.sub("", text)
    return len(CONTROL.findall(text)) > max(8, len(text) // 100)


# Blank lines held at the end of a file (to find an end-of-file mark after them) before
# the file is taken to go on.
HELD_BLANK_LINES = 10_000


def without_end_of_file_mark(lines: Iterable[str]) -> Iterator[str]:
    """A text file's lines, the end-of-file mark (Ctrl-Z) after its last line, or at the end of
    it, taken off; a Ctrl-Z anywhere else stays, a control character of its row."""
    held: list[str] = []  # the last line with content and the blank lines after it
    for line in lines:
        if line.strip(" \t\r\n\x1a") or len(held) > HELD_BLANK_LINES:
            yield from held
            held = [line]
        else:
            held.append(line)
    for number, line in enumerate(held):
        if number == 0 and line.strip(" \t\r\n\x1a"):
            line = END_OF_LINE_MARK.sub("", line)
        else:
            line = line.replace("\x1a", "")
        if line:
            yield line


# A Chinese character in UTF-8: three bytes, the first of them E4 to E9.
UTF8_HANZI = re.compile(rb"[\xe4-\xe9][\x80-\xbf][\x80-\xbf]")


def is_gb2312(text: str) -> bool:
    try:
        text.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def utf8_line(data: bytes) -> int | None:
    """The first line of a file that is not UTF-8 as a whole (so read as GBK) that is UTF-8
    Chinese, as where two exports were joined or a row was pasted in from another file; None
    when there is none.

    Such a line, read as GBK, is no error: its bytes pair up into other characters, mostly
    outside GB2312 (王芳 becomes 鐜嬭姵), and would be stored so. A line counts when it reads as
    UTF-8 into GB2312's characters and as GBK into some outside it: GBK text of Chinese names
    and companies practically never reads as UTF-8 at all, let alone as common characters.
    """
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.isascii() or not UTF8_HANZI.search(line):
            continue
        try:
            text = line.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError:
            continue
        if is_gb2312(text) and not is_gb2312(line.decode("gb18030", "replace")):
            return number
    return None


def unmarked_utf16(start: bytes) -> bool:
    """Whether the start of a file holding NUL bytes reads as UTF-16 text without a BOM: no NUL
    at even offsets (little-endian: ASCII is a byte and a NUL) or none at odd ones (big-endian),
    the text made of characters text holds (reads_as_text), a good part of them ASCII."""
    for encoding, low_bytes in (("utf-16-le", start[0::2]), ("utf-16-be", start[1::2])):
        if 0 in low_bytes:
            continue
        try:
            # Incremental: a character cut in two at the end of the piece is no error.
            text = codecs.getincrementaldecoder(encoding)().decode(start)
        except UnicodeDecodeError:
            continue
        # Its NULs are the other half of ASCII characters (R1001 is R, NUL, 1, NUL, ...); bytes
        # of a binary file read so are characters from all over Unicode, ASCII now and then.
        if reads_as_text(text) and sum(char.isascii() for char in text) * 4 >= len(text):
            return True
    return False


# Characters no text export holds, which a program or an image read as UTF-16 is full of:
# control characters (C0 but tab and line breaks, and C1), code points no character is
# assigned to, private-use ones and halves of surrogate pairs.
NOT_TEXT_CATEGORIES = frozenset({"Cc", "Cn", "Co", "Cs"})


def reads_as_text(text: str) -> bool:
    """Whether decoded text holds only characters a text export may: none of
    NOT_TEXT_CATEGORIES but tab, line breaks and an end-of-file mark."""
    return not any(unicodedata.category(char) in NOT_TEXT_CATEGORIES
                   for char in set(text) - {"\t", "\n", "\r", "\x1a"})


# How files that are no text begin: a Windows program or library (MZ), a Linux or Unix one
# (ELF), a PDF, images, archives Excel does not write. Told only of a file with NUL bytes at its
# start: a text file may begin with these letters.
BINARY_SIGNATURES = (b"MZ", b"\x7fELF", b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff",
                     b"7z\xbc\xaf", b"Rar!", b"\x1f\x8b", b"BM", b"\xca\xfe\xba\xbe",
                     b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe")
# The signatures no text begins with, NUL bytes after them or not (MZ or BM may begin a CSV's
# first column name): an image, a PDF or an archive renamed .csv is refused as not text rather
# than read as a file of one garbled title.
UNMISTAKABLE_SIGNATURES = (b"\x7fELF", b"%PDF-", b"\x89PNG", b"GIF87a", b"GIF89a",
                           b"\xff\xd8\xff", b"7z\xbc\xaf", b"Rar!\x1a", b"\x1f\x8b")


def utf16_byte_orders(start: bytes) -> tuple[str, ...]:
    """The byte orders in which the start of a file holding NUL bytes, and no BOM, reads as
    UTF-16 lines of cells: "utf-16-le", "utf-16-be", both or neither.

    In UTF-16 the line breaks and the separators (commas, tabs) are an ASCII byte and a NUL,
    the NUL after it (little-endian) or before it (big-endian); read in the other byte order
    they are other characters (U+0A00, U+2C00). So the order whose reading holds a line break
    or a separator, and no control character, is the file's. A Chinese character may hold a
    NUL too (一 is U+4E00), so the NULs alone do not decide.
    """
    orders = []
    for encoding in ("utf-16-le", "utf-16-be"):
        try:
            # Incremental: a character cut in two at the end of the piece is no error.
            text = codecs.getincrementaldecoder(encoding)().decode(start)
        except UnicodeDecodeError:
            continue
        text = END_OF_FILE_MARK.sub("", text)
        if reads_as_text(text) and re.search(r"[\r\n,\t]", text):
            orders.append(encoding)
    return tuple(orders)


def decode(data: bytes) -> str:
    """The text of a CSV file in UTF-8 (with or without BOM), GBK/GB18030 or UTF-16 (with its
    BOM, or without it as csv_encoding reads it); else FileRefused."""
    return data.decode(csv_encoding(data))


# How much of a text file's start decides its separator (delimiter_of).
SAMPLE_LINES = 20
SAMPLE_CHARS = 64 * 1024
# The line some exports put before the column names to tell Excel the separator: sep=,
SEPARATOR_LINE = re.compile(r"sep=(.)\r?\n?", re.IGNORECASE)
SEPARATED_BY_SEMICOLONS = N_(
    "The column names in row 1 are separated by semicolons (;), as Excel writes CSV under some "
    "regional settings; bidhub reads cells separated by commas or by tabs. Save the file from "
    "Excel as an Excel workbook (.xlsx) or as “Unicode Text”, and import it again.")


def fitting(records: Sequence[Sequence[str]], width: int) -> int:
    """How many records have `width` cells, or more with only empty cells after them (as Excel
    pads a row)."""
    return sum(len(record) >= width and not any(cell.strip() for cell in record[width:])
               for record in records)


def delimiter_of(sample: str, complete: bool = True) -> str:
    """The separator of a text file's cells, from its first lines (`sample`, `complete` when it
    is the whole file): a comma, a tab (Excel's "Unicode Text" and "Text (Tab delimited)"), or a
    semicolon, which csv_rows refuses.

    The lines are split as csv reads them, so a separator inside a quoted cell does not count.
    When the first line splits into several cells by tabs or by commas and not by the other,
    that is the separator: a comma inside a tab-separated column name (备注(内部,勿外传)) or a
    tab inside a comma-separated one does not split the line. When it splits by both, the next
    lines decide: the separator that gives more of them the first line's cells wins, then the
    one that splits the first line into more cells, then the comma. When it splits by neither,
    but by semicolons into cells that most of the next lines have too, the separator is the
    semicolon. A first line of one name (a title) reads as CSV, and is refused as a title.
    """
    records: dict[str, list[list[str]]] = {}
    for delimiter in (",", "\t", ";"):
        try:
            found = [record for record in csv.reader(io.StringIO(sample, newline=""),
                                                     delimiter=delimiter)
                     if any(cell.strip() for cell in record)]
        except csv.Error:
            found = []  # the reading proper reports it
        if len(found) > 1 and not complete:
            found.pop()  # perhaps cut short
        records[delimiter] = found or [[]]
    widths = {delimiter: len(found[0]) for delimiter, found in records.items()}
    split = [delimiter for delimiter in (",", "\t") if widths[delimiter] > 1]
    if len(split) == 1:
        return split[0]
    if split:
        return max(split, key=lambda delimiter: (
            fitting(records[delimiter][1:], widths[delimiter]), widths[delimiter],
            delimiter == ","))
    rest = records[";"][1:]
    if widths[";"] > 1 and fitting(rest, widths[";"]) * 2 > len(rest):
        return ";"
    return ","


def csv_rows(data: bytes, limits: UploadLimits | None = None) -> Iterator[list[str]]:
    """The CSV file's records as they are read, the text decoded as it goes (FileRefused when
    the file is too large or not CSV). The cells are separated by commas, or by tabs when the
    first lines say so (delimiter_of). The limits on rows and cells are collect_records'."""
    limits = limits or default_limits()
    if len(data) > limits.max_file_bytes:
        raise FileRefused(too_large(limits))
    text = without_end_of_file_mark(
        io.TextIOWrapper(io.BytesIO(data), encoding=csv_encoding(data), newline=""))
    head, delimiter = separator_of(text)
    commas = [0]  # separators since the last complete record
    pending: list[str] = []  # the lines of the record being read
    ended = [False]  # the file's last line has been read

    def lines() -> Iterator[str]:
        # csv builds a record's fields before handing it over; a record with millions of tiny
        # fields would take hundreds of MiB, so it is stopped while it is being read.
        for line in itertools.chain(head, text):
            commas[0] += line.count(delimiter)
            if commas[0] > limits.max_columns * 20:
                raise FileRefused(too_wide(limits))
            pending.append(line)
            yield line
        ended[0] = True

    header: list[str] | None = None
    number = 0
    try:
        for record in csv.reader(lines(), delimiter=delimiter):
            number += 1
            if ended[0] and quote_left_open("".join(pending), delimiter):
                # csv keeps a quoted field that never closes, with every later line in it.
                name = header[len(record) - 1] if header and len(record) <= len(header) else ""
                raise FileRefused(N_(
                    "Row %(row)d, column %(column)s: a quote opens here and is never closed, so "
                    "the rest of the file would be read into this cell. Close the quote, or "
                    "save the export from Excel again.", row=number,
                    column=cell_name(name, len(record) - 1)))
            commas[0] = 0
            if any('="' in line for line in pending):
                record = [excel_text(cell) for cell in record]
            pending.clear()
            if header is None:
                header = [cell.strip() for cell in record]
            yield record
    except csv.Error as error:
        if "field larger than field limit" in str(error):
            raise FileRefused(too_long_cell(limits)) from None
        raise FileRefused(N_("The file is not valid CSV: %(error)s.", error=str(error))) from None


def separator_of(text: Iterator[str]) -> tuple[list[str], str]:
    """The first lines of a CSV file's text (read from `text`, without a "sep=" line) and the
    separator they say its cells have: FileRefused for one bidhub does not read."""
    head: list[str] = []  # the first lines, which decide the separator
    size, complete = 0, False
    while len(head) < SAMPLE_LINES and size < SAMPLE_CHARS:
        line = next(text, "")
        if not line:
            complete = True
            break
        head.append(line)
        size += len(line)
    stated = SEPARATOR_LINE.fullmatch(head[0]) if head else None
    if stated is not None:
        # "sep=," before the column names: Excel reads the cells by it and does not show the
        # line, so the column names are row 1 there, as here.
        head.pop(0)
        delimiter = stated.group(1)
        if delimiter not in (",", "\t"):
            raise FileRefused(SEPARATED_BY_SEMICOLONS if delimiter == ";" else N_(
                "The file's first line (sep=%(separator)s) says its cells are separated by "
                "“%(separator)s”; bidhub reads cells separated by commas or by tabs. Save the "
                "file from Excel as an Excel workbook (.xlsx), and import it again.",
                separator=delimiter))
    else:
        sample = "".join(line[:SAMPLE_CHARS] for line in head)[:SAMPLE_CHARS]
        delimiter = delimiter_of(sample, complete)
    if delimiter == ";":
        raise FileRefused(SEPARATED_BY_SEMICOLONS)
    return head, delimiter


# A cell a CRM wrote as Excel's text formula, ="00123" (in a quoted field "=""00123"""), so
# that Excel shows the text as it is instead of a number without its leading zeros or its
# last digits: Excel shows the text inside, and so does bidhub.
EXCEL_TEXT_FORMULA = re.compile(r'="((?:[^"]|"")*)"', re.S)


def excel_text(cell: str) -> str:
    """The text Excel shows for a CSV cell: the text of a ="..." formula, else the cell."""
    if not cell.startswith('="'):
        return cell
    found = EXCEL_TEXT_FORMULA.fullmatch(cell.strip())
    return cell if found is None else found[1].replace('""', '"')


def quote_left_open(text: str, delimiter: str = ",") -> bool:
    """Whether a CSV record's text (Excel's dialect, as csv reads it leniently) ends inside a
    quoted field."""
    position, size = 0, len(text)
    while position < size:
        # At the start of a field.
        if text[position] != '"':
            ends = [end for end in (text.find(delimiter, position), text.find("\n", position),
                                    text.find("\r", position)) if end != -1]
            if not ends:
                return False
            position = min(ends) + 1
            continue
        # A quoted field: to its closing quote; a doubled quote is a quote in it.
        position += 1
        while True:
            close = text.find('"', position)
            if close == -1:
                return True
            if text.startswith('"', close + 1):
                position = close + 2
                continue
            position = close + 1
            break
        # After the closing quote the field may go on unquoted up to the next separator.
        ends = [end for end in (text.find(delimiter, position), text.find("\n", position),
                                text.find("\r", position)) if end != -1]
        if not ends:
            return False
        position = min(ends) + 1
    return False


def column_letters(index: int) -> str:
    """A spreadsheet column's letters from its index: 0 is A, 26 AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def cell_name(name: str, index: int) -> str:
    """How a message names a column: by its name in the header, else by its letter."""
    return f"'{name}'" if name else column_letters(index)


def read_csv(data: bytes, limits: UploadLimits | None = None) -> list[list[str]]:
    """The CSV file's records, within the limits (else FileRefused)."""
    limits = limits or default_limits()
    return collect_records(csv_rows(data, limits), limits)


def too_large(limits: UploadLimits) -> Text:
    return N_("The file is larger than %(size)s MiB, the most one import takes. Split it into "
              "smaller files.", size=f"{limits.max_file_bytes / MIB:g}")


def too_wide(limits: UploadLimits) -> Text:
    return N_("A row has more than %(n)s columns, the most one import takes. Keep only the "
              "columns bidhub reads.", n=f"{limits.max_columns:,}")


def too_long_cell(limits: UploadLimits) -> Text:
    return N_("A cell holds far more than the %(n)s characters a cell may have; the file was "
              "not read. Check the export.", n=f"{limits.max_cell_length:,}")


def too_many_cells(limits: UploadLimits) -> Text:
    return N_("The file has more than %(n)s cells, the most one import takes. Split it into "
              "smaller files.", n=f"{limits.max_cells:,}")


def too_many_parts(limits: UploadLimits) -> Text:
    return N_("The workbook has more than %(n)s parts. %(why)s",
              n=f"{limits.max_zip_members:,}", why=NOT_A_WORKBOOK)


def too_many_rows(limits: UploadLimits) -> Text:
    return N_("The file has more than %(n)s rows, the most one import takes. Split it into "
              "smaller files.", n=f"{limits.max_rows:,}")


def numbered_records(rows: Iterable[Sequence[str]],
                     limits: UploadLimits) -> Iterator[tuple[int, list[str]]]:
    """The records of a file being read that are not blank, each with its row number as Excel
    shows it, stopped at the first limit the file passes (FileRefused).

    Blank rows are counted (after the last data row too) but not given.
    """
    lines = data_rows = cells = 0
    started = False
    for record in rows:
        lines += 1
        if lines > limits.max_lines + 1:
            raise FileRefused(N_("The file has more than %(n)s rows counting blank ones. Remove "
                                 "the blank rows, or split the file.", n=f"{limits.max_lines:,}"))
        if len(record) > limits.max_columns:
            record = like_row(record, record)
            while record and not record[-1].strip():
                record.pop()
            if len(record) > limits.max_columns:
                raise FileRefused(too_wide(limits))
        cells += len(record)
        if cells > limits.max_cells:
            raise FileRefused(too_many_cells(limits))
        if record and max(map(len, record)) > limits.max_cell_bytes:
            raise FileRefused(too_long_cell(limits))
        if not any(map(str.strip, record)):
            continue
        if started:
            data_rows += 1
            if data_rows > limits.max_rows:
                raise FileRefused(too_many_rows(limits))
        started = True
        yield lines, like_row(record, record)


def collect_records(rows: Iterable[Sequence[str]], limits: UploadLimits) -> list[list[str]]:
    """The records of a file being read, stopped at the first limit it passes (FileRefused).

    Blank rows are kept as one shared empty record, so that row numbers stay those of Excel;
    blank rows after the last data row are counted but not kept.
    """
    records: list[list[str]] = []
    blank: list[str] = []
    for number, record in numbered_records(rows, limits):
        records.extend([blank] * (number - 1 - len(records)))
        records.append(record)
    return records


@dataclass(frozen=True)
class FileShape:
    """What a first pass over a file learns, keeping no rows but a few: its header, its data
    rows, and (cells cleaned) the rows that may be totals rows, by the words they hold: which
    of them are depends on the columns that hold the ids, so on the mapping (`rows_to_store`).
    """

    header: list[str]
    rows_total: int
    totals_candidates: tuple[list[str], ...] = ()
    # The numbers of the rows after the table's last row that read as notes (`note_text`).
    notes_below: tuple[int, ...] = ()
    header_row: int = HEADER_ROW  # the row the column names are in, as Excel numbers it
    # The rows above the column names that were skipped: (row, its text), as `split_header`
    # finds them.
    rows_above: tuple[tuple[int, str], ...] = ()
    # The rows below the column names that the workbook hides (`HiddenRow`), blank ones aside.
    hidden_rows: int = 0
    # The note above or below the table that names its amounts' unit (`unit_note_of`).
    unit_note: UnitNote | None = None


def is_known_name(name: str) -> bool:
    """Whether a header names a column of some kind, marks and unit aside."""
    return plain_key(header_base(name)) in known_header_keys()


def are_group_headings(header: Sequence[str], record: Sequence[str]) -> bool:
    """Whether `header` is a row of headings over groups of columns (客户信息 merged over A:D,
    归属 over E:G) above the column names in `record`: none of its names is a column's, and
    `record` holds two column names or more (cells cleaned)."""
    return (len([name for name in record if name and is_known_name(name)]) >= 2
            and not any(is_known_name(name) for name in header if name))


def check_headings_row(header: Sequence[str], record: Sequence[str], row: int,
                       header_row: int = HEADER_ROW) -> None:
    """Refuse (FileRefused) column names written over two rows (联系人 over 决策人 and 使用人):
    the row after the column names holds only column names, two or more. Read as a row, it
    would give a row of missing values."""
    below = [name for name in map(clean_cell, record) if name]
    known_below = [name for name in below if is_known_name(name)]
    if len(known_below) < 2 or len(known_below) < len(below):
        return
    if not any(is_known_name(name) for name in header if name):
        return  # headings over groups of columns: `split_header` skips such a row
    raise FileRefused(N_(
        "Row %(row)d holds more column names (%(names)s), as a header over two rows: bidhub "
        "reads the column names from one row. Write each column's name in row %(header)d, "
        "delete row %(row)d and import the file again.",
        names=Joined([f"“{name[:60]}”" for name in below[:5]], COMMA), row=row,
        header=header_row))


@dataclass(frozen=True)
class SplitHeader:
    """The start of a file as `split_header` reads it."""

    header_row: int
    header: list[str]  # cells cleaned
    rows_above: tuple[tuple[int, str], ...]  # skipped: (row, its text)
    first_row: tuple[int, list[str]] | None  # the record after the header, if any
    unit_notes: tuple[UnitNote, ...] = ()  # the rows above that name the amounts' unit


def split_header(records: Iterator[tuple[int, list[str]]]) -> SplitHeader:
    """The column names of numbered records that are not blank, and the rows above them that
    are skipped: up to MAX_ROWS_ABOVE rows of one cell that is no column name (a title, the
    lines an export adds under it), then a row of headings over groups of columns if the row
    below it holds the column names (`are_group_headings`). The header is the first row left;
    blank rows above it do not count. FileRefused when no row holds column names."""
    above: list[tuple[int, str]] = []
    notes: tuple[UnitNote, ...] = ()
    for number, record in records:
        header = [clean_cell(cell) for cell in record]
        text = note_text(header, cleaned=True)
        if text is not None and not any(is_known_name(name) for name in header if name):
            if len(above) == MAX_ROWS_ABOVE:
                raise NoTable(too_many_rows_above(above))
            above.append((number, text[:NOTE_SHOWN]))
            notes += unit_notes([(number, text)])
            continue
        following = next(records, None)
        if following is not None:
            cleaned = [clean_cell(cell) for cell in following[1]]
            if are_group_headings(header, cleaned):
                above.append((number, "、".join(name[:NOTE_SHOWN] for name in header if name)))
                number, header, following = following[0], cleaned, next(records, None)
        check_header(header, number)
        return SplitHeader(number, header, tuple(above), following, notes)
    if above:
        raise NoTable(N_(
            "bidhub found no column names: each row with anything in it holds a single cell, "
            "as a title does (row %(row)d: “%(title)s”). Put the column names in one row above "
            "the rows and import the file again.", row=above[0][0], title=above[0][1]))
    raise NoTable(N_("The file is empty."))


def too_many_rows_above(above: Sequence[tuple[int, str]]) -> Text:
    return N_("Rows %(first)d to %(last)d each hold a single cell, as a title does (row "
              "%(first)d: “%(title)s”), and bidhub skips at most %(most)d such rows above the "
              "column names. Delete the rows above the column names and import the file "
              "again.", first=above[0][0], last=above[-1][0], title=above[0][1],
              most=MAX_ROWS_ABOVE)


def file_shape(records: Iterable[tuple[int, list[str]]], delimited: bool = False) -> FileShape:
    """The header row (`split_header`) and the number of data rows of numbered records that are
    not blank; FileRefused when no row holds column names, no row follows them, or a column
    without a name holds values (`check_named_columns`). `delimited`: text with separators,
    where cells past the header's last column are a row's problem (a separator left unquoted),
    not a column's."""
    records = iter(records)
    start = split_header(records)
    header = start.header
    rows_total = 0
    trailing: list[int] = []
    candidates: list[list[str]] = []
    if start.first_row is not None:
        records = itertools.chain([start.first_row], records)
    hidden = 0
    trailing_units: list[UnitNote] = []  # the trailing notes that name the amounts' unit
    # The first few cells with a value under no column name: (row, column index, value).
    nameless: list[tuple[int, int, str]] = []
    for number, record in records:
        if not rows_total:
            check_headings_row(header, record, number, start.header_row)
        if len(nameless) < MAX_NOTE_ROWS + 1:
            nameless.extend(nameless_cells(header, number, record,
                                           past_the_header=not delimited))
        rows_total += 1
        hidden += type(record) is HiddenRow
        if len(candidates) < MAX_TOTALS_CANDIDATES and may_be_totals(record):
            candidates.append([clean_cell(cell) for cell in record])
        text = note_text(record)
        if text is None:
            trailing.clear()
            trailing_units.clear()
        elif len(trailing) <= MAX_NOTE_ROWS:  # one more than notes may be: too many
            trailing.append(number)
            trailing_units.extend(unit_notes([(number, text)]))
    if not rows_total:
        raise NoTable(N_("The file has column names but no rows."))
    notes_below = tuple(trailing) if len(trailing) <= MAX_NOTE_ROWS else ()
    check_named_columns(nameless, notes_below, start.header_row)
    unit_note = unit_note_of(start.unit_notes + (tuple(trailing_units) if notes_below else ()))
    return FileShape(header, rows_total, tuple(candidates), notes_below,
                     start.header_row, start.rows_above, hidden, unit_note)


def nameless_cells(header: Sequence[str], number: int, record: Sequence[str],
                   past_the_header: bool = True) -> list[tuple[int, int, str]]:
    """The cells of a record with a value in a column the header row leaves without a name
    (past its last name too, with `past_the_header`): (row, column index, value)."""
    width = len(record) if past_the_header else min(len(record), len(header))
    return [(number, index, value) for index, cell in enumerate(record[:width])
            if (index >= len(header) or not header[index]) and (value := clean_cell(cell))]


def check_named_columns(nameless: Sequence[tuple[int, int, str]], notes_below: Sequence[int],
                        header_row: int) -> None:
    """Refuse (FileRefused) a file with values in a column that has no name (a header cell
    left blank, or merged over two columns): nobody can tell which field they are, and
    leaving them out would drop data without a word (a rep marked 离职 imported as active).
    The notes below the table are not data."""
    found = next(((row, index, value) for row, index, value in nameless
                  if row not in notes_below), None)
    if found is None:
        return
    row, index, value = found
    raise FileRefused(N_(
        "Column %(column)s holds values (row %(row)d: “%(value)s”) but has no name in row "
        "%(header)d, where the column names are. Name the column there (or delete it) and "
        "import the file again.", column=column_letters(index), row=row, value=value[:60],
        header=header_row))


def rows_to_store(kind: str, shape: FileShape, columns: Mapping[str, str]) -> int:
    """The file's data rows less its totals rows, read by `columns` (file column -> field),
    and the notes below its table."""
    totals = TotalsCells.of(kind, chosen_positions(shape.header, columns))
    return shape.rows_total - len(shape.notes_below) - sum(
        totals.word(record) is not None for record in shape.totals_candidates)


# --- XLSX: checked on its zip directory and by a streaming scan, before any parser sees it ----

SCAN_CHUNK = MIB
# An element's opening tag, with or without a namespace prefix.
# The start and end tags of rows and shared strings, each bounded in size.
ELEMENT_TAG = re.compile(rb"<(/?)(?:[A-Za-z_][\w.-]*:)?(row|si)(?=[\s/>])")
CELL_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c[\s/>]")
RUN_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:r|rPh)[\s/>]")
# The column letters of a cell's reference (r="AB12"): a reader pads each row up to its last
# cell; and "/" when the cell is empty (<c r="DP2" s="1"/>, formatting only).
CELL_COLUMN = re.compile(
    rb"""<(?:[A-Za-z_][\w.-]*:)?c\s[^>]*?\br\s*=\s*["']\$?([A-Za-z]+)[^>]*?(/?)\s*>""")
# Excel never writes these; a document type can define entities that expand without end.
FORBIDDEN_MARKUP = re.compile(rb"<!(?:DOCTYPE|ENTITY|\[CDATA\[)", re.IGNORECASE)
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
              NotImplementedError, ValueError)
# Built-in number formats that Chinese, Japanese and Korean Excel writes without defining them
# (yyyy"年"m"月"d"日" is 31, m"月"d"日" 58, ...): all dates or times, which openpyxl does not
# know and would leave as serial numbers.
EAST_ASIAN_DATE_FORMATS = frozenset(range(27, 37)) | frozenset(range(50, 59))
NOT_A_WORKBOOK = N_("The file is not a readable Excel workbook (.xlsx). Save it again from "
                    "Excel, or export CSV.")


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
        raise FileRefused(too_many_parts(limits))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except ZIP_ERRORS:
        raise FileRefused(NOT_A_WORKBOOK) from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_zip_members:
            raise FileRefused(too_many_parts(limits))
        unpacked = sum(member.file_size for member in members)
        if unpacked > limits.max_uncompressed_bytes:
            raise FileRefused(N_(
                "The workbook unpacks to %(size)s MiB, more than the %(limit)s MiB one import "
                "takes. Split it into smaller files, or export CSV.",
                size=f"{unpacked / MIB:,.0f}", limit=f"{limits.max_uncompressed_bytes / MIB:g}"))
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
            raise FileRefused(too_many_cells(limits))
        self.runs += len(RUN_TAG.findall(buffer, 0, end))
        if self.runs > limits.max_text_runs:
            # Formatted pieces of text: openpyxl builds an object for each, slowly.
            raise FileRefused(N_(
                "The workbook holds more than %(n)s pieces of formatted text, the most one "
                "import takes. Clear the formatting (or export CSV) and try again.",
                n=f"{limits.max_text_runs:,}"))
        # An empty cell far right (a fill or border dragged across the sheet) is not read, so
        # it widens no row (sheet_rows); a cell with anything in it there is refused.
        for letters, empty in set(CELL_COLUMN.findall(buffer, 0, end)):
            if not empty and column_number(letters) > limits.max_columns:
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
            raise FileRefused(N_("A row holds more than a row of %(n)s cells may. Check the "
                                 "export.", n=f"{self.limits.max_columns:,}"))

    def shared_string(self) -> None:
        limits = self.limits
        if self.size > limits.max_shared_strings_bytes:
            raise FileRefused(N_(
                "The workbook's shared text unpacks to %(size)s MiB, more than the %(limit)s "
                "MiB one import takes. Split it into smaller files, or export CSV.",
                size=f"{self.size / MIB:,.0f}",
                limit=f"{limits.max_shared_strings_bytes / MIB:g}"))
        self.shared_strings += 1
        if self.shared_strings > limits.max_shared_strings:
            raise FileRefused(N_(
                "The workbook holds more than %(n)s different texts, the most one import "
                "takes. Split it into smaller files, or export CSV.",
                n=f"{limits.max_shared_strings:,}"))


def column_number(letters: bytes) -> int:
    """A spreadsheet column's number from its letters: A is 1, Z 26, AA 27."""
    number = 0
    for letter in letters.upper()[:8]:
        number = number * 26 + letter - ord("A") + 1
    return number


# --- rows to typed values ---------------------------------------------------------------------

class UnsavedFormula(str):
    """A workbook cell's formula whose value the file does not hold, given in place of the
    cell's text (which is the formula, so that the row is not blank).

    Excel saves each formula's last value beside it; a workbook written by a program that does
    not calculate (a CRM's export library, openpyxl) and never saved in Excel holds none, and
    the cell would read as empty. A field read from such a cell is a row problem instead.
    """

    __slots__ = ()


class MergedDown(str):
    """A cell that a cell merged down over several rows covers from a row above (Excel shows
    the merged cell's one value over all of them; the file holds it in the first row only).

    Given as an empty cell, so the file's shape (its header, titles, notes, blank rows) reads
    as before; a row of the table reads the value of the cell above it (`FillDown`): a rep's
    name merged down over their accounts is each account's owner.
    """

    __slots__ = ()


COVERED = MergedDown()
# The most merged ranges read from one sheet: far more than any export merges.
MAX_MERGED_RANGES = 100_000


class HiddenRow(list):
    """A worksheet row that the workbook hides: hidden by hand, in a collapsed group, or left
    out by a filter. Excel does not show it, yet the file holds it, as a CSV saved from the
    workbook would: it is read like any other row, and the rows of the table that were hidden
    are reported (`Parsed.hidden_rows`), so that an import never holds more than the admin
    was shown without saying so."""

    __slots__ = ()


def like_row(record: Sequence[str], cells: Iterable[str]) -> list[str]:
    """`cells` as a record of the same kind as `record`: a HiddenRow stays one."""
    return HiddenRow(cells) if type(record) is HiddenRow else list(cells)


def add_to_ranges(ranges: list[tuple[int, int]], number: int, limit: int) -> None:
    """Add row `number`, after every row in `ranges`, to them: to the last range if it ends
    just above, else as a range of its own while there are fewer than `limit`."""
    if ranges and ranges[-1][1] == number - 1:
        ranges[-1] = (ranges[-1][0], number)
    elif len(ranges) < limit:
        ranges.append((number, number))


class CoveredCells:
    """Marks the cells of rows, given in order, that a cell merged down from a row above
    covers (MergedDown), where the row holds nothing of its own.

    Only places left of the widest row so far are marked: a merged cell with a value made
    its first row that wide, and a range merged far right of every row (formatting, or a
    file made to widen every row) holds nothing to read."""

    def __init__(self, ranges: Iterable[tuple[int, int, int]]) -> None:
        # (first row, last row, column), by first row
        self.waiting = sorted(ranges, reverse=True)
        self.active: list[tuple[int, int]] = []  # (last row, column)
        self.widest = 0

    def marked(self, row: int, record: list[str]) -> list[str]:
        """`record`, row number `row` (from 1), with its covered cells marked."""
        self.widest = max(self.widest, len(record))
        waiting = self.waiting
        while waiting and waiting[-1][0] < row:
            _first, last, column = waiting.pop()
            self.active.append((last, column))
        if not self.active:
            return record
        self.active = [(last, column) for last, column in self.active
                       if last >= row and column < self.widest]
        for _, column in self.active:
            if column >= len(record):
                record.extend([""] * (column + 1 - len(record)))
            if not record[column]:
                record[column] = COVERED
        return record


class FillDown:
    """The rows of a table with each MergedDown cell given the value above it: the last row's
    value in that column, as filled. The first row after the header fills nothing (a cell
    merged down from the header is no value)."""

    def __init__(self) -> None:
        self.above: list[str] = []
        self.columns: set[int] = set()  # the indexes of the columns given a value so

    def filled(self, given: Sequence[str], record: list[str]) -> list[str]:
        """`record` (cleaned) with its covered cells (MergedDown in `given`, the record as
        read) filled; remembered as the row above the next one."""
        if MergedDown in map(type, given):
            above = self.above
            for index, cell in enumerate(given):
                if type(cell) is MergedDown and index < len(above) and index < len(record):
                    record[index] = above[index]
                    if record[index]:
                        self.columns.add(index)
        self.above = record
        return record


# The error values Excel (and WPS) show in a cell whose formula failed: a lookup that found
# nothing gives #N/A, a reference to deleted cells #REF!. A workbook holds one as the cell's
# value and a CSV saved from it as the text; neither is a value any field may take.
EXCEL_ERRORS = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A",
                          "#GETTING_DATA", "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!",
                          "#CONNECT!", "#BUSY!", "#UNKNOWN!", "#PYTHON!"))


def holds_no_value(given: Sequence[str], record: Sequence[str]) -> bool:
    """Whether a cell of the record (`given` as read, `record` cleaned) is an UnsavedFormula
    or one of Excel's error values: a quick test before `cells_without_value`."""
    return UnsavedFormula in map(type, given) or not EXCEL_ERRORS.isdisjoint(record)


def cells_without_value(given: Sequence[str], record: Sequence[str],
                        positions: Mapping[str, int]) -> dict[str, int]:
    """The fields whose cell holds no value to read: an UnsavedFormula (in `given`, as read)
    or one of Excel's error values (in `record`, cleaned): field -> the cell's index."""
    return {name: index for name, index in positions.items()
            if (index < len(given) and type(given[index]) is UnsavedFormula)
            or (index < len(record) and record[index] in EXCEL_ERRORS)}


def no_value_problem(number: int, name: str, index: int, given: Sequence[str],
                     record: Sequence[str]) -> Problem:
    """Why the field `name` has no value in row `number`, whose cell `index` holds an
    UnsavedFormula (in `given`, as read) or an Excel error value (in `record`, cleaned; a
    cell merged down from above holds it there only): see `cells_without_value`."""
    cell = f"{column_letters(index)}{number}"
    if index < len(given) and type(given[index]) is UnsavedFormula:
        return Problem(number, name, str(given[index]), N_(
            "Cell %(cell)s holds a formula whose value was not saved in the file. Open the file "
            "in Excel and save it again (or paste the values over the formulas), then import it "
            "again.", cell=cell))
    error = record[index]
    return Problem(number, name, error, N_(
        "Cell %(cell)s holds Excel's error value %(error)s, not a value: the formula in it "
        "failed (a lookup that finds nothing gives #N/A). Put the value in the cell, then "
        "import the file again.", cell=cell, error=error))


class RowReader:
    """Typed rows of one file, read one record at a time as the file streams by.

    The header is read first: `parsed` holds what it tells (columns, mapping, units, ignored
    columns) and its problems. Each later record gives its Row, or None with its problems in
    `problems`; the keys seen so far are remembered, so a key given twice is a problem
    wherever the second one is.
    """

    def __init__(self, kind: str, header: Sequence[str], limits: UploadLimits | None = None,
                 mapping: Mapping[str, str | None] | None = None, *,
                 width_checked: bool = False, day_zero: date = EXCEL_DAY_ZERO,
                 zone: tzinfo | None = None, header_row: int = HEADER_ROW,
                 unit_note: UnitNote | None = None) -> None:
        self.limits = limits or default_limits()
        # Serial numbers of days count from here: a workbook's own date system (1900 or 1904).
        self.day_zero = day_zero
        # A moment written with its zone (…T23:30:00Z) is the day it falls on here.
        self.zone = zone
        # CSV: a row with more cells than the header has columns had a comma left unquoted.
        self.width = len(header) if width_checked else None
        if kind not in COLUMNS:
            raise FileRefused(N_("Unknown import kind '%(kind)s'; choose one of %(kinds)s.",
                                 kind=kind, kinds=", ".join(KINDS)))
        self.kind = kind
        self.parsed = Parsed(kind=kind, header_row=header_row, unit_note=unit_note)
        header = [clean_cell(cell) for cell in header]
        check_header(header, header_row)
        self.header = header
        if mapping is None:
            self.positions = column_positions(kind, header, self.parsed, self.limits)
        else:
            self.positions = mapped_positions(kind, header, mapping, self.parsed, self.limits)
        self.plan: ColumnPlan | None = None
        self.totals = TotalsCells.of(kind, self.positions)
        self.problems = ProblemList(self.limits)
        self.seen_keys: dict[tuple[str, ...], dict[tuple[Any, ...], int]] = {
            key: {} for key in KEYS[kind]}
        # Rows that read as notes (`note_text`) not yet known to be below the table: (row,
        # record as read and cleaned, its text).
        self.lone_rows: list[tuple[int, Sequence[str], list[str], str]] = []
        self.lone_rows_read = False  # more of them in a run than notes below a table make
        self.fill_down = FillDown()

    def read(self, number: int, record: Sequence[str]) -> list[Row]:
        """The typed rows this record completes, in file order: none while it may be a note
        below the table (noted in `parsed` once `finish` knows); else those of the rows held
        back as notes that it shows to be rows of the table, then its own unless it has
        problems (noted in `problems`) or is a totals row."""
        cleaned = [clean_cell(cell) for cell in record]
        if not any(cleaned):
            return []  # a blank row neither ends a run of notes nor is one
        cleaned = self.fill_down.filled(record, cleaned)
        note = note_text(cleaned, cleaned=True)
        if note is not None and not self.lone_rows_read:
            self.lone_rows.append((number, record, cleaned, note))
            if len(self.lone_rows) > MAX_NOTE_ROWS:
                self.lone_rows_read = True
                return self._read_lone_rows()
            return []
        rows = []
        if note is None:
            rows = self._read_lone_rows()
            self.lone_rows_read = False
        row = self._read(number, record, cleaned)
        return rows if row is None else [*rows, row]

    def finish(self) -> None:
        """After the last record: the rows held back as notes after the table's last row are
        notes below it, skipped."""
        for number, _record, _cleaned, text in self.lone_rows:
            if len(self.parsed.note_rows) < self.limits.max_problems:
                self.parsed.note_rows.append((number, text[:NOTE_SHOWN]))
        self.lone_rows = []
        read = set(self.positions.values())
        self.parsed.merged_down = [self.header[index] for index in sorted(self.fill_down.columns)
                                   if index in read]

    def _read_lone_rows(self) -> list[Row]:
        """The rows held back as notes that a row of the table follows, read as rows (a row of
        one cell is cut short and refused: every kind needs two values or more)."""
        rows = [row for number, record, cleaned, _text in self.lone_rows
                if (row := self._read(number, record, cleaned)) is not None]
        self.lone_rows = []
        return rows

    def _read(self, number: int, given: Sequence[str], record: list[str]) -> Row | None:
        """The row of a record that is not blank (`given` as read, `record` cleaned)."""
        without_value = (cells_without_value(given, record, self.positions)
                         if holds_no_value(given, record) else {})
        no_value = [no_value_problem(number, name, index, given, record)
                    for name, index in without_value.items()]
        totals = self.totals.word(record)
        if totals is not None:
            if len(self.parsed.totals_rows) < self.limits.max_problems:
                self.parsed.totals_rows.append((number, totals))
            return None
        if type(given) is HiddenRow:
            self.parsed.hidden_rows_count += 1
            add_to_ranges(self.parsed.hidden_rows, number, self.limits.max_problems)
        if CONTROL.search("\t".join(record)):
            for problem in control_problems(number, record, self.header):
                self.problems.add(problem)
            return None
        if self.width is not None and len(record) > self.width and any(record[self.width:]):
            self.problems.add(too_many_cells_in_row(number, record, self.width))
            return None
        if self.plan is None:
            self.plan = column_plan(self.kind, self.positions, self.parsed, self.day_zero,
                                    self.zone)
        for index in without_value.values():
            record[index] = ""
        rounded: list[str] = []
        values, row_problems = typed_values(self.kind, number, record, self.positions,
                                            self.parsed, self.plan, rounded=rounded)
        if without_value:
            row_problems = no_value + [
                problem for problem in row_problems if problem.column not in without_value]
        row_problems += cross_checks(self.kind, number, values)
        if not row_problems:
            row_problems = duplicate_problems(number, values, self.seen_keys,
                                              self.parsed.generated_usernames)
        for problem in row_problems:
            self.problems.add(problem)
        if row_problems:
            return None
        for name in rounded:
            self.parsed.rounded[name] = self.parsed.rounded.get(name, 0) + 1
        return Row(number, values)


# Characters a text cell may not hold (tab and line breaks it may): PostgreSQL cannot store
# NUL, and the others are debris of a broken export.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def shown_controls(text: str) -> str:
    """Text with its control characters written out (\\x00), as a report can keep it."""
    return CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def control_problems(number: int, record: list[str], header: Sequence[str]) -> list[Problem]:
    """A problem for each cell of a row that holds a control character."""
    problems = []
    for index, cell in enumerate(record):
        found = CONTROL.search(cell)
        if found is None:
            continue
        name = shown_controls(header[index]) if index < len(header) and header[index] else (
            column_letters(index))
        problems.append(Problem(number, name, shown_controls(cell), N_(
            "The cell holds a control character (%(code)s), which cannot be stored; remove it "
            "and import the file again.", code=f"U+{ord(found.group()):04X}")))
    return problems


@functools.cache
def known_header_keys() -> frozenset[str]:
    """Every column name and accepted header of every kind, as header_key compares them."""
    return frozenset(header_key(name) for columns in COLUMNS.values() for column in columns
                     for name in (column.name, *column.headers))


def check_header(header: Sequence[str], header_row: int = HEADER_ROW) -> None:
    """Refuse a header row (in row `header_row`) holding a control character (FileRefused),
    naming the cell."""
    for index, name in enumerate(header):
        found = CONTROL.search(name or "")
        if found is not None:
            raise FileRefused(N_(
                "Row %(row)d, column %(column)s: the column name holds a control character "
                "(%(code)s). Remove it and import the file again.", row=header_row,
                column=column_letters(index), code=f"U+{ord(found.group()):04X}"))


def too_many_cells_in_row(number: int, record: list[str], width: int) -> Problem:
    """A row with cells beyond the header's last column (an unquoted comma, most often)."""
    cells = max(index for index, cell in enumerate(record) if cell) + 1
    first = next(index for index in range(width, len(record)) if record[index])
    return Problem(number, column_letters(first), ",".join(record[width:cells]), N_(
        "This row has %(cells)d cells but the header has %(columns)d columns; a comma inside "
        "a value must be in quotes (\"1,000\"), or the values after it land in the wrong "
        "columns.", cells=cells, columns=width))


def parse_rows(kind: str, records: Sequence[Sequence[str]],
               limits: UploadLimits | None = None,
               mapping: Mapping[str, str | None] | None = None, *,
               width_checked: bool = False) -> Parsed:
    """Typed rows and problems from the file's records (the first is the header).

    Without `mapping` each column is read by its exact name; with one (file column -> field,
    checked by `check_mapping`), by it, and other columns are ignored.
    """
    limits = limits or default_limits()
    if kind not in COLUMNS:
        raise FileRefused(N_("Unknown import kind '%(kind)s'; choose one of %(kinds)s.",
                             kind=kind, kinds=", ".join(KINDS)))
    numbered = [(number, like_row(record, cleaned))
                for number, record in enumerate(records, start=1)
                if any(cleaned := [cell if type(cell) is MergedDown else (cell or "").strip()
                                   for cell in record])]
    shape = file_shape(numbered)
    if shape.rows_total > limits.max_rows:
        raise FileRefused(too_many_rows(limits))
    reader = RowReader(kind, shape.header, limits, mapping, width_checked=width_checked,
                       header_row=shape.header_row, unit_note=shape.unit_note)
    parsed = reader.parsed
    parsed.rows_total = shape.rows_total
    parsed.rows_above = list(shape.rows_above)
    if parsed.problems:
        return parsed
    for number, record in numbered:
        if number > shape.header_row:
            parsed.rows.extend(reader.read(number, record))
    reader.finish()
    reader.problems.finish()
    parsed.problems, parsed.problems_not_kept = reader.problems.kept, reader.problems.more
    return parsed


def column_positions(kind: str, header: list[str], parsed: Parsed,
                     limits: UploadLimits) -> dict[str, int]:
    """Canonical column name -> its index; header problems and ignored columns go to `parsed`."""
    mapping = header_map(kind)
    repeated = repeated_headers(header)
    for name, indexes in repeated.items():
        if plain_key(name) in mapping:
            parsed.problems.append(Problem(parsed.header_row, name, name, repeated_header(name, indexes)))
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        if not name:
            continue
        column = mapping.get(plain_key(name))
        if column is None:
            parsed.ignored_columns.append(name)
        elif column.name in positions:
            if name not in repeated:
                first = positions[column.name]
                parsed.problems.append(Problem(parsed.header_row, name, name, N_(
                    "The columns '%(first)s' (%(first_letters)s) and '%(column)s' "
                    "(%(letters)s) both read as '%(field)s', so bidhub cannot tell which to "
                    "read. Remove or rename one of them, and import the file again.",
                    first=header[first], first_letters=column_letters(first), column=name,
                    letters=column_letters(index), field=column.name)))
        else:
            positions[column.name] = index
            parsed.mapping[name] = column.name
    finish_positions(kind, header, positions, parsed, limits)
    return positions


def mapped_positions(kind: str, header: list[str], mapping: Mapping[str, str | None],
                     parsed: Parsed, limits: UploadLimits) -> dict[str, int]:
    """Field -> column index by a confirmed mapping; columns it leaves out are ignored."""
    check = check_mapping(kind, header, mapping)
    for error in check.errors:
        parsed.problems.append(Problem(parsed.header_row, "", "", error))
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        if not name:
            continue
        target = check.columns.get(name)
        if target is None:
            parsed.ignored_columns.append(name)
        elif target not in positions:
            positions[target] = index
            parsed.mapping[name] = target
    finish_positions(kind, header, positions, parsed, limits)
    return positions


def finish_positions(kind: str, header: list[str], positions: dict[str, int], parsed: Parsed,
                     limits: UploadLimits) -> None:
    """Missing required columns, units of amount columns and generated usernames, in `parsed`."""
    parsed.generated_usernames = (kind == ImportKind.REPS and "username" not in positions
                                  and "external_id" in positions)
    for column in COLUMNS[kind]:
        if column.name in positions and is_amount(column):
            name = header[positions[column.name]]
            try:
                parsed.units[column.name] = column_unit(name, parsed.unit_note)
            except BadValue as error:
                parsed.units[column.name] = 1
                if all(str(problem.reason) != str(error) for problem in parsed.problems):
                    parsed.problems.append(Problem(parsed.header_row, name, name, error.message))
        if (column.required and column.name not in positions
                and not (column.name == "username" and parsed.generated_usernames)):
            names = " / ".join(filter(None, (column.name, column.chinese)))
            parsed.problems.append(Problem(parsed.header_row, names, "",
                                           N_("This required column is missing.")))
    parsed.columns = [column.name for column in COLUMNS[kind] if column.name in positions]
    if parsed.generated_usernames:
        parsed.columns.append("username")
    parsed.ignored_columns = [clip(name, limits.max_value_chars)
                              for name in parsed.ignored_columns]


def generated_username(external_id: str) -> str:
    """A rep's username when the file has none: the employee id in lower case (R1001 -> r1001)."""
    return username_key(external_id)


# How one record is read: per column present, its field, index, parser, whether required, the
# default of a blank cell and the unit of an amount (None for other columns).
ColumnPlan = tuple[tuple[str, int, Callable[[str], Any], bool, Any, int | None], ...]


# The parsers that read Excel's serial numbers of days, which count in the workbook's system.
SERIAL_DAY_PARSERS = (parse_date, parse_hire_date, parse_month, parse_stage_history)


def column_plan(kind: str, positions: dict[str, int], parsed: Parsed | None,
                day_zero: date = EXCEL_DAY_ZERO, zone: tzinfo | None = None) -> ColumnPlan:
    units = parsed.units if parsed is not None else {}
    return tuple((column.name, positions[column.name], day_parser(column.parse, day_zero, zone),
                  column.required, column.default,
                  units.get(column.name, 1) if is_amount(column) else None)
                 for column in COLUMNS[kind] if column.name in positions)


def day_parser(parse: Callable[[str], Any], day_zero: date,
               zone: tzinfo | None = None) -> Callable[[str], Any]:
    """A column's parser, reading serial numbers of days from `day_zero` and moments written
    with their zone as days in `zone` when it reads days."""
    if (day_zero == EXCEL_DAY_ZERO and zone is None) or parse not in SERIAL_DAY_PARSERS:
        return parse
    return functools.partial(parse, day_zero=day_zero, zone=zone)


def typed_values(kind: str, number: int, record: list[str], positions: dict[str, int],
                 parsed: Parsed | None = None, plan: ColumnPlan | None = None,
                 day_zero: date = EXCEL_DAY_ZERO, rounded: list[str] | None = None,
                 ) -> tuple[dict[str, Any], list[Problem]]:
    """One record's values by column, defaults filled, and the problems of its cells; the
    amount fields whose fraction of a yuan was rounded away are added to `rounded`."""
    values: dict[str, Any] = {}
    row_problems = []
    width = len(record)
    for name, index, parse, required, default, unit in (
            plan if plan is not None else column_plan(kind, positions, parsed, day_zero)):
        raw = record[index] if index < width else ""
        if 0 < len(raw) <= 4 and means_no_value(raw, parse, unit is not None):
            raw = ""
        if not raw:
            if required:
                row_problems.append(Problem(number, name, "", N_("A value is required.")))
            else:
                values[name] = default
            continue
        try:
            if unit is None:
                values[name] = parse(raw)
            else:
                values[name], fraction = yuan_read(raw, unit)
                if fraction and rounded is not None:
                    rounded.append(name)
        except BadValue as error:
            row_problems.append(Problem(number, name, raw, error.message))
    if parsed is not None and parsed.generated_usernames and values.get("external_id"):
        values["username"] = generated_username(values["external_id"])
        problem = username_problem(values["username"])
        if problem is not None:
            row_problems.append(Problem(number, "external_id", values["external_id"], problem))
    return values, row_problems


def duplicate_problems(number: int, values: dict[str, Any],
                       seen_keys: dict[tuple[str, ...], dict[tuple[Any, ...], int]],
                       generated_usernames: bool = False) -> list[Problem]:
    """A problem per key an earlier row already has; otherwise the row's keys are noted."""
    problems = []
    for key, seen in seen_keys.items():
        identity = tuple(id_key(value) if isinstance(value := values[name], str) else value
                         for name in key)
        if identity in seen:
            label = " + ".join(key)
            value = ", ".join(str(values[name]) for name in key)
            if generated_usernames and key == ("username",):
                reason = N_("The username %(username)s made from this employee id is also "
                            "row %(row)d's; give the file a username column.",
                            username=value, row=seen[identity])
            else:
                reason = N_("Also in row %(row)d; each %(key)s may appear only once.",
                            row=seen[identity], key=label)
            problems.append(Problem(number, label, value, reason))
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
                                    N_("Closed before it was opened.")))
        if closed is not None and values["stage"] not in CLOSED_STAGES:
            problems.append(Problem(number, "closed", closed.isoformat(),
                                    N_("Only won or lost opportunities have a closed "
                                       "date.")))
        history = values.get("stage_history") or ()
        if history and history[0][1] < values["opened"]:
            problems.append(Problem(number, "stage_history", history[0][1].isoformat(),
                                    N_("A stage change before the opened date.")))
        if history and closed is not None and history[-1][1] > closed:
            later = next(day for _, day in history if day > closed)
            problems.append(Problem(number, "stage_history", later.isoformat(), N_(
                "A stage change after the closed date %(closed)s: the deal's history cannot "
                "go on after it closed.", closed=closed.isoformat())))
        if history and history[-1][0] != values["stage"]:
            problems.append(Problem(number, "stage_history", STAGE_NAMES[history[-1][0]],
                                    N_("The last stage in the history is not the stage "
                                       "'%(stage)s'.", stage=STAGES_NAMED[values["stage"]])))
    return problems


def parse_file(kind: str, records: Sequence[Sequence[str]],
               limits: UploadLimits | None = None,
               mapping: Mapping[str, str | None] | None = None, *,
               width_checked: bool = False) -> Parsed:
    """Like parse_rows, but a file that cannot be read becomes a file-level problem."""
    try:
        return parse_rows(kind, records, limits, mapping, width_checked=width_checked)
    except FileRefused as error:
        return refused(kind, error)


def refused(kind: str, error: FileRefused) -> Parsed:
    return Parsed(kind=kind, problems=[Problem(None, "", "", error.message)])


def parse_csv(kind: str, data: bytes, limits: UploadLimits | None = None) -> Parsed:
    try:
        records = read_csv(data, limits)
    except FileRefused as error:
        return refused(kind, error)
    return parse_file(kind, records, limits, width_checked=True)


# Numbers Excel holds exactly: up to 15 significant digits.
EXCEL_EXACT_LIMIT = 10**15


# A number format that shows a whole number with leading zeros, perhaps between literal text
# ("KA-"0000, \R00000): how a workbook keeps an employee or customer id typed as a number
# (001234) showing as typed. A CSV saved from it holds the shown text, and so does the import.
# Text is quoted, a character escaped, or one of those Excel shows as they are ($-+/():!^&'~{}<>=
# and space).
_FORMAT_TEXT = r"""(?:"[^"]*"|\\.|[$\-+/():!^&'~{}<>= ])*"""
ZERO_PADDED_FORMAT = re.compile(rf"({_FORMAT_TEXT})(0{{2,}})({_FORMAT_TEXT})")
_FORMAT_LITERAL = re.compile(r'"([^"]*)"|\\(.)')


@dataclass(frozen=True)
class ZeroPadded:
    """How a zero-padding number format shows a whole number: `before`, the number in at
    least `digits` digits, `after`."""

    before: str
    digits: int
    after: str

    def shown(self, value: Any) -> str | None:
        """The cell's value as the format shows it, or None for a value it does not pad (not
        a whole number at least 0 that Excel holds exactly)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, float) and not value.is_integer():
            return None
        if not 0 <= value < EXCEL_EXACT_LIMIT:
            return None
        return f"{self.before}{int(value):0{self.digits}d}{self.after}"


def zero_padded(code: str) -> ZeroPadded | None:
    """The ZeroPadded a number format code (000000, "R"0000) is, or None for any other code."""
    match = ZERO_PADDED_FORMAT.fullmatch(code)
    if match is None:
        return None

    def literal(part: str) -> str:
        return _FORMAT_LITERAL.sub(lambda found: found[1] if found[1] is not None else found[2],
                                   part)

    return ZeroPadded(literal(match[1]), len(match[2]), literal(match[3]))


# Excel's built-in percentage formats, by number: a workbook names them without their code.
BUILTIN_PERCENT_FORMATS = {9: "0%", 10: "0.00%"}
# The tokens of a number format's section: quoted text, an escaped character, a character
# after ! (shown as it is), a space as wide as the character after _, a fill (*x), a bracket
# ([Red], [$-804], [>100]), a digit placeholder, or any other character.
_FORMAT_TOKEN = re.compile(r'"([^"]*)"|\\(.)|!(.)|_(.)|\*(.)|(\[[^\]]*\])|([0#?])|(.)', re.S)
# Characters a format shows as they are without quotes (see _FORMAT_TEXT).
_FORMAT_PLAIN = set("$-+/():^&'~{}<>= ")
# Brackets that only colour a number or name its locale ([Red], [颜色10], [$-804]).
_FORMAT_COLOUR_OR_LOCALE = re.compile(r"\[(?:[A-Za-z]+|颜色\d+|Color\d+|\$-[0-9A-Fa-f]+)\]")


@dataclass(frozen=True)
class ScaledNumber:
    """How a number format that scales a number shows it: as a percentage (0%: 0.85 as 85%),
    in thousands or millions (a comma after the last digit: #,##0, shows 120000 as 120), or
    with a point written as text among its digits (0!.0000 shows 120000 as 12.0000, yuan
    shown in 万). A CSV saved from the workbook holds the shown text, and the import reads
    the cell as that text: `before`, the number, `after`."""

    before: str
    after: str
    percent: int = 0  # % signs: each multiplies by 100
    thousands: int = 0  # commas after the last digit: each divides by 1,000
    grouped: bool = False  # a comma between digits: thousands separated
    least_digits: int = 1  # the 0 placeholders before the point: the fewest digits shown
    decimals: int = 0  # the placeholders after the decimal point
    text_point: int | None = None  # the placeholders after a point written as text

    def shown(self, value: Any) -> str | None:
        """The cell's value as the format shows it, or None for a value that is not a
        finite number."""
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                not math.isfinite(value)):
            return None
        scaled = Decimal(repr(value)) * 100 ** self.percent / 1000 ** self.thousands
        step = Decimal(1).scaleb(-self.decimals)
        sign = "-" if scaled.quantize(step, ROUND_HALF_UP) < 0 else ""  # never -0%
        size = abs(scaled)
        if self.text_point is not None:
            width = self.least_digits + self.text_point
            digits = f"{size.to_integral_value(ROUND_HALF_UP):0{width}f}"
            number = (f"{digits[:-self.text_point]}.{digits[-self.text_point:]}"
                      if self.text_point else digits)
        else:
            number = f"{size.quantize(step, ROUND_HALF_UP):{',' if self.grouped else ''}f}"
            whole, point, fraction = number.partition(".")
            if len(whole.replace(",", "")) < self.least_digits:
                whole = whole.zfill(self.least_digits)
            elif self.least_digits == 0 and whole == "0":
                whole = ""  # #.00% shows 0.85% as .85%
            number = whole + point + fraction
        return f"{self.before}{sign}{number}{self.after}"


# A unit that multiplies the number it follows (120万, 1.5千元, 3亿), as CELL_UNITS reads them.
UNIT_MULTIPLIER = re.compile("[十百千万亿]")


@dataclass(frozen=True)
class UnitLabelled:
    """How a number format that labels a number with a unit without scaling it shows it:
    0.00"万元" shows 120 as 120.00万元, an amount of 1,200,000 yuan. The cell reads as its value
    with the format's text around it (120万元): the unit is read as a unit written in the cell
    is (CELL_UNITS), and the value keeps the digits the cell holds (1.234 is 12,340 yuan even
    where the format shows 1.23)."""

    before: str
    after: str

    def shown(self, value: Any) -> str | None:
        """The cell's value labelled as the format labels it, or None for a value that is not
        a finite number."""
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                not math.isfinite(value)):
            return None
        return f"{self.before}{cell_text(value)}{self.after}"


def scaled_number(code: str) -> ScaledNumber | UnitLabelled | None:
    """The ScaledNumber a number format code is (its first section: the one for numbers at
    least 0), the UnitLabelled one for a code that only labels the number with a unit that
    multiplies it (0"万"), or None for a code that does neither or that this reading does not
    follow (dates, text, exponents, conditions)."""
    tokens: list[tuple[str, str]] = []  # (kind, text): text, digit, point, comma, percent
    for match in _FORMAT_TOKEN.finditer(code):
        quoted, escaped, bang, space, fill, bracket, digit, other = match.groups()
        if other == ";":
            break
        if fill is not None:
            continue
        if bracket is not None:
            if not _FORMAT_COLOUR_OR_LOCALE.fullmatch(bracket):
                return None
            continue
        literal = next((text for text in (quoted, escaped, bang) if text is not None), None)
        if literal is not None or space is not None:
            tokens.append(("text", " " if space is not None else literal))
        elif digit is not None:
            tokens.append(("digit", digit))
        elif other in (".", ",", "%"):
            tokens.append(({".": "point", ",": "comma", "%": "percent"}[other], other))
        elif other in _FORMAT_PLAIN:
            tokens.append(("text", other))
        else:
            return None
    places = [index for index, (kind, _) in enumerate(tokens) if kind == "digit"]
    if not places:
        return None
    first, last = places[0], places[-1]
    middle = tokens[first:last + 1]
    points = [index for index, (kind, _) in enumerate(middle) if kind == "point"]
    text_points = [index for index, (kind, text) in enumerate(middle)
                   if kind == "text" and text == "."]
    if len(points) + len(text_points) > 1 or any(
            kind == "text" and text != "." or kind == "percent" for kind, text in middle):
        return None
    point_at = (points or text_points or [len(middle)])[0]
    after_point = sum(1 for kind, _ in middle[point_at:] if kind == "digit")
    thousands = 0
    rest = tokens[last + 1:]
    while rest and rest[0][0] == "comma":
        thousands += 1
        rest = rest[1:]
    if any(kind in ("comma", "point", "digit") for kind, _ in rest) or any(
            kind in ("comma", "point") for kind, _ in tokens[:first]):
        return None
    percent = sum(1 for kind, _ in tokens if kind == "percent")
    before, after = "".join(text for _, text in tokens[:first]), "".join(text for _, text in rest)
    if not (percent or thousands or text_points):
        return UnitLabelled(before, after) if UNIT_MULTIPLIER.search(after) else None
    return ScaledNumber(
        before=before, after=after, percent=percent, thousands=thousands,
        grouped=any(kind == "comma" for kind, _ in middle[:point_at]),
        least_digits=sum(1 for kind, text in middle[:point_at] if text == "0"),
        decimals=after_point if points else 0,
        text_point=after_point if text_points else None)


# How a number format shows a number unlike the number itself (shown_number).
ShownNumber = ZeroPadded | ScaledNumber | UnitLabelled


def shown_number(format_id: int, custom_code: str | None) -> ShownNumber | None:
    """How a workbook's number format shows a number unlike the number itself (zero-padded,
    scaled or labelled with a unit that multiplies it), or None if it shows the number as a CSV of the cell's value holds it: a
    built-in percentage by its number, a custom format by its code (None for a built-in)."""
    if format_id in BUILTIN_PERCENT_FORMATS:
        return scaled_number(BUILTIN_PERCENT_FORMATS[format_id])
    if custom_code is None:
        return None
    return zero_padded(custom_code) or scaled_number(custom_code)


def cell_text(value: Any) -> str:
    """A spreadsheet cell as the text a CSV export would hold."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else (
            value.isoformat(sep=" "))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        if abs(value) >= EXCEL_EXACT_LIMIT:
            # Excel keeps 15 significant digits: the rest of a longer number (an 18-digit id
            # typed as a number) is not what was typed. Shown as Excel shows it, 1.23456789012346E+17.
            return f"{value:.15G}".replace("E+0", "E+")
        if value.is_integer():
            return str(int(value))
        # The 15 significant digits Excel shows: a computed 1320.0000000000002 is 1320.
        rounded = float(f"{value:.15g}")
        if rounded.is_integer():
            return str(int(rounded))
        # Python writes a small number as 8e-05; Excel shows the cell, and a CSV holds it, as
        # 0.00008 (an amount of 8,000 yuan in 亿元).
        shown = repr(rounded)
        return format(Decimal(shown), "f") if "e" in shown else shown
    return str(value)


# --- the mapping step's preview -----------------------------------------------------------------

@dataclass(frozen=True)
class PreviewCell:
    """One value of a previewed row: as it would be stored, or the problem reading it."""

    field: str
    raw: str
    value: str
    problem: Message | None = None


@dataclass(frozen=True)
class PreviewRow:
    number: int  # as Excel shows it
    cells: tuple[PreviewCell, ...]


def chosen_positions(header: Sequence[str], columns: Mapping[str, str]) -> dict[str, int]:
    """Field -> its column's index in `header` (cells cleaned), by `columns` (file column ->
    field); the first column chosen for a field."""
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        target = columns.get(name)
        if target is not None and target not in positions:
            positions[target] = index
    return positions


def shown_value(value: Any) -> str:
    """A typed value as the preview shows it: dates ISO, amounts with separators."""
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, tuple):
        return ";".join(f"{stage}:{day.isoformat()}" for stage, day in value)
    return str(value)


def preview_rows(kind: str, records: Sequence[Sequence[str]], columns: Mapping[str, str],
                 count: int, day_zero: date = EXCEL_DAY_ZERO,
                 notes_below: Collection[int] = (), header_row: int = HEADER_ROW,
                 unit_note: UnitNote | None = None) -> list[PreviewRow]:
    """The first `count` data rows read by `columns` (file column -> field), cell by cell;
    serial numbers of days counted from `day_zero`; the rows numbered in `notes_below` (notes
    below the table: FileShape) left out, as totals rows are."""
    if not records:
        return []
    header = [clean_cell(cell) for cell in records[0]]
    positions = chosen_positions(header, columns)
    parsed = Parsed(kind=kind, unit_note=unit_note)
    finish_positions(kind, header, positions, parsed, default_limits())
    shown = [column.name for column in COLUMNS[kind] if column.name in parsed.columns]
    totals = TotalsCells.of(kind, positions)
    rows = []
    fill_down = FillDown()
    for offset, record in enumerate(records[1:]):
        if len(rows) >= count:
            break
        given, record = record, [clean_cell(cell) for cell in record]
        number = header_row + 1 + offset
        if not any(record):
            continue
        record = fill_down.filled(given, record)
        without_value = cells_without_value(given, record, positions)
        no_value = [no_value_problem(number, name, index, given, record)
                    for name, index in without_value.items()]
        if number in notes_below or totals.word(record) is not None:
            continue
        for index in without_value.values():
            record[index] = ""
        values, problems = typed_values(kind, number, record, positions, parsed,
                                        day_zero=day_zero)
        # After the required-value problems of the same cells, which they replace.
        problems += no_value
        by_field = {problem.column: problem for problem in problems}
        cells = []
        for name in shown:
            index = positions.get(name)
            raw = record[index] if index is not None and index < len(record) else ""
            if name in without_value:
                raw = by_field[name].value
            problem = by_field.get(name)
            cells.append(PreviewCell(name, raw, "" if problem else shown_value(values.get(name)),
                                     problem.reason if problem else None))
        rows.append(PreviewRow(number, tuple(cells)))
    return rows
