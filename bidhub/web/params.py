"""Turning untrusted text from URLs, query strings and hidden fields into ids, numbers and days."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime

from flask import Flask
from werkzeug.routing import BaseConverter, ValidationError

from bidhub.domain.typed_text import visible_text

# The largest value of an INTEGER column on PostgreSQL (ids, versions and yuan amounts are
# INTEGER there); a larger number cannot name a row and fails inside the query.
MAX_DB_INT = 2**31 - 1
MAX_ID = MAX_DB_INT
# Dates outside these years are typing mistakes or probes, and years near 1 or 9999 overflow
# when moved between time zones.
MIN_YEAR = 2000
MAX_YEAR = 2100
# The text a multi-line field may hold besides printable characters.
LINE_CONTROLS = frozenset("\t\r\n")
# Unicode's control characters (general category Cc), all 65 of them: one regular expression
# finds them at C speed where asking unicodedata about each character of a long text did not.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")

_ASCII_WHOLE = re.compile(r"[0-9]{1,19}")
_ASCII_SIGNED_WHOLE = re.compile(r"[+-]?[0-9]{1,19}")
_ASCII_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class IdConverter(BaseConverter):
    """`<int:...>` in a route: ASCII digits naming 1..MAX_ID; anything else matches no route.

    Werkzeug's own converter accepts any Unicode digit and numbers too large for the database,
    which reach a query and fail there.
    """

    regex = r"[0-9]{1,10}"
    weight = 50

    def __init__(self, url_map, *args, **kwargs) -> None:
        super().__init__(url_map)

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None:
            raise ValidationError()
        return number

    def to_url(self, value) -> str:
        return str(int(value))


class CodeConverter(BaseConverter):
    """`<code:...>` in a route (a bid's review code): 1 to 16 ASCII letters and digits, the
    width of the column it is looked up in; anything else matches no route."""

    regex = r"[A-Za-z0-9]{1,16}"


def init_app(app: Flask) -> None:
    """Every integer in a route is an id, every other argument a short code; registered before
    any blueprint adds its routes."""
    app.url_map.converters["int"] = IdConverter
    app.url_map.converters["code"] = CodeConverter


def parse_int(text: str | None, *, minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """A whole number written in ASCII digits (an optional sign) within bounds; else None.

    `str.isdigit()` accepts `²` and `①`, and `int()` accepts `1_000`, Arabic-Indic digits and
    spaces; neither is what a form or a link sends.
    """
    if text is None:
        return None
    text = text.strip()
    pattern = _ASCII_SIGNED_WHOLE if minimum < 0 else _ASCII_WHOLE
    if not pattern.fullmatch(text):
        return None
    number = int(text)
    return number if minimum <= number <= maximum else None


# An amount as people write one: an optional ¥, ASCII digits (thousands commas allowed), an
# optional fraction, an optional unit. The full-width punctuation of a Chinese input method
# counts too; full-width digits do not (like every other number field, see parse_int).
_AMOUNT = re.compile(r"(?P<sign>-?)[¥]?\s*(?P<number>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)"
                     r"(?:\.(?P<fraction>[0-9]+))?\s*(?P<unit>万元|万|亿元|亿|元|[wW])?")
_FULL_WIDTH = str.maketrans("０１２３４５６７８９，．￥－\u3000", "0123456789,.¥- ")
# w (wan) is how people type 万 in a hurry: 10w is 100,000.
_UNIT_YUAN = {None: 1, "元": 1, "万": 10_000, "万元": 10_000, "w": 10_000, "W": 10_000,
              "亿": 100_000_000, "亿元": 100_000_000}
MAX_AMOUNT_CHARS = 40


def parse_yuan(text: str | None, *, maximum: int = MAX_DB_INT) -> int | None:
    """Whole yuan from an amount as people type it, or None when it is not one.

    100000, 100,000, ¥100,000 and 100000元 are 100000; 10万 (or 10w) is 100000 and 1.2万 is
    12000 (万 is 10,000, 亿 100,000,000: Chinese exports and people count in them). A fraction of a
    yuan (1.23456万) is refused, as is anything beyond ±maximum. A minus sign is kept so that
    the caller's range check can say what is allowed.
    """
    if text is None or len(text) > MAX_AMOUNT_CHARS:
        return None
    match = _AMOUNT.fullmatch(text.translate(_FULL_WIDTH).strip())
    if match is None:
        return None
    digits = match["number"].replace(",", "")
    fraction = match["fraction"] or ""
    scaled = int(digits + fraction) * _UNIT_YUAN[match["unit"]]
    whole, remainder = divmod(scaled, 10 ** len(fraction))
    if remainder or whole > maximum:
        return None
    return -whole if match["sign"] else whole


def parse_id(text: str | None) -> int | None:
    """A row id (1..MAX_ID) from text, or None."""
    return parse_int(text, minimum=1)


def parse_version(text: str | None) -> int:
    """A hidden version field; -1 (which matches no row's version) when absent or malformed."""
    version = parse_int(text, minimum=0, maximum=MAX_DB_INT)
    return -1 if version is None else version


def is_sensible_year(year: int) -> bool:
    return MIN_YEAR <= year <= MAX_YEAR


def parse_day(text: str | None) -> date | None:
    """A YYYY-MM-DD day between MIN_YEAR and MAX_YEAR, or None."""
    day = day_of_any_year(text)
    return day if day is not None and is_sensible_year(day.year) else None


def day_of_any_year(text: str | None) -> date | None:
    """A YYYY-MM-DD day of whatever year, or None: tells a day outside the years parse_day
    takes from text that is no day at all."""
    if text is None:
        return None
    text = text.strip()
    if not _ASCII_DAY.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return None


def control_characters(text: str, *, multiline: bool = False) -> list[str]:
    """The control characters in `text` that no field should store (NUL first among them).

    PostgreSQL refuses NUL outright; the others break CSV exports, logs and terminals.
    Multi-line text keeps its tabs and line breaks.
    """
    found = CONTROL_CHARACTERS.findall(text)
    return [char for char in found if char not in LINE_CONTROLS] if multiline else found


def without_control_characters(text: str, *, multiline: bool = False) -> str:
    """`text` less the characters control_characters() refuses."""
    refused = set(control_characters(text, multiline=multiline))
    return "".join(char for char in text if char not in refused) if refused else text


def clean_text(text: str | None, max_length: int) -> str:
    """Query-string text for a search or filter: control characters removed, length bounded."""
    if not text:
        return ""
    return CONTROL_CHARACTERS.sub("", text)[:max_length]


def text_arg(args: Mapping[str, str], name: str, max_length: int) -> str:
    return clean_text(args.get(name), max_length)


# The most of a refused value a message quotes back.
QUOTED_CHARS = 32


def quoted(text: str | None) -> str:
    """`text` as a message quotes it back: without control and format characters (a
    right-to-left mark would turn the message's own text around), surrounding spaces
    stripped, and cut to QUOTED_CHARS characters with "…" when it is longer, so that the
    reader sees it was cut."""
    shown = visible_text(CONTROL_CHARACTERS.sub("", text or ""))
    return shown if len(shown) <= QUOTED_CHARS else f"{shown[:QUOTED_CHARS]}…"


def quoted_arg(args: Mapping[str, str], name: str) -> str:
    """The query's value of `name` as a message quotes it back (`quoted`)."""
    return quoted(args.get(name))


def int_arg(args: Mapping[str, str], name: str, *, minimum: int = 0,
            maximum: int = MAX_ID) -> int | None:
    return parse_int(args.get(name), minimum=minimum, maximum=maximum)


def id_arg(args: Mapping[str, str], name: str) -> int | None:
    return parse_id(args.get(name))


def day_arg(args: Mapping[str, str], name: str) -> date | None:
    return parse_day(args.get(name))
