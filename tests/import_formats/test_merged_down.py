"""Cells merged down over several rows (a rep's name over the accounts they hold, a branch over
its accounts): Excel shows the one value over every row it covers, and the file holds it in
the first row only. Each row of the table reads it, in every format that can merge; cells
merged down from the column names, or over rows above them, are no value."""

from __future__ import annotations

from html import escape

import pytest
from sqlalchemy import select

from bidhub.domain.imports import COVERED, MergedDown, preview_rows
from bidhub.models import Account, Branch, User
from tests.conftest import reload
from tests.import_formats.conftest import xls_of, xlsx_of
from tests.import_formats.test_spreadsheet_xml import HEAD, sheet

HEADER = ["客户编号", "客户名称", "行业", "所有制", "分公司", "年度金额", "所属销售"]
# The roster as Excel shows it: 分公司 merged over rows 2-5, 所属销售 over rows 2-4 and 6-7.
SHOWN = [["KA-1", "甲公司", "互联网", "民营", "BJ", "100000", "R1001"],
         ["KA-2", "乙公司", "能源", "国有", "BJ", "200000", "R1001"],
         ["KA-3", "丙公司", "制造业", "民营", "BJ", "300000", "R1001"],
         ["KA-4", "丁公司", "物流", "民营", "BJ", "400000", "R1002"],
         ["KA-5", "戊公司", "汽车", "国有", "SH", "500000", "R1003"],
         ["KA-6", "己公司", "汽车", "民营", "SH", "600000", "R1003"]]
MERGED = ["E2:E5", "G2:G4", "G6:G7"]  # as Excel names them: rows from 1, the header row 1


def covered_places() -> set[tuple[int, int]]:
    """(row index in SHOWN, column index) of the places the merged cells cover."""
    places = set()
    for merged in MERGED:
        first, last = merged.split(":")
        column = ord(first[0]) - ord("A")
        places.update((row - 2, column) for row in range(int(first[1:]) + 1, int(last[1:]) + 1))
    return places


def as_saved() -> list[list[str]]:
    """The records as the file holds them: each covered place empty."""
    covered = covered_places()
    return [HEADER] + [["" if (row, column) in covered else value
                        for column, value in enumerate(record)]
                       for row, record in enumerate(SHOWN)]


def spreadsheet_xml() -> bytes:
    covered, down = covered_places(), {}
    for merged in MERGED:
        first, last = merged.split(":")
        down[int(first[1:]) - 2, ord(first[0]) - ord("A")] = int(last[1:]) - int(first[1:])
    rows = ["<Row>" + "".join(f'<Cell><Data ss:Type="String">{name}</Data></Cell>'
                              for name in HEADER) + "</Row>"]
    for row, record in enumerate(SHOWN):
        cells, skipped = [], False
        for column, value in enumerate(record):
            if (row, column) in covered:
                skipped = True
                continue
            index = f' ss:Index="{column + 1}"' if skipped else ""
            merge = f' ss:MergeDown="{down[row, column]}"' if (row, column) in down else ""
            cells.append(f'<Cell{index}{merge}><Data ss:Type="String">{escape(value)}</Data>'
                         "</Cell>")
            skipped = False
        rows.append(f"<Row>{''.join(cells)}</Row>")
    return (HEAD + sheet("客户", rows) + "</Workbook>").encode()


def web_page() -> bytes:
    covered, down = covered_places(), {}
    for merged in MERGED:
        first, last = merged.split(":")
        down[int(first[1:]) - 2, ord(first[0]) - ord("A")] = int(last[1:]) - int(first[1:]) + 1
    rows = ["<tr>" + "".join(f"<th>{name}</th>" for name in HEADER) + "</tr>"]
    for row, record in enumerate(SHOWN):
        rows.append("<tr>" + "".join(
            f'<td rowspan="{down[row, column]}">{escape(value)}</td>' if (row, column) in down
            else f"<td>{escape(value)}</td>"
            for column, value in enumerate(record) if (row, column) not in covered) + "</tr>")
    return ('<html><head><meta charset="utf-8"></head><body><table>' + "\n".join(rows)
            + "</table></body></html>").encode()


