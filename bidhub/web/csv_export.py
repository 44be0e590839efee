"""CSV downloads that Excel opens safely: formulas neutralised, UTF-8 with BOM, never cached."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from flask import Response, current_app, request
from flask_babel import force_locale

from bidhub.web.i18n import best_language

# Excel (and LibreOffice, Google Sheets) read a cell starting with one of these as a formula,
# so text a user typed (a reason, an explanation, a name) could run as one in a manager's Excel.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# Digits Excel would read as a number and not show as written: a leading zero dropped (a
# customer number 000123 becomes 123), more than 11 shown as 1.23457E+11, more than 15 cut.
KEPT_AS_TYPED = re.compile(r"0[0-9]+|[0-9]{12,}")


def neutralise(value: Any) -> Any:
    """The cell as it is safe to write: text that could start a formula gets a leading quote.

    Numbers stay numbers (a negative number is not a formula); None is an empty cell. Text of
    digits that Excel would not show as written (KEPT_AS_TYPED) is written as Excel's own text
    formula ="000123", which it shows as 000123; bidhub's imports read it back so too.
    """
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    if KEPT_AS_TYPED.fullmatch(text):
        return f'="{text}"'
    return text


def csv_bytes(header: Sequence[Any], rows: Iterable[Sequence[Any]],
              trailing_rows: Iterable[Sequence[Any]] = ()) -> bytes:
    """The file: header, rows, then any trailing rows, each cell neutralised; UTF-8 with BOM."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for records in ((header,), rows, trailing_rows):
        writer.writerows([neutralise(cell) for cell in record] for record in records)
    # The byte-order mark makes Excel read the file as UTF-8, so Chinese names show correctly.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def csv_response(filename: str, header: Sequence[Any], rows: Iterable[Sequence[Any]],
                 trailing_rows: Iterable[Sequence[Any]] = ()) -> Response:
    """A CSV attachment that no browser or proxy keeps a copy of."""
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", filename) or "export.csv"
    return Response(csv_bytes(header, rows, trailing_rows), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{safe_name}"',
        "Cache-Control": "no-store",
    })


@contextlib.contextmanager
def export_language() -> Iterator[None]:
    """The language of an export's header row and labels: `?lang=en` or `?lang=zh_CN` when
    asked, else the page's (Chinese unless the person or their browser chose English).

    Codes become labels and the header row is translated; dates stay ISO (2026-03-02 09:00)
    and amounts plain numbers, which Excel reads as such in either language.
    """
    requested = request.args.get("lang", "")[:16]
    locale = best_language([(requested, 1.0)], current_app.config["LANGUAGES"])
    if locale is None:
        yield
        return
    with force_locale(locale):
        yield
