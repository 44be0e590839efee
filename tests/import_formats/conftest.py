"""What the tests of each file format share: the samples' rows, workbooks written as Excel
writes them, branches, an import."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import xlwt
from openpyxl import Workbook
from openpyxl.utils.cell import range_boundaries
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from bidhub.services.imports import import_file

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def sample_records(kind: str) -> list[list[str]]:
    """A sample CSV's rows (the column names first), to write in another format."""
    return list(csv.reader(io.StringIO((SAMPLES / f"{kind}.csv").read_text("utf-8-sig"))))


def xlsx_workbook(records: Sequence[Sequence[object]], system: int = 1900, *,
                  merged: Sequence[str] = ()) -> Workbook:
    """A workbook of one sheet holding `records` (a list per row, [] for a blank row), its
    days counted in the 1900 or 1904 `system`, the `merged` ranges ("A1:D1") merged: to save
    with `saved`, once a test has changed what the records cannot say (a fill, a style)."""
    workbook = Workbook()
    if system == 1904:
        workbook.epoch = CALENDAR_MAC_1904
    for record in records:
        workbook.active.append(list(record))
    for cells in merged:
        workbook.active.merge_cells(cells)
    return workbook


def saved(workbook: Any) -> bytes:
    """A workbook (openpyxl's or xlwt's) as the bytes of its file."""
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def xlsx_of(records: Sequence[Sequence[object]], system: int = 1900, *,
            merged: Sequence[str] = ()) -> bytes:
    """An .xlsx file as Excel saves it: see `xlsx_workbook`."""
    return saved(xlsx_workbook(records, system, merged=merged))


def xls_of(records: Sequence[Sequence[object]], system: int = 1900, *,
           merged: Sequence[str] = (), hidden_first: bool = False, sheet_name: str = "导出数据",
           styles: Mapping[tuple[int, int], xlwt.XFStyle] | None = None) -> bytes:
    """A workbook as Excel 97-2003 writes it, its empty cells not written: days counted in the
    1900 or 1904 `system`, the `merged` ranges ("A1:D1") holding their first cell's value,
    `styles` by (row, column) from 0; with `hidden_first`, a hidden sheet before it (a CRM's
    notes, or the lists its drop-downs read)."""
    workbook = xlwt.Workbook(encoding="utf-8")
    workbook.dates_1904 = system == 1904
    if hidden_first:
        notes = workbook.add_sheet("说明")
        notes.write(0, 0, "导出说明")
        notes.visibility = 1
    sheet = workbook.add_sheet(sheet_name)
    covered: set[tuple[int, int]] = set()
    for cells in merged:
        first_column, first_row, last_column, last_row = (
            number - 1 for number in range_boundaries(cells))
        sheet.write_merge(first_row, last_row, first_column, last_column,
                          records[first_row][first_column])
        covered.update((row, column) for row in range(first_row, last_row + 1)
                       for column in range(first_column, last_column + 1))
    for row, record in enumerate(records):
        for column, value in enumerate(record):
            if value not in ("", None) and (row, column) not in covered:
                style = (styles or {}).get((row, column))
                sheet.write(row, column, value, *([style] if style else []))
    workbook.set_active_sheet(1 if hidden_first else 0)
    return saved(workbook)


@pytest.fixture
def branches(make_branch):
    return {code: make_branch(code, name)
            for code, name in (("BJ", "Beijing"), ("SH", "Shanghai"), ("GZ", "Guangzhou"))}


@pytest.fixture
def run_import(session, make_admin, clock):
    admin = make_admin()

    def run(kind: str, data: bytes, filename: str):
        return import_file(session, admin, kind, filename, data, valid_rows_only=False,
                           now=clock())

    return run


@pytest.fixture
def reps(session, branches, run_import):
    """The sample reps, imported: the owners an accounts file names."""
    result = run_import("reps", "\n".join(",".join(record) for record in sample_records("reps"))
                        .encode(), "reps.csv")
    assert result.status == "imported", result.problems
