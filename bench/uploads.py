"""Hostile uploads through the real import path: peak memory and time of each, one process each.

    python bench/uploads.py [--keep DIR] [--only NAME ...]

Generates XLSX, CSV, XLS and web-exported files shaped like the ones that took the server down (a 512 MiB
cell, a 1 GiB shared string, 10 million shared strings, rows padded to 16,384 columns, sizes
that lie, CSV with one huge cell, millions of fields or blank lines, 20,000 problem rows, an
.xls whose rows a reader would pad to a far cell), writing the zips by hand and streaming, so
the generator stays small. Each file is imported as an admin
into a fresh SQLite app (create_app + the import service) in its own child process, which
reports its peak resident memory (VmHWM, else getrusage maxrss; the app itself included) and
the time the import took. Exits 1 when
any case reaches 256 MiB or 10 s (60 s for a file within every limit, which is read whole), or
leaves no import record.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from pathlib import Path

from memory import peak_kib  # bench/memory.py, beside this script

MIB = 1024 * 1024
MEMORY_LIMIT_MIB = 256
TIME_LIMIT_SECONDS = 10.0  # a file a limit refuses
# A file within every limit is read whole, as long as its rows take: up to 200,000 rows, which
# a workbook's reader takes several times longer over than a CSV's.
WITHIN_LIMITS_SECONDS = 60.0
KIND = "reps"
HEADER = ("external_id", "username", "name", "branch")

CONTENT_TYPES = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>
</Types>"""
ROOT_RELS = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>
</Relationships>"""
WORKBOOK = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"""
WORKBOOK_RELS = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>
</Relationships>"""
SHEET_START = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
               b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
SST_START = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
             b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')


# --- writing files ---------------------------------------------------------------------------

def repeated(piece: bytes, total: int) -> Iterator[bytes]:
    """`piece` repeated to about `total` bytes (whole pieces only), a MiB at a time."""
    count = max(1, MIB // len(piece))
    left = max(1, total // len(piece))
    while left > 0:
        yield piece * min(count, left)
        left -= count


def header_row() -> bytes:
    cells = "".join(f'<c r="{chr(65 + index)}1" t="inlineStr"><is><t>{name}</t></is></c>'
                    for index, name in enumerate(HEADER))
    return f'<row r="1">{cells}</row>'.encode()


def write_xlsx(path: Path, sheet: Iterable[bytes], shared: Iterable[bytes] = ()) -> None:
    """A workbook whose sheet1.xml and sharedStrings.xml are streamed from the pieces given."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", ROOT_RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        for name, pieces, start, end in (
                ("xl/worksheets/sheet1.xml", sheet, SHEET_START, b"</worksheet>"),
                ("xl/sharedStrings.xml", shared, SST_START, b"</sst>")):
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(start)
                for piece in pieces:
                    member.write(piece)
                member.write(end)


def sheet_data(*pieces: Iterable[bytes] | bytes, dimension: bytes = b"") -> Iterator[bytes]:
    yield dimension + b"<sheetData>" + header_row()
    for piece in pieces:
        if isinstance(piece, bytes):
            yield piece
        else:
            yield from piece
    yield b"</sheetData>"


def xlsx_huge_inline_cell(path: Path) -> None:
    write_xlsx(path, sheet_data(b'<row r="2"><c r="A2" t="inlineStr"><is><t>',
                                repeated(b"a", 512 * MIB), b"</t></is></c></row>"))


def xlsx_huge_shared_string(path: Path) -> None:
    write_xlsx(path, sheet_data(b'<row r="2"><c r="A2" t="s"><v>0</v></c></row>'),
               shared=chain([b"<si><t>"], repeated(b"a", 1024 * MIB), [b"</t></si>"]))


def xlsx_many_shared_strings(path: Path) -> None:
    write_xlsx(path, sheet_data(b'<row r="2"><c r="A2" t="s"><v>0</v></c></row>'),
               shared=repeated(b"<si><t>a</t></si>", 10_000_000 * 17))