FILES = {"accounts.xlsx": lambda: xlsx_of(as_saved(), merged=MERGED),
         "accounts.xls": lambda: xls_of(as_saved(), merged=MERGED),
         "accounts-xml.xls": spreadsheet_xml,
         "accounts-page.xls": web_page}


@pytest.mark.parametrize("filename", FILES)
def test_each_row_reads_the_cell_merged_down_over_it(session, reps, run_import, filename):
    result = run_import("accounts", FILES[filename](), filename)
    assert (result.status, result.added, result.problems) == ("imported", len(SHOWN), [])
    assert result.merged_down == ["分公司", "所属销售"]  # the report names them
    reload(session)
    stored = session.execute(select(Account.external_id, Branch.code, User.external_id)
                             .join(Branch, Branch.id == Account.branch_id)
                             .outerjoin(User, User.id == Account.owner_id)
                             .order_by(Account.external_id)).all()
    assert [tuple(row) for row in stored] == [
        (record[0], record[4], record[6]) for record in SHOWN]


def test_the_preview_shows_each_row_the_merged_cell_over_it():
    records = [HEADER, *(list(record) for record in SHOWN)]
    for row, column in covered_places():
        records[row + 1][column] = COVERED
    columns = {"客户编号": "external_id", "分公司": "branch", "所属销售": "owner"}
    rows = preview_rows("accounts", records, columns, 10)
    assert [[cell.raw for cell in row.cells] for row in rows] == [
        [record[0], record[4], record[6]] for record in SHOWN]


def test_a_cell_merged_down_from_the_column_names_gives_the_first_row_nothing(
        session, reps, run_import):
    """所属销售 merged over the header row and the first row: the name is no owner."""
    records = [HEADER, *(list(record) for record in SHOWN[:2])]
    records[1][6] = ""
    result = run_import("accounts", xlsx_of(records, merged=["G1:G2"]), "accounts.xlsx")
    assert (result.status, result.added) == ("imported", 2), result.problems
    reload(session)
    owners = dict(session.execute(select(Account.external_id, Account.owner_id)).all())
    assert owners["KA-1"] is None and owners["KA-2"] is not None
    assert result.merged_down == []


def test_a_merged_down_cell_reads_as_an_empty_cell_until_a_row_of_the_table_reads_it():
    """The file's shape (titles, blank rows, notes) is read with covered cells empty."""
    assert COVERED == "" and not COVERED and type(COVERED) is MergedDown
    assert COVERED.strip() == "" and type(COVERED.strip()) is str


def test_a_workbook_part_is_searched_for_merged_ranges_piece_by_piece(monkeypatch):
    """A range cut between two pieces of the part is read whole; ranges over one row are no
    merge down."""
    import io

    from bidhub.services import imports

    monkeypatch.setattr(imports, "SCAN_CHUNK", 37)
    ranges = "".join(f'<x:mergeCell ref="C{row}:D{row + 2}"/>' for row in range(2, 300, 3))
    part = ('<x:worksheet><x:sheetData><x:row r="1"><x:c r="A1" t="inlineStr"><x:is><x:t>'
            "mergeCells</x:t></x:is></x:c></x:row></x:sheetData>"
            f'<x:mergeCells count="100">{ranges}<x:mergeCell ref="A1:F1"/></x:mergeCells>'
            "</x:worksheet>").encode()
    assert imports.merged_down(io.BytesIO(part)) == [(row, row + 2, 2) for row in range(2, 300, 3)]


def test_a_range_merged_right_of_every_row_widens_none():
    from bidhub.domain.imports import CoveredCells

    covered = CoveredCells([(1, 4, 16_000), (1, 3, 1)])
    rows = [covered.marked(row, record) for row, record in
            enumerate([["a", "b"], ["c", ""], ["d"], ["e", "f"]], start=1)]
    assert rows == [["a", "b"], ["c", ""], ["d", ""], ["e", "f"]]
    assert [type(row[1]) for row in rows[1:3]] == [MergedDown, MergedDown]