def xlsx_rich_text_shared_string(path: Path) -> None:
    """One shared string of 15 MiB in short runs: no single text is long, the whole is."""
    write_xlsx(path, sheet_data(b'<row r="2"><c r="A2" t="s"><v>0</v></c></row>'),
               shared=chain([b"<si>"], repeated(b"<r><t>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</t></r>",
                                                 15 * MIB), [b"</si>"]))


RUN = b"<r><t>a</t></r>"


def xlsx_widest_row_of_runs(path: Path) -> None:
    """What the limits still let through: a row of 100 cells, each 31 KiB of one-letter runs.

    openpyxl keeps a row's whole tree until the row ends; this is the biggest such tree.
    """
    def cells() -> Iterator[bytes]:
        for index in range(100):
            column = (chr(65 + index // 26 - 1) if index >= 26 else "") + chr(65 + index % 26)
            yield (f'<c r="{column}2" t="inlineStr"><is>'.encode() + RUN * (31 * 1024 // len(RUN))
                   + b"</is></c>")
    write_xlsx(path, sheet_data(b'<row r="2">', cells(), b"</row>"))


def xlsx_allowed_runs(path: Path) -> None:
    """As many formatted runs as the limits allow, in one row's cells."""
    write_xlsx(path, sheet_data(b'<row r="2">', (
        f'<c r="{chr(65 + index)}2" t="inlineStr"><is>'.encode() + RUN * 800 + b"</is></c>"
        for index in range(25)), b"</row>"))


def xlsx_wide_row_without_references(path: Path) -> None:
    """One row of 500,000 cells that name no column: a reader counts them instead."""
    write_xlsx(path, sheet_data(b'<row r="2">', repeated(b"<c><v>1</v></c>", 500_000 * 15),
                                b"</row>"))


def largest_allowed_rows(row: Callable[[int], str]) -> Iterator[str]:
    for number in range(2, 20_002):
        yield row(number)


def xlsx_largest_allowed(path: Path) -> None:
    """Near every limit: 20,000 rows of 12 cells, 150,000 distinct shared strings."""
    letters = [chr(65 + index) for index in range(12)]

    def row(number: int) -> str:
        first = (number - 2) * 12
        return (f'<row r="{number}">' + "".join(
            f'<c r="{letter}{number}" t="s"><v>{(first + index) % 150_000}</v></c>'
            for index, letter in enumerate(letters)) + "</row>")

    write_xlsx(path, sheet_data(line.encode() for line in largest_allowed_rows(row)),
               shared=(f"<si><t>text {index:06d} of the CRM export</t></si>".encode()
                       for index in range(150_000)))


def csv_largest_allowed(path: Path) -> None:
    """Near the CSV limits: 20,000 rows of 12 cells."""
    with path.open("w", encoding="utf-8") as file:
        file.write(",".join(HEADER) + "\n")
        for line in largest_allowed_rows(lambda number: ",".join(
                f"text {number:06d}-{index:02d} of the CRM export" for index in range(12))):
            file.write(line + "\n")


def xlsx_padded_rows(path: Path) -> None:
    """A stated size of A1:XFD1048576, a cell in the last column and one in the last row."""
    write_xlsx(path, sheet_data(
        b'<row r="2"><c r="XFD2"><v>1</v></c></row>'
        b'<row r="1048576"><c r="A1048576"><v>1</v></c></row>',
        dimension=b'<dimension ref="A1:XFD1048576"/>'))


def xlsx_far_rows(path: Path) -> None:
    """Rows far apart: a reader fills the gap with empty rows."""
    write_xlsx(path, sheet_data(b'<row r="2"><c r="A2"><v>1</v></c></row>'
                                b'<row r="1048576"><c r="A1048576"><v>1</v></c></row>'))


def xlsx_many_cells(path: Path) -> None:
    def rows() -> Iterator[bytes]:
        for number in range(2, 200_002):
            yield (f'<row r="{number}">' + "".join(
                f'<c r="{letter}{number}"><v>1</v></c>' for letter in "ABCDEFGHIJ")
                + "</row>").encode()
    write_xlsx(path, sheet_data(rows()))


def xlsx_lying_size(path: Path) -> None:
    """A 256 MiB shared-strings part whose zip headers say it holds 1,000 bytes."""
    write_xlsx(path, sheet_data(b'<row r="2"><c r="A2" t="s"><v>0</v></c></row>'),
               shared=chain([b"<si><t>"], repeated(b"a", 256 * MIB), [b"</t></si>"]))
    declare_size(path, "xl/sharedStrings.xml", 1_000)


def declare_size(path: Path, name: str, size: int) -> None:
    """Rewrite the unpacked size a member states in the zip's central directory."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) != -1:
        name_length, extra_length = struct.unpack_from("<HH", data, start + 28)
        if data[start + 46:start + 46 + name_length] == encoded:
            if struct.unpack_from("<I", data, start + 24)[0] != 0xFFFFFFFF:
                struct.pack_into("<I", data, start + 24, size)
            else:  # the size is in the zip64 extra field, its first value
                at, end = start + 46 + name_length, start + 46 + name_length + extra_length
                while at < end:
                    field_id, field_length = struct.unpack_from("<HH", data, at)
                    if field_id == 1:
                        struct.pack_into("<Q", data, at + 4, size)
                    at += 4 + field_length
        start += 4
    path.write_bytes(bytes(data))


def csv_huge_cell(path: Path) -> None:
    with path.open("wb") as file:
        file.write(",".join(HEADER).encode() + b"\nR1,u1,")
        for piece in repeated(b"a", 4 * MIB):
            file.write(piece)
        file.write(b",BJ\n")


def csv_many_fields(path: Path) -> None:
    with path.open("wb") as file:
        file.write(",".join(HEADER).encode() + b"\n")
        for piece in repeated(b"ab,", 5 * MIB):
            file.write(piece)


def csv_blank_lines(path: Path) -> None:
    with path.open("wb") as file:
        file.write(",".join(HEADER).encode() + b"\nR1,u1,Name,BJ\n")
        for piece in repeated(b"\n", 5 * MIB):
            file.write(piece)


def csv_many_rows(path: Path) -> None:
    with path.open("wb") as file:
        file.write(",".join(HEADER).encode() + b"\n")
        for piece in repeated(b"a\n", 5 * MIB):
            file.write(piece)


def csv_problem_rows(path: Path) -> None:
    """20,000 rows, each refused with a 300-character value: the report stays small."""
    with path.open("wb") as file:
        file.write(",".join(HEADER).encode() + b"\n")
        for number in range(20_000):
            file.write(f"R{number},user{number},{'名' * 20},{'X' * 300}\n".encode())


def write_xls(path: Path, rows: Iterable[Iterable[tuple[int, object]]]) -> None:
    """An Excel 97-2003 workbook of one sheet: each row's (column, value) cells."""
    import xlwt  # the test dependencies' .xls writer

    workbook = xlwt.Workbook(encoding="utf-8")
    sheet = workbook.add_sheet("export")
    for number, row in enumerate(chain([enumerate(HEADER)], rows)):
        for column, value in row:
            sheet.write(number, column, value)
    workbook.save(str(path))


def xls_far_cells(path: Path) -> None:
    """A cell in the 100th column of each of 65,535 rows: xlrd would fill every row up to it."""
    write_xls(path, ([(99, number)] for number in range(65_535)))


def xls_largest_allowed(path: Path) -> None:
    """Near the limits: 20,000 rows of 12 cells, 149,000 distinct texts."""
    write_xls(path, ([(index, f"text {(number * 12 + index) % 149_000:06d} of the CRM export")
                      for index in range(12)] for number in range(20_000)))


def web_page_largest_allowed(path: Path) -> None:
    """An HTML table saved as .xls, near the limits: 20,000 rows of 12 cells."""
    with path.open("w", encoding="utf-8") as file:
        file.write('<html><head><meta charset="utf-8"></head><body><table><tr>'
                   + "".join(f"<th>{name}</th>" for name in HEADER) + "</tr>\n")
        for line in largest_allowed_rows(lambda number: "<tr>" + "".join(
                f"<td>text {number:06d}-{index:02d} of the CRM export</td>"
                for index in range(12)) + "</tr>"):
            file.write(line + "\n")
        file.write("</table></body></html>")


def spreadsheet_xml_largest_allowed(path: Path) -> None:
    """An XML Spreadsheet 2003 saved as .xls, near the limits: 20,000 rows of 12 cells."""
    with path.open("w", encoding="utf-8") as file:
        file.write('<?xml version="1.0"?><Workbook xmlns="urn:schemas-microsoft-com:office:'
                   'spreadsheet" xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet">'
                   "<Worksheet><Table><Row>" + "".join(
                       f'<Cell><Data ss:Type="String">{name}</Data></Cell>' for name in HEADER)
                   + "</Row>\n")
        for line in largest_allowed_rows(lambda number: "<Row>" + "".join(
                f'<Cell><Data ss:Type="String">text {number:06d}-{index:02d}</Data></Cell>'
                for index in range(12)) + "</Row>"):
            file.write(line + "\n")
        file.write("</Table></Worksheet></Workbook>")


CASES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "xlsx: one 512 MiB inline cell": ("cell.xlsx", xlsx_huge_inline_cell),
    "xlsx: one 1 GiB shared string": ("shared.xlsx", xlsx_huge_shared_string),
    "xlsx: 10 M shared strings": ("strings.xlsx", xlsx_many_shared_strings),
    "xlsx: 15 MiB string in short runs": ("runs.xlsx", xlsx_rich_text_shared_string),
    "xlsx: 100 cells x 31 KiB of runs": ("row.xlsx", xlsx_widest_row_of_runs),
    "xlsx: 20,000 runs in one row": ("runs20k.xlsx", xlsx_allowed_runs),
    "xlsx: 500 k cells in one row, no refs": ("wide.xlsx", xlsx_wide_row_without_references),
    "xlsx: 240 k cells, 150 k strings": ("largest.xlsx", xlsx_largest_allowed),
    "xlsx: rows padded to XFD1048576": ("padded.xlsx", xlsx_padded_rows),
    "xlsx: rows 1 M apart": ("far.xlsx", xlsx_far_rows),
    "xlsx: 2 M cells": ("cells.xlsx", xlsx_many_cells),
    "xlsx: 256 MiB part stated as 1 KB": ("lying.xlsx", xlsx_lying_size),
    "csv: one 4 MiB cell": ("cell.csv", csv_huge_cell),
    "csv: 1.7 M fields on one line": ("fields.csv", csv_many_fields),
    "csv: 5 M blank lines": ("blank.csv", csv_blank_lines),
    "csv: 2.6 M rows": ("rows.csv", csv_many_rows),
    "csv: 20,000 problem rows": ("problems.csv", csv_problem_rows),
    "csv: 240 k cells": ("largest.csv", csv_largest_allowed),
    "xls: a far cell in each of 65 k rows": ("far.xls", xls_far_cells),
    "xls: 240 k cells": ("largest.xls", xls_largest_allowed),
    "web page: 240 k cells": ("page.xls", web_page_largest_allowed),
    "xml spreadsheet: 240 k cells": ("sheet2003.xls", spreadsheet_xml_largest_allowed),
}

# Files within every limit (the others are refused by one).
WITHIN_LIMITS = frozenset({
    "xlsx: 240 k cells, 150 k strings", "xlsx: 2 M cells", "csv: 20,000 problem rows",
    "csv: 240 k cells", "xls: 240 k cells", "web page: 240 k cells",
    "xml spreadsheet: 240 k cells"})


# --- importing one file, in a child process --------------------------------------------------

def import_one(path: Path) -> dict:
    """Import the file into a fresh SQLite app as an admin; what happened and what it cost."""
    # A child's getrusage peak starts at its parent's; Linux lets a process reset its own.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from bidhub import create_app
    from bidhub.cli import init_database
    from bidhub.db import get_session
    from bidhub.models import ImportRun, Role, User
    from bidhub.services.imports import import_file
    from bidhub.services.users import new_session_token

    now = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    app = create_app({"DATABASE_URL": f"sqlite:///{path.parent / 'bench.sqlite3'}",
                      "SECRET_KEY": "bench", "TESTING": True})
    with app.app_context():
        init_database(app)
        session = get_session()
        admin = User(username="admin", display_name="Admin", password_hash="-", role=Role.ADMIN,
                     is_active=True, status="active", session_token=new_session_token(),
                     failed_login_count=0, created_at=now)
        session.add(admin)
        session.commit()
        data = path.read_bytes()
        baseline = peak_kib()
        started = time.perf_counter()
        result = import_file(session, admin, KIND, path.name, data, valid_rows_only=False,
                             now=now)
        seconds = time.perf_counter() - started
        run = session.get(ImportRun, result.run_id)
        runs = session.scalar(select(func.count(ImportRun.id)))
        first = str(result.problems[0].reason) if result.problems else ""
        return {"status": result.status, "seconds": seconds, "runs": runs,
                "report_bytes": len(json.dumps(run.report, ensure_ascii=False).encode()),
                "problems": len(result.problems), "more": result.problems_not_shown,
                "first_problem": first[:90], "baseline_kib": baseline,
                "peak_kib": peak_kib()}


def run_case(path: Path) -> dict:
    completed = subprocess.run([sys.executable, __file__, "--import-one", str(path)],
                               capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1:] or ["exit code"],
                "status": "crashed"}
    return json.loads(completed.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    parser.add_argument("--only", nargs="*", help="run only cases whose name has this text")
    parser.add_argument("--import-one", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.import_one:
        print(json.dumps(import_one(arguments.import_one)))
        return 0
    folder = arguments.keep or Path(tempfile.mkdtemp(prefix="bidhub-uploads-"))
    folder.mkdir(parents=True, exist_ok=True)
    failed = False
    print(f"{'case':<36} {'file':>9} {'peak MiB':>9} {'seconds':>8} {'status':<8} "
          f"{'report':>9}  first problem")
    for name, (filename, generate) in CASES.items():
        if arguments.only and not any(part in name for part in arguments.only):
            continue
        case_folder = folder / filename.replace(".", "-")
        case_folder.mkdir(exist_ok=True)
        path = case_folder / filename
        generate(path)
        outcome = run_case(path)
        size = f"{path.stat().st_size / 1024:,.0f} KB"
        if outcome["status"] == "crashed":
            failed = True
            print(f"{name:<36} {size:>9} {'-':>9} {'-':>8} crashed   {outcome['error']}")
            continue
        peak = outcome["peak_kib"] / 1024
        seconds = WITHIN_LIMITS_SECONDS if name in WITHIN_LIMITS else TIME_LIMIT_SECONDS
        bad = (peak >= MEMORY_LIMIT_MIB or outcome["seconds"] >= seconds
               or outcome["runs"] != 1)
        failed = failed or bad
        print(f"{name:<36} {size:>9} {peak:>9.1f} {outcome['seconds']:>8.2f} "
              f"{outcome['status']:<8} {outcome['report_bytes']:>9,}  "
              f"{outcome['first_problem']}{'  <-- OVER LIMIT' if bad else ''}")
        if not arguments.keep:
            path.unlink()
    print(f"\nThe generator's own peak: {peak_kib() / 1024:.0f} MiB.")
    print(f"Limits: peak resident memory of the whole process under {MEMORY_LIMIT_MIB} MiB "
          f"(app and SQLite included), import under {TIME_LIMIT_SECONDS:g} s (under "
          f"{WITHIN_LIMITS_SECONDS:g} s for a file within every limit, read whole: "
          f"{', '.join(sorted(WITHIN_LIMITS))}), one import record per case.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
