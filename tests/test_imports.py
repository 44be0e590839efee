"""CRM imports: all or nothing per file, a per-row report, idempotent, filed transfers, 413."""

from __future__ import annotations

import codecs
import csv
import io
import random
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from bidhub.domain.imports import (
    COLUMNS,
    KINDS,
    NOT_TEXT,
    FileRefused,
    csv_encoding,
    delimiter_of,
    is_totals_word,
    parse_csv,
)
from bidhub.models import (
    Account,
    AccountabilityIncident,
    AuditEvent,
    Branch,
    Contact,
    Filing,
    FilingKind,
    ImportRun,
    MonthlyForecast,
    Opportunity,
    OpportunityStageChange,
    User,
)
from bidhub.services.accountability import explain_incident, resolve_incident
from bidhub.services.filings import transfer_account
from bidhub.services.imports import import_file
from tests.conftest import reload

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ORDER = ("reps", "accounts", "opportunities", "forecasts", "incidents")
TABLES = (User, Account, Contact, Opportunity, OpportunityStageChange, MonthlyForecast,
          AccountabilityIncident, Filing)


def sample_text(kind: str) -> str:
    return (SAMPLES / f"{kind}.csv").read_bytes().decode("utf-8-sig")


def encoded(text: str, encoding: str) -> bytes:
    return text.encode("utf-8-sig" if encoding == "utf-8-bom" else encoding)


@pytest.fixture
def branches(make_branch):
    return {code: make_branch(code, name)
            for code, name in (("BJ", "Beijing"), ("SH", "Shanghai"), ("GZ", "Guangzhou"))}


@pytest.fixture
def admin(make_admin):
    return make_admin()


@pytest.fixture
def run_import(session, admin, clock):
    def run(kind: str, data: bytes | str, *, filename: str | None = None,
            valid_rows_only: bool = False):
        if isinstance(data, str):
            data = data.encode("utf-8-sig")
        return import_file(session, admin, kind, filename or f"{kind}.csv", data,
                           valid_rows_only=valid_rows_only, now=clock())

    return run


@pytest.fixture
def loaded(branches, run_import):
    """The database after importing every sample, in order."""
    for kind in ORDER:
        result = run_import(kind, sample_text(kind))
        assert result.status == "imported", result.problems
    return branches


def counts(session) -> dict[str, int]:
    reload(session)
    return {table.__name__: session.scalar(select(func.count()).select_from(table))
            for table in TABLES}


def problem_reasons(result) -> list[tuple]:
    return [(problem.row, problem.column, problem.reason) for problem in result.problems]


def test_past_imports_are_listed_newest_first_by_when_they_ran(session, branches, admin,
                                                                clock):
    """An import recorded after another but dated earlier (a file brought in with the time it
    ran, as a migration or the demo writes its history) is listed by its date."""
    from datetime import timedelta

    from bidhub.services.imports import import_runs

    data = sample_text("branches").encode("utf-8-sig")
    late = import_file(session, admin, "branches", "late.csv", data, valid_rows_only=False,
                       now=clock())
    early = import_file(session, admin, "branches", "early.csv", data, valid_rows_only=False,
                        now=clock() - timedelta(days=30))
    same_moment = import_file(session, admin, "branches", "same.csv", data,
                              valid_rows_only=False, now=clock())
    assert late.run_id < early.run_id < same_moment.run_id
    assert [run.filename for run in import_runs(session)] == ["same.csv", "late.csv",
                                                              "early.csv"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-bom", "gbk"])
def test_every_sample_imports_cleanly_in_each_encoding(session, branches, run_import, encoding):
    for kind in ORDER:
        result = run_import(kind, encoded(sample_text(kind), encoding))
        assert result.status == "imported" and result.problems == [], (kind, result.problems)
        assert result.added == result.rows_total > 0 and result.skipped == 0
    reload(session)
    account = session.scalars(select(Account).where(Account.external_id == "KA-2002")).one()
    assert account.name == "华北电力集团" and account.ownership_type == "state_owned"
    assert account.executive_sponsor == "president" and account.owner.username == "lijun"
    assert {contact.role: contact.name for contact in account.contacts} == {
        "decision_maker": "周董事长", "user": "吴处长", "contact": "郑秘书"}
    assert session.scalars(select(User).where(User.external_id == "R1004")).one().status == (
        "on_leave")
    won = session.scalars(select(Opportunity).where(Opportunity.external_id == "OPP-3001")).one()
    assert won.stage == "won" and [change.stage for change in won.stage_changes] == [
        "potential", "intent", "proposal", "negotiation", "won"]
    assert session.scalar(select(func.count()).select_from(MonthlyForecast)) == 5
    incident = session.scalars(select(AccountabilityIncident)
                               .where(AccountabilityIncident.external_id == "INC-4001")).one()
    assert incident.status == "explained" and "校园招聘" in incident.explanation
    # Five owned accounts arrived by import: each is a filed transfer.
    filings = list(session.scalars(select(Filing)))
    assert len(filings) == 5 and {filing.kind for filing in filings} == {FilingKind.CRM_IMPORT}
    assert {filing.reason for filing in filings} == {"CRM import"}


def test_reimporting_the_same_files_changes_nothing(session, loaded, run_import):
    before = counts(session)
    for kind in ORDER:
        result = run_import(kind, sample_text(kind))
        assert result.status == "imported"
        assert (result.added, result.updated, result.unchanged) == (0, 0, result.rows_total)
    assert counts(session) == before


def test_a_changed_file_updates_the_changed_rows_and_counts_them(session, loaded, run_import):
    text = sample_text("accounts").replace("KA-2006,南方物流有限公司,物流,private,GZ,420000",
                                           "KA-2006,南方物流有限公司,物流,private,GZ,450000")
    text = text.replace("赵总,钱经理", "赵董,钱经理")
    result = run_import("accounts", text)
    assert (result.added, result.updated, result.unchanged) == (0, 2, 4)
    reload(session)
    account = session.scalars(select(Account).where(Account.external_id == "KA-2006")).one()
    assert account.annual_value_yuan == 450_000
    assert session.scalars(select(Contact).where(Contact.role == "decision_maker",
                                                 Contact.name == "赵董")).one()


def assert_refused_without_writes(session, before, result):
    assert result.status == "refused" and result.problems
    assert counts(session) == before
    run = session.get(ImportRun, result.run_id)
    assert run.status == "refused" and run.report["problems"]
    assert session.scalars(select(AuditEvent).where(
        AuditEvent.target == f"import_run:{run.id}")).one().action == "import.refused"


def test_a_missing_required_column_is_reported(session, branches, run_import):
    before = counts(session)
    text = "员工编号,用户名,分公司\nR1,a,BJ\n"
    result = run_import("reps", text)
    assert_refused_without_writes(session, before, result)
    assert problem_reasons(result) == [(1, "name / 姓名", "This required column is missing.")]


def test_a_bad_date_and_a_bad_number_are_reported_by_row_and_column(session, branches,
                                                                      run_import):
    run_import("reps", sample_text("reps"))
    before = counts(session)
    text = sample_text("opportunities").replace("2026-01-05,,potential:2026-01-05",
                                                "2026-13-05,,potential:2026-01-05")
    text = text.replace(",80000,", ",eighty,")
    result = run_import("opportunities", text)
    assert_refused_without_writes(session, before, result)
    reasons = problem_reasons(result)
    assert (3, "opened", "No such day: there is no month 13.") in reasons
    assert any(row == 6 and column == "amount_yuan" for row, column, _ in reasons)


def test_a_stage_history_ending_elsewhere_names_both_stages_as_the_crm_writes_them(
        session, branches, run_import):
    run_import("reps", sample_text("reps"))
    run_import("accounts", sample_text("accounts"))
    text = sample_text("opportunities").replace(
        "negotiation:2025-11-01;won:2025-11-20", "negotiation:2025-11-01")
    result = run_import("opportunities", text)
    problem = next(problem for problem in result.problems if problem.column == "stage_history")
    assert problem.value == "商务谈判 (negotiation)"
    assert str(problem.reason) == ("The last stage in the history is not the stage "
                                   "'销售实现 (won)'.")


def test_a_closed_deal_with_no_closed_date_and_no_history_is_imported_with_a_warning(
        session, branches, run_import):
    """The win rate counts the deals closed in its window: one whose close nobody dated is
    left out of it, and the report says so on its row rather than letting the figure drop."""
    run_import("reps", sample_text("reps"))
    run_import("accounts", sample_text("accounts"))
    text = ("商机编号,客户编号,销售,金额,阶段,创建日期,关闭日期\n"
            "QF-1,KA-2001,R1001,100000,赢单,2026-01-06,\n"
            "QF-2,KA-2001,R1001,100000,丢单,2026-01-06,2026-02-01\n"
            "QF-3,KA-2001,R1001,100000,输单,2026-01-06,\n"
            "QF-4,KA-2001,R1001,100000,商务谈判,2026-01-06,\n")
    result = run_import("opportunities", text)
    assert (result.status, result.added) == ("imported", 4)
    # The blank cell is shown blank, in the report and as stored, not as "None".
    assert [(warning.row, warning.column, warning.value) for warning in result.warnings] == [
        (2, "closed", ""), (4, "closed", "")]
    assert "leaves it out until a file gives its closed date" in str(result.warnings[0].reason)
    # Dated by a stage history, or by a later file, it warns no more.
    dated = text.replace("赢单,2026-01-06,", "赢单,2026-01-06,2026-02-01").replace(
        "输单,2026-01-06,", "输单,2026-01-06,2026-02-02")
    assert run_import("opportunities", dated).warnings == []
    history = ("商机编号,客户编号,销售,金额,阶段,创建日期,阶段历史\n"
               "QF-5,KA-2001,R1001,100000,赢单,2026-01-06,potential:2026-01-06;won:2026-02-01\n")
    assert run_import("opportunities", history).warnings == []
    # A file without the column keeps the stored date, and warns only where none is stored.
    undated = ("商机编号,客户编号,销售,金额,阶段,创建日期\n"
               "QF-1,KA-2001,R1001,100000,赢单,2026-01-06\n"
               "QF-6,KA-2001,R1001,100000,赢单,2026-01-06\n")
    result = run_import("opportunities", undated)
    assert [(warning.row, warning.column) for warning in result.warnings] == [(3, "closed")]


def test_a_stage_history_going_on_after_the_closed_date_is_refused(session, branches,
                                                                    run_import):
    run_import("reps", sample_text("reps"))
    run_import("accounts", sample_text("accounts"))
    before = counts(session)
    text = ("商机编号,客户编号,销售,金额,阶段,创建日期,关闭日期,阶段历史\n"
            "QH-1,KA-2001,R1001,100000,丢单,2025-03-01,2025-05-01,"
            "potential:2025-03-01;lost:2025-06-01\n"
            "QH-2,KA-2001,R1001,100000,赢单,2025-03-01,2025-05-01,"
            "potential:2025-03-01;won:2025-04-01\n")
    result = run_import("opportunities", text)
    assert_refused_without_writes(session, before, result)
    assert problem_reasons(result) == [
        (2, "stage_history", "A stage change after the closed date 2025-05-01: the deal's "
                             "history cannot go on after it closed.")]


def test_a_stage_taken_back_without_a_history_is_imported_with_a_warning(session, branches,
                                                                          run_import):
    """A newer export may say a won deal was lost, or a deal went back a stage; with no stage
    history nothing records where it stood before, and the report says so on its row."""
    run_import("reps", sample_text("reps"))
    run_import("accounts", sample_text("accounts"))
    header = "商机编号,客户编号,销售,金额,阶段,创建日期,关闭日期\n"
    first = (header + "QB-1,KA-2001,R1001,100000,商务谈判,2026-01-06,\n"
             "QB-2,KA-2001,R1001,100000,赢单,2026-01-06,2026-02-01\n"
             "QB-3,KA-2001,R1001,100000,意向客户,2026-01-06,\n")
    assert run_import("opportunities", first).warnings == []
    later = (header + "QB-1,KA-2001,R1001,100000,意向客户,2026-01-06,\n"
             "QB-2,KA-2001,R1001,100000,丢单,2026-01-06,2026-02-10\n"
             "QB-3,KA-2001,R1001,100000,方案阶段,2026-01-06,\n")
    result = run_import("opportunities", later)
    assert (result.status, result.updated) == ("imported", 3)
    assert [(warning.row, warning.column, warning.value) for warning in result.warnings] == [
        (2, "stage", "意向客户 (intent)"), (3, "stage", "丢单 (lost)")]
    assert str(result.warnings[1].reason) == (
        "bidhub held this deal as 销售实现 (won), and the file makes it 丢单 (lost) with no "
        "stage history: nothing records that it was 销售实现 (won), so the track record reads "
        "it as 丢单 (lost) throughout. A 阶段历史 column keeps the change.")
    # With its history, the change is recorded: no warning.
    history = ("商机编号,客户编号,销售,金额,阶段,创建日期,关闭日期,阶段历史\n"
               "QB-2,KA-2001,R1001,100000,赢单,2026-01-06,2026-02-20,"
               "potential:2026-01-06;won:2026-02-01;lost:2026-02-10;won:2026-02-20\n")
    assert run_import("opportunities", history).warnings == []


def test_a_blank_actual_clearing_a_known_one_is_imported_with_a_warning(session, branches,
                                                                         run_import):
    run_import("reps", sample_text("reps"))
    text = "销售,月份,预测金额,实际金额\nR1001,2026-01,300000,280000\nR1002,2026-01,100,\n"
    assert run_import("forecasts", text).warnings == []
    result = run_import("forecasts", text.replace("300000,280000", "300000,"))
    assert (result.status, result.updated) == ("imported", 1)
    assert [(warning.row, warning.column, str(warning.reason)) for warning in result.warnings
            ] == [(2, "actual_yuan", "The file leaves the actual blank: the actual of 280,000 "
                   "yuan bidhub held for 2026-01 is cleared, and forecast accuracy and revenue "
                   "attainment no longer count this month.")]


def test_two_differently_named_columns_for_one_field_are_named_with_their_letters(
        session, branches, run_import):
    run_import("reps", sample_text("reps"))
    before = counts(session)
    lines = sample_text("accounts").splitlines()
    text = "\n".join(line + ("," + ("负责销售" if number == 0 else "R1002"))
                     for number, line in enumerate(lines)) + "\n"
    result = run_import("accounts", text)
    assert_refused_without_writes(session, before, result)
    problem = next(problem for problem in result.problems if problem.column == "负责销售")
    assert str(problem.reason) == (
        "The columns '所属销售' (G) and '负责销售' (M) both read as 'owner', so bidhub cannot "
        "tell which to read. Remove or rename one of them, and import the file again.")


def test_an_unknown_rep_is_reported_and_nothing_is_written(session, branches, run_import):
    run_import("reps", sample_text("reps"))
    before = counts(session)
    text = sample_text("accounts").replace("KA-2003,上海中德汽车零部件有限公司,汽车,中外合资,SH,880000,R1003",
                                           "KA-2003,上海中德汽车零部件有限公司,汽车,中外合资,SH,880000,R9999")
    result = run_import("accounts", text)
    assert_refused_without_writes(session, before, result)
    assert [(problem.row, problem.column, problem.value) for problem in result.problems] == [
        (4, "owner", "R9999")]


def test_duplicate_ids_within_the_file_are_reported(session, branches, run_import):
    before = counts(session)
    text = sample_text("reps") + "R1002,someoneelse,某人,BJ,2024-01-01,在职\n"
    result = run_import("reps", text)
    assert_refused_without_writes(session, before, result)
    assert [(problem.row, problem.column) for problem in result.problems] == [(7, "external_id")]
    assert "Also in row 3" in result.problems[0].reason


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "The file is empty."),
    (b"  \r\n", "The file is empty."),
    ("员工编号,用户名,姓名,分公司\n".encode(), "The file has column names but no rows."),
    # The advice names both workbook formats the imports read.
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "This is not a text (CSV) file. Save the export as "
     "CSV (UTF-8 or GBK) or as an Excel workbook (.xlsx or .xls)."),
    (b"external_id,username,name,branch\nR1,\xff\xfe\xff,x,BJ\n",
     "The characters of line 2 cannot be read as UTF-8 or GBK."),
    # Without its BOM, and nothing in it (no line break, no separator) says the byte order.
    ("R1001".encode("utf-16-le"), "seems to be UTF-16 text without the mark"),
    ("R1001".encode("utf-16-be"), "seems to be UTF-16 text without the mark"),
    (codecs.BOM_UTF16_LE + "员工编号\t姓名\n".encode("utf-16-le") + b"\x00\xd8R\x00",
     "marked as UTF-16 text, but not all of it reads as UTF-16"),
], ids=["empty", "blank", "header only", "binary", "not utf-8 or gbk", "utf-16-le without bom",
        "utf-16-be without bom", "broken utf-16"])
def test_unreadable_files_are_refused_with_a_clear_message(session, branches, run_import, data,
                                                           reason):
    before = counts(session)
    result = run_import("reps", data)
    assert_refused_without_writes(session, before, result)
    assert result.problems[0].row is None and reason in result.problems[0].reason


@pytest.mark.parametrize(("data", "line"), [
    # UTF-8 with a BOM, a line pasted in with bytes neither encoding has.
    ("\ufeff员工编号,用户名,姓名,分公司\nR1,wangfang,王芳,BJ\n".encode()
     + b"R2,lina,\xe6\x9d\x8e\xff,BJ\nR3,zhao,\xe8\xb5\xb5,BJ\n", 3),
    # GBK, the bad bytes on the fourth line.
    ("员工编号,用户名,姓名,分公司\nR1,wangfang,王芳,BJ\nR2,lina,李娜,BJ\n".encode("gbk")
     + b"R3,zhao,\x80\xff,BJ\n", 4),
    # The bad bytes in the header line itself.
    (b"id\x80\xff,username\nR1,x\n", 1),
], ids=["utf-8", "gbk", "header"])
def test_a_file_neither_encoding_reads_names_the_line_to_mend(session, branches, run_import,
                                                             data, line):
    before = counts(session)
    result = run_import("reps", data)
    assert_refused_without_writes(session, before, result)
    assert (f"The characters of line {line} cannot be read as UTF-8 or GBK."
            in result.problems[0].reason)


# The first bytes of a Windows program (a DOS header cut short), and small binaries of random
# bytes with a NUL among them, as a program, an image or an archive has.
PROGRAM_START = b"MZ\x90\x00"
SMALL_BINARIES = [data for data in (random.Random(seed).randbytes(size)
                                    for seed in range(120) for size in (16, 64, 256))
                  if b"\x00" in data]


@pytest.mark.parametrize("data", [PROGRAM_START, PROGRAM_START + bytes(range(4, 60)),
                                  b"\x7fELF\x02\x01\x01\x00" + bytes(56)])
def test_a_program_is_refused_as_no_text_file(session, branches, run_import, data):
    before = counts(session)
    result = run_import("reps", data, filename="setup.exe")
    assert_refused_without_writes(session, before, result)
    assert [str(problem.reason) for problem in result.problems] == [str(NOT_TEXT)]


@pytest.mark.parametrize("start", [b"\x89PNG\r\n\x1a\n", b"%PDF-1.7\n", b"GIF89a",
                                   b"\xff\xd8\xff\xe0", b"\x1f\x8b\x08"])
def test_an_image_pdf_or_archive_renamed_csv_is_no_text_without_a_nul_early(
        session, branches, run_import, start):
    """The signature says it, even where no NUL byte follows in the first bytes read."""
    data = start + bytes(range(0x80, 0xff)) * 40
    before = counts(session)
    result = run_import("reps", data, filename="reps.csv")
    assert_refused_without_writes(session, before, result)
    assert [str(problem.reason) for problem in result.problems] == [str(NOT_TEXT)]


@pytest.mark.parametrize("text", ["BM编号,名称\r\nXA,西安\r\n", "MZ区域,名称\r\n1,2\r\n",
                                  "%PD,名称\r\n1,2\r\n"])
def test_a_csv_whose_first_column_name_begins_like_a_signature_is_text(text):
    assert csv_encoding(text.encode("gbk")) == "gb18030"


def test_a_binary_file_is_never_taken_for_text_in_utf16():
    """Read as UTF-16, bytes that are no text make characters no export holds: control
    characters, unassigned or private-use code points."""
    assert len(SMALL_BINARIES) > 30
    for data in SMALL_BINARIES:
        with pytest.raises(FileRefused) as refusal:
            csv_encoding(data)
        assert str(refusal.value.message) == str(NOT_TEXT), data


def tab_separated(text: str) -> str:
    """A CSV text as Excel's "Unicode Text" writes it: tabs between the cells, CRLF."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t", lineterminator="\r\n").writerows(
        csv.reader(io.StringIO(text)))
    return buffer.getvalue()


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-8", "gbk"])
def test_tab_separated_text_imports_like_a_csv_in_utf16_with_its_bom_and_in_utf8_or_gbk(
        session, branches, run_import, encoding):
    """Excel's "Unicode Text" export: UTF-16 (little-endian) with a BOM, cells separated by
    tabs. The same layout saved as "Text (Tab delimited)" comes in GBK."""
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    for kind in ("reps", "accounts"):
        data = bom + tab_separated(sample_text(kind)).encode(encoding)
        result = run_import(kind, data, filename=f"{kind}.txt")
        assert result.status == "imported" and result.problems == [], (kind, result.problems)
        assert result.added == result.rows_total > 0
    reload(session)
    account = session.scalars(select(Account).where(Account.external_id == "KA-2001")).one()
    assert (account.name, account.annual_value_yuan) == ("北京智联科技有限公司", 1_200_000)
    assert account.owner.external_id == "R1001"


def test_a_comma_csv_whose_cells_hold_tabs_stays_a_comma_csv(session, branches, run_import):
    text = sample_text("reps").replace("姓名,", "姓名\t,", 1).replace("王芳,", "王\t芳\t,")
    result = run_import("reps", text)
    assert (result.status, result.added) == ("imported", 5), result.problems
    reload(session)
    assert session.scalars(select(User.display_name).where(User.external_id == "R1001")).one() \
        == "王\t芳"


def with_a_note_column(text: str, note: str) -> str:
    """A CSV text with one more column, named `note`, whose cells hold a comma."""
    records = list(csv.reader(io.StringIO(text)))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(
        [records[0] + [note]] + [record + [f"{record[0]},勿外传"] for record in records[1:]])
    return buffer.getvalue()


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-8", "gbk"])
@pytest.mark.parametrize("padded", [False, True], ids=["plain", "trailing tabs"])
def test_a_tab_separated_file_whose_column_name_holds_a_comma_is_read_by_its_tabs(
        session, branches, run_import, encoding, padded):
    """备注(内部,勿外传) is one column of a tab-separated file, not two halves of a CSV's; so is
    年度金额 with 1,200,000 in it. Excel pads the rows with tabs up to the sheet's last column."""
    assert run_import("reps", sample_text("reps")).status == "imported"
    bom = codecs.BOM_UTF16_LE if encoding == "utf-16-le" else b""
    text = tab_separated(with_a_note_column(sample_text("accounts"), "备注(内部,勿外传)"))
    if padded:
        text = "".join(line + "\t\t\r\n" for line in text.splitlines())
    result = run_import("accounts", bom + text.encode(encoding), filename="accounts.txt")
    assert (result.status, result.added, result.problems) == ("imported", 6, [])
    reload(session)
    account = session.scalars(select(Account).where(Account.external_id == "KA-2001")).one()
    assert (account.name, account.annual_value_yuan) == ("北京智联科技有限公司", 1_200_000)
    assert account.owner.external_id == "R1001"


def test_a_comma_csv_whose_cells_hold_quoted_tabs_stays_a_comma_csv(session, branches,
                                                                   run_import):
    """Every line splits by tabs into two cells here, but by commas into the header's six."""
    records = list(csv.reader(io.StringIO(sample_text("reps"))))
    records[0][2] = "姓名\t"
    for record in records[1:]:
        record[2] = f"{record[2][0]}\t{record[2][1:]}"
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n").writerows(records)
    assert all(line.count("\t") == 1 for line in buffer.getvalue().splitlines())
    result = run_import("reps", buffer.getvalue())
    assert (result.status, result.added) == ("imported", 5), result.problems
    reload(session)
    assert session.scalars(select(User.display_name).where(User.external_id == "R1001")).one() \
        == "王\t芳"


@pytest.mark.parametrize(("sample", "delimiter"), [
    ("客户编号\t客户名称\t年度金额(万元,含税)\t所属销售\r\n", "\t"),
    ("客户编号\t客户名称\t年度金额(万元,含税)\t所属销售\r\nKA-1\t甲\t1,200\tR1\r\n", "\t"),
    ("客户编号\t客户名称\t备注(a,b,c,d,e)\r\nKA-1\t甲\tx\r\nKA-2\t乙\ty\r\n", "\t"),
    ('"客户名称,简称"\t客户编号\r\n"甲,甲"\tKA-1\r\n', "\t"),
    ("客户编号,客户名称\t,所属销售\r\nKA-1,甲,R1\r\n", ","),
    ('客户编号,"客户名称\t",所属销售\r\nKA-1,"甲\t",R1\r\nKA-2,"乙\t",R2\r\n', ","),
    ("客户编号,客户名称\r\n", ","),
    ("客户编号\t客户名称\r\n", "\t"),
    ("2026年11月客户清单(北京,上海)\t\t\r\n客户编号\t客户名称\t所属销售\r\nKA-1\t甲\tR1\r\n",
     "\t"),
    ("2026年11月客户清单\r\n客户编号\t客户名称\r\n", ","),
    ("客户编号;客户名称;所属销售\r\nKA-1;甲;R1\r\n", ";"),
    ("客户清单;2026年11月\r\n客户编号,客户名称\r\nKA-1,甲\r\n", ","),
], ids=["tab header", "tab with a comma amount", "tab with a comma-rich name",
        "tab with a quoted comma", "comma with a tab", "comma with quoted tabs", "comma header",
        "tab header only", "tab title with a comma", "title then tabs", "semicolons",
        "semicolon title then commas"])
def test_the_separator_is_the_one_the_first_lines_are_split_by(sample, delimiter):
    assert delimiter_of(sample) == delimiter


def test_a_semicolon_separated_file_is_refused_with_advice(session, branches, run_import):
    before = counts(session)
    text = sample_text("reps").replace(",", ";")
    result = run_import("reps", text)
    assert_refused_without_writes(session, before, result)
    assert result.problems[0].row is None
    assert "row 1 are separated by semicolons" in result.problems[0].reason
    assert "Excel workbook (.xlsx)" in result.problems[0].reason


@pytest.mark.parametrize(("line", "separator"), [("sep=,", ","), ("SEP=\t", "\t")])
def test_a_separator_line_before_the_column_names_is_read_as_excel_reads_it(
        session, branches, run_import, line, separator):
    """Excel takes the separator from it and hides it: the column names are row 1."""
    lines = sample_text("reps").splitlines()
    lines[3] = lines[3].replace("SH", "XX")  # Excel's row 4, a problem
    text = "\r\n".join([line, *(row.replace(",", separator) for row in lines)]) + "\r\n"
    result = run_import("reps", text)
    assert result.status == "refused"
    assert [(problem.row, problem.column) for problem in result.problems] == [(4, "branch")]
    fixed = text.replace("XX", "SH")
    assert run_import("reps", fixed).status == "imported"


def test_a_separator_line_naming_another_separator_is_refused_saying_so(session, branches,
                                                                        run_import):
    before = counts(session)
    result = run_import("reps", "sep=|\n" + sample_text("reps").replace(",", "|"))
    assert_refused_without_writes(session, before, result)
    assert "(sep=|) says its cells are separated by “|”" in str(result.problems[0].reason)
    result = run_import("reps", "sep=;\n" + sample_text("reps").replace(",", ";"))
    assert "separated by semicolons" in str(result.problems[0].reason)


def test_a_file_in_gbk_with_undecodable_bytes_is_refused(session, branches, run_import):
    data = sample_text("reps").encode("gbk") + b"R2001,x,\x80\x80\xff,BJ,,\n"
    before = counts(session)
    result = run_import("reps", data)
    assert_refused_without_writes(session, before, result)


def test_too_many_rows_are_refused(session, branches, run_import, monkeypatch):
    import bidhub.domain.imports as domain

    monkeypatch.setattr(domain, "MAX_ROWS", 3)
    before = counts(session)
    result = run_import("reps", sample_text("reps"))
    assert_refused_without_writes(session, before, result)
    assert "more than 3 rows" in result.problems[0].reason


def test_an_ownership_change_is_a_filed_transfer(session, loaded, run_import):
    filings_before = session.scalar(select(func.count()).select_from(Filing))
    text = sample_text("accounts").replace(",880000,R1003,", ",880000,R1004,")
    result = run_import("accounts", text)
    assert (result.status, result.updated) == ("imported", 1)
    reload(session)
    account = session.scalars(select(Account).where(Account.external_id == "KA-2003")).one()
    assert account.owner.external_id == "R1004"
    filing = session.scalars(select(Filing).order_by(Filing.seq.desc())).first()
    assert filing.seq == filings_before + 1 and filing.kind == FilingKind.CRM_IMPORT
    assert filing.account_id == account.id and filing.reason == "CRM import"
    assert filing.from_rep.external_id == "R1003" and filing.to_rep.external_id == "R1004"


def test_a_transfer_past_capacity_is_reported_and_not_applied(session, loaded, run_import,
                                                              give_accounts):
    rep = session.scalars(select(User).where(User.external_id == "R1004")).one()
    give_accounts(rep, 39)  # 40 with KA-2004
    before = counts(session)
    text = sample_text("accounts").replace(",880000,R1003,", ",880000,R1004,")
    result = run_import("accounts", text)
    assert_refused_without_writes(session, before, result)
    assert [(problem.row, problem.column) for problem in result.problems] == [(4, "owner")]
    assert "exceed the maximum of 40" in result.problems[0].reason
    result = run_import("accounts", text, valid_rows_only=True)
    assert (result.status, result.unchanged, result.skipped) == ("imported", 5, 1)
    reload(session)
    account = session.scalars(select(Account).where(Account.external_id == "KA-2003")).one()
    assert account.owner.external_id == "R1003"


def test_valid_rows_only_imports_the_good_rows_and_reports_the_rest(session, branches,
                                                                    run_import):
    text = sample_text("reps").replace("R1003,zhangwei,张伟,SH", "R1003,zhangwei,张伟,XX")
    text = text.replace("2023-02-13", "2023-02-30")
    result = run_import("reps", text, valid_rows_only=True)
    assert result.status == "imported"
    assert (result.added, result.skipped) == (3, 2)
    assert [(problem.row, problem.column) for problem in result.problems] == [
        (4, "branch"), (6, "hire_date")]
    reload(session)
    imported = set(session.scalars(select(User.external_id).where(User.external_id.is_not(None))))
    assert imported == {"R1001", "R1002", "R1004"}
    run = session.get(ImportRun, result.run_id)
    assert (run.added, run.skipped, len(run.report["problems"])) == (3, 2, 2)


REPS_HEADER = "external_id,username,name,branch,hired_on,status\n"


def test_a_reps_import_judges_hire_dates_by_the_users_pages_rule(session, branches, run_import):
    """From 1950-01-01 to today in the department's time zone (the clock's 09:00 in Beijing is
    2026-03-02 there), as the user form and `bidhub create-user`: a day not yet come, or a
    placeholder, is refused on its row and column, and nothing of the file is written."""
    rows = ("R2001,today,Today,BJ,2026-03-02,active\n"
            "R2002,tomorrow,Tomorrow,BJ,2026-03-03,active\n"
            "R2003,early,Early,SH,1949-12-31,active\n"
            "R2004,earliest,Earliest,SH,1950-01-01,active\n"
            "R2005,placeholder,Placeholder,GZ,9999-12-31,active\n"
            "R2006,ancient,Ancient,GZ,1899-01-01,active\n")
    result = run_import("reps", REPS_HEADER + rows)
    assert result.status == "refused"
    assert [(problem.row, problem.column, problem.value) for problem in result.problems] == [
        (3, "hire_date", "2026-03-03"), (4, "hire_date", "1949-12-31"),
        (6, "hire_date", "9999-12-31"), (7, "hire_date", "1899-01-01")]
    # A year beyond any date's range is still a hire date's problem, said with its range.
    assert [str(problem.reason) for problem in result.problems] == [
        "Enter a hire date between 1950-01-01 and today, 2026-03-02.",
        "Enter a hire date between 1950-01-01 and today, 2026-03-02.",
        "Enter a hire date between 1950-01-01 and today.",
        "Enter a hire date between 1950-01-01 and today."]
    reload(session)
    assert session.scalar(select(func.count()).select_from(User)
                          .where(User.external_id.is_not(None))) == 0
    # The stored report keeps the message to translate, its days as text.
    run = session.get(ImportRun, result.run_id)
    assert run.report["problems"][0]["message"] == {
        "msgid": "Enter a hire date between %(earliest)s and today, %(today)s.",
        "params": {"earliest": "1950-01-01", "today": "2026-03-02"}}

    result = run_import("reps", REPS_HEADER + rows, valid_rows_only=True)
    assert (result.status, result.added, result.skipped) == ("imported", 2, 4)
    reload(session)
    assert dict(session.execute(select(User.external_id, User.hired_on)
                                .where(User.external_id.is_not(None))).all()) == {
        "R2001": date(2026, 3, 2), "R2004": date(1950, 1, 1)}


def test_a_reps_import_leaves_a_hire_date_bidhub_has_as_it_is(session, branches, run_import):
    """A rep's hire date from before the rule is not judged again when the file repeats it (as
    the user form does not judge the day a user has); a changed one is."""
    assert run_import("reps", REPS_HEADER + "R2001,old,Old,BJ,2020-05-01,active\n").added == 1
    session.execute(update(User).where(User.external_id == "R2001")
                    .values(hired_on=date(1901, 1, 1)))
    session.commit()
    result = run_import("reps", REPS_HEADER + "R2001,old,Old Name,BJ,1901-01-01,active\n")
    assert (result.status, result.updated) == ("imported", 1), result.problems
    result = run_import("reps", REPS_HEADER + "R2001,old,Old Name,BJ,2027-01-01,active\n")
    assert result.status == "refused"
    assert [(problem.row, problem.column) for problem in result.problems] == [(2, "hire_date")]
    reload(session)
    assert str(session.scalars(select(User.hired_on).where(User.external_id == "R2001")).one()
               ) == "1901-01-01"


def test_the_upload_page_shows_a_refused_hire_date_in_chinese(session, branches, admin,
                                                               login_as):
    client = login_as(admin)
    data = (REPS_HEADER + "R2002,tomorrow,Tomorrow,BJ,2026-03-03,active\n").encode("gbk")
    response = client.post("/admin/imports/", data={
        "kind": "reps", "file": (io.BytesIO(data), "reps.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 303
    page = client.get(response.location, headers={"Accept-Language": "zh-CN"}).get_data(
        as_text=True)
    assert "2026-03-03" in page
    assert "请输入 1950-01-01 到今天（2026-03-02）之间的入职日期。" in page


def test_an_xlsx_workbook_imports_like_a_csv(session, branches, run_import):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for record in sample_text("reps").splitlines():
        sheet.append(record.split(","))
    sheet["E2"].value = __import__("datetime").datetime(2021, 3, 15)
    buffer = io.BytesIO()
    workbook.save(buffer)
    result = run_import("reps", buffer.getvalue(), filename="reps.xlsx")
    assert result.status == "imported" and result.added == 5, result.problems
    reload(session)
    assert str(session.scalars(select(User).where(User.external_id == "R1001")).one()
               .hired_on) == "2021-03-15"
    result = run_import("reps", b"PK\x03\x04 not really a workbook", filename="reps.xlsx")
    assert result.status == "refused" and "Excel workbook" in result.problems[0].reason


def test_the_upload_page_imports_and_shows_the_report(session, branches, admin, login_as):
    client = login_as(admin)
    assert client.get("/admin/imports/").status_code == 200
    text = sample_text("reps").replace("R1003,zhangwei,张伟,SH", "R1003,zhangwei,张伟,XX")
    response = client.post("/admin/imports/", data={
        "kind": "reps", "file": (io.BytesIO(text.encode("gbk")), "reps.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 303
    page = client.get(response.location).get_data(as_text=True)
    assert "No branch with this code" in page and "XX" in page and "refused" in page
    history = client.get("/admin/imports/").get_data(as_text=True)
    assert "reps.csv" in history
    reload(session)
    assert session.scalar(select(func.count()).select_from(User)) == 1


def test_the_upload_page_offers_and_imports_excels_unicode_text_file(session, branches, admin,
                                                                     login_as):
    """Excel saves "Unicode Text" as a .txt file: the file picker offers it and the page
    imports it."""
    client = login_as(admin)
    page = client.get("/admin/imports/").get_data(as_text=True)
    assert 'accept=".csv,.txt,' in page and "UTF-16" in page
    data = codecs.BOM_UTF16_LE + tab_separated(sample_text("reps")).encode("utf-16-le")
    response = client.post("/admin/imports/", data={
        "kind": "reps", "file": (io.BytesIO(data), "员工.txt")},
        content_type="multipart/form-data")
    assert response.status_code == 303
    assert "imported" in client.get(response.location).get_data(as_text=True)
    reload(session)
    assert session.scalar(select(func.count()).select_from(User)) == 6


def test_the_upload_page_answers_413_for_an_oversized_file(app, admin, login_as):
    client = login_as(admin)
    limit = app.config["MAX_CONTENT_LENGTH"]
    # Encoded in memory: the test client would otherwise spool the body to a file it leaks.
    boundary, body = encode_multipart({
        "kind": "reps", "file": FileStorage(io.BytesIO(b"x" * (limit + 1)), "big.csv")})
    response = client.post("/admin/imports/", data=body,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 413
    assert "larger than the limit of 5 MiB" in response.get_data(as_text=True)


def test_the_cli_prints_the_report_and_exits_1_when_refused(app, session, branches, admin,
                                                           tmp_path):
    path = tmp_path / "reps.csv"
    path.write_text(sample_text("reps").replace(",SH,", ",XX,"), encoding="utf-8-sig")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["import", "reps", str(path), "--by", admin.username])
    assert result.exit_code == 1, result.output
    assert "No branch with this code" in result.output and "refused" in result.output
    result = runner.invoke(args=["import", "reps", str(path), "--by", admin.username,
                                 "--valid-rows-only"])
    assert result.exit_code == 0, result.output
    assert "added 3" in result.output and "skipped 2" in result.output


def test_the_readme_documents_every_column():
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    for kind in KINDS:
        assert f"`{kind}`" in readme
        for column in COLUMNS[kind]:
            assert f"`{column.name}`" in readme, (kind, column.name)
            if column.chinese:
                assert column.chinese in readme, (kind, column.chinese)


def test_english_headers_are_accepted_in_any_case_and_spacing():
    parsed = parse_csv("forecasts", b"REP , Month,Forecast Yuan\nr1,2026-01,100\n")
    assert parsed.problems == [] and parsed.rows[0].values["forecast_yuan"] == 100


def test_a_large_upload_streams_its_progress_then_links_the_report(app, session, branches, admin,
                                                                   login_as):
    app.config["IMPORT_PROGRESS_MIN_BYTES"] = 1_000
    rows = "\n".join(f"R{n:05d},user{n},Rep {n},BJ,2022-01-0{n % 9 + 1},active"
                     for n in range(600))
    data = ("external_id,username,name,branch,hired_on,status\n" + rows + "\n").encode()
    client = login_as(admin)
    response = client.post("/admin/imports/", data={
        "kind": "reps", "file": (io.BytesIO(data), "big-reps.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 200 and response.is_streamed
    html = response.get_data(as_text=True)
    assert html.count('class="progress-step"') == 3  # at 250, 500 and the end
    assert "600 of 600 rows checked" in html
    assert "600 added" in html
    reload(session)
    run = session.scalars(select(ImportRun)).one()
    assert f"/admin/imports/{run.id}" in html and run.added == 600


def test_a_first_load_records_the_crm_owner_even_past_capacity(session, loaded, run_import,
                                                               give_accounts):
    rep = session.scalars(select(User).where(User.external_id == "R1004")).one()
    give_accounts(rep, 40)
    header = sample_text("accounts").splitlines()[0]
    row = sample_text("accounts").splitlines()[1].split(",")
    row[0] = "KA-9999"
    owner_column = next(index for index, value in enumerate(row) if value.startswith("R100"))
    row[owner_column] = "R1004"
    result = run_import("accounts", header + "\n" + ",".join(row) + "\n")
    assert (result.status, result.added) == ("imported", 1), result.problems
    reload(session)
    account = session.scalars(select(Account).where(Account.external_id == "KA-9999")).one()
    assert account.owner_id == rep.id


# --- CSV records that do not line up with the header -------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_a_quote_never_closed_refuses_the_file_naming_where_it_opens(session, branches,
                                                                     run_import, encoding):
    text = sample_text("reps").replace("R1003,zhangwei,张伟,", 'R1003,zhangwei,"张伟,')
    before = counts(session)
    result = run_import("reps", text.encode(encoding))
    assert_refused_without_writes(session, before, result)
    assert [problem.row for problem in result.problems] == [None]
    assert ("Row 4, column '姓名': a quote opens here and is never closed"
            in result.problems[0].reason)


def test_quoted_cells_that_close_still_import(session, branches, run_import):
    text = sample_text("reps").replace("R1003,zhangwei,张伟,", 'R1003,zhangwei,"张""伟\n三",')
    result = run_import("reps", text.rstrip("\n"))
    assert result.status == "imported" and result.added == 5, result.problems
    reload(session)
    assert session.scalars(select(User.display_name).where(User.external_id == "R1003")).one() == (
        '张"伟\n三')


def test_a_row_with_more_cells_than_the_header_is_a_row_problem(session, branches, run_import):
    text = sample_text("reps").replace("R1003,zhangwei,张伟,SH,2022-11-20,在职",
                                       "R1003,zhangwei,张伟,SH,2022-11-20,在职,备注,x")
    text = text.replace("R1004,chenjing,陈静,SH,2020-05-08,休假",
                        "R1004,chenjing,陈静,SH,2020-05-08,休假,,")  # blank cells: harmless
    before = counts(session)
    result = run_import("reps", text)
    assert_refused_without_writes(session, before, result)
    assert [(problem.row, problem.column, problem.value) for problem in result.problems] == [
        (4, "G", "备注,x")]
    assert "This row has 8 cells but the header has 6 columns" in result.problems[0].reason
    result = run_import("reps", text, valid_rows_only=True)
    assert (result.added, result.skipped) == (4, 1)


def test_control_characters_anywhere_in_the_file_are_row_problems(session, branches,
                                                                  run_import):
    header = "员工编号,用户名,姓名,分公司,入职日期,状态\n"
    rows = [f"R{n:04d},user{n},销售{n},BJ,2022-01-01,在职\n" for n in range(300)]
    rows.append("R9001,bad1,带NUL\x00的销售\x07名称,BJ,2022-01-01,在职\n")
    rows.append("R9002,bad2,好名字,B\x1bJ,2022-01-01,在职\n")
    text = header + "".join(rows)
    assert text.index("\x00") > 8192
    before = counts(session)
    result = run_import("reps", text)
    assert_refused_without_writes(session, before, result)
    assert [(problem.row, problem.column, problem.value) for problem in result.problems] == [
        (302, "姓名", "带NUL\\x00的销售\\x07名称"), (303, "分公司", "B\\x1bJ")]
    assert "control character (U+0000)" in result.problems[0].reason
    # The report keeps the problems (PostgreSQL stores no NUL); the valid rows still import.
    result = run_import("reps", text, valid_rows_only=True)
    assert (result.status, result.added, result.skipped) == ("imported", 300, 2)
    reload(session)
    assert not session.scalars(select(User).where(User.external_id.in_(["R9001", "R9002"]))).all()


def test_a_control_character_in_a_column_name_refuses_the_file():
    from bidhub.domain.imports import parse_file

    parsed = parse_file("reps", [["员工编号", "用户名", "姓名\x01", "分公司"], ["x", "y", "z", "BJ"]])
    assert [(problem.row, str(problem.reason)) for problem in parsed.problems] == [
        (None, "Row 1, column C: the column name holds a control character (U+0001). Remove "
               "it and import the file again.")]


# --- one identity for an id, in the file and in the database ----------------------------------

def account_ids(session) -> list[str]:
    reload(session)
    return sorted(session.scalars(select(Account.external_id)))


def test_invisible_characters_around_ids_and_names_are_not_part_of_them(session, loaded,
                                                                         run_import):
    before = counts(session)
    text = sample_text("accounts")
    text = text.replace("\nKA-2002,华北电力集团,", "\n\u200bKA-2002,华北电力集团\u200d,")
    text = text.replace("\nKA-2003,", "\n\ufeffKA-2003\u2060 ,")
    text = text.replace(",R1003,", ",\u200bR1003,")  # an owner named with one, too
    result = run_import("accounts", text)
    assert (result.status, result.added, result.updated, result.unchanged) == (
        "imported", 0, 0, 6), result.problems
    assert counts(session) == before
    assert "华北电力集团" in session.scalars(select(Account.name)).all()


def test_an_id_in_another_case_or_width_is_the_same_id(session, loaded, run_import):
    header = sample_text("accounts").splitlines()[0]
    row = "{id},客户{n},制造,民营,BJ,1000,R1001,,,,,"
    for n, external_id in enumerate(["KA-3001", "ka-3001", "ＫＡ－３００１", " Ka-3001\u200b"]):
        result = run_import("accounts", f"{header}\n{row.format(id=external_id, n=n)}\n")
        assert result.status == "imported" and result.added == (1 if n == 0 else 0), (
            result.problems)
    reload(session)
    stored = session.scalars(select(Account).where(Account.name.like("客户%"))).all()
    assert [(account.external_id, account.name) for account in stored] == [("KA-3001", "客户3")]
    # Opportunities and incidents match their own ids and the accounts' the same way.
    opportunities = sample_text("opportunities")
    result = run_import("opportunities", opportunities.replace("OPP-3001,KA-2001,R1001",
                                                               "ｏｐｐ-3001,ka-2001,r1001"))
    assert (result.status, result.added) == ("imported", 0), result.problems
    incidents = sample_text("incidents").replace("INC-4001,KA-2002,R1002",
                                                 "inc-4001,\u200bka-2002,R1002")
    result = run_import("incidents", incidents)
    assert (result.status, result.added) == ("imported", 0), result.problems
    assert counts(session)["Opportunity"] == len(opportunities.splitlines()) - 1


def test_ids_differing_only_in_punctuation_are_different_ids(session, loaded, run_import):
    header = sample_text("accounts").splitlines()[0]
    rows = [f"{external_id},客户{n},制造,民营,BJ,1000,R1001,,,,,"
            for n, external_id in enumerate(["KA-20-11", "KA-2011", "ka_20_11", "KA 20 11"])]
    result = run_import("accounts", "\n".join([header, *rows]) + "\n")
    assert (result.status, result.added) == ("imported", 4), result.problems
    assert {"KA-20-11", "KA-2011", "ka_20_11", "KA 20 11"} <= set(account_ids(session))


def test_the_same_id_twice_in_a_file_in_another_case_or_width_is_a_duplicate(
        session, loaded, run_import):
    header = sample_text("accounts").splitlines()[0]
    rows = [f"{external_id},客户{n},制造,民营,BJ,1000,R1001,,,,,"
            for n, external_id in enumerate(["KA-3001", "ka-3001", "ＫＡ－３００１"])]
    before = counts(session)
    result = run_import("accounts", "\n".join([header, *rows]) + "\n")
    assert_refused_without_writes(session, before, result)
    assert [(problem.row, problem.column) for problem in result.problems] == [
        (3, "external_id"), (4, "external_id")]
    assert all("Also in row 2" in problem.reason for problem in result.problems)


def test_a_rep_named_in_another_case_keeps_the_stored_id(session, loaded, run_import):
    text = sample_text("reps").replace("R1003,zhangwei,张伟,SH", "ｒ1003,zhangwei,张伟伟,SH")
    result = run_import("reps", text)
    assert (result.status, result.added, result.updated) == ("imported", 0, 1), result.problems
    reload(session)
    rep = session.scalars(select(User).where(User.username == "zhangwei")).one()
    assert (rep.external_id, rep.display_name) == ("R1003", "张伟伟")


# --- a rep's status and whether they can sign in and receive accounts ---------------------------

def test_a_rep_back_from_having_left_is_active_again_and_can_receive_accounts(
        session, loaded, run_import):
    reps = sample_text("reps")
    left = reps.replace("R1004,chenjing,陈静,SH,2020-05-08,休假", "R1004,chenjing,陈静,SH,2020-05-08,离职")
    back = reps.replace("R1004,chenjing,陈静,SH,2020-05-08,休假", "R1004,chenjing,陈静,SH,2020-05-08,在职")
    assert run_import("reps", left).updated == 1
    reload(session)
    rep = session.scalars(select(User).where(User.external_id == "R1004")).one()
    token = rep.session_token
    assert (rep.status, rep.is_active) == ("left", False)
    assert run_import("reps", back).updated == 1
    reload(session)
    rep = session.scalars(select(User).where(User.external_id == "R1004")).one()
    assert (rep.status, rep.is_active) == ("active", True) and rep.session_token != token
    result = run_import("accounts", sample_text("accounts").replace(",880000,R1003,",
                                                                    ",880000,R1004,"))
    assert (result.status, result.updated) == ("imported", 1), result.problems


def test_a_rep_an_admin_deactivated_stays_so_and_is_named_deactivated(session, loaded,
                                                                      run_import):
    rep = session.scalars(select(User).where(User.external_id == "R1004")).one()
    rep.is_active = False
    session.commit()
    result = run_import("reps", sample_text("reps"))
    assert (result.status, result.updated) == ("imported", 0)
    reload(session)
    assert not session.get(User, rep.id).is_active
    result = run_import("accounts", sample_text("accounts").replace(",880000,R1003,",
                                                                    ",880000,R1004,"))
    assert result.status == "refused"
    assert "陈静 is deactivated and cannot receive accounts" in result.problems[0].reason


def excel_written(workbook, values: dict[bytes, bytes],
                  member: str = "xl/worksheets/sheet1.xml") -> bytes:
    """The workbook's bytes with a part as Excel writes it (openpyxl rounds floats, and
    defines every number format it uses)."""
    import re
    import zipfile

    buffer = io.BytesIO()
    workbook.save(buffer)
    source, patched = zipfile.ZipFile(buffer), io.BytesIO()
    with zipfile.ZipFile(patched, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == member:
                for old, new in values.items():
                    data = re.sub(old, new, data, flags=re.DOTALL)
            out.writestr(item, data)
    return patched.getvalue()


def test_an_amount_excel_computed_with_float_noise_imports_as_it_shows(session, loaded,
                                                                       run_import):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["销售", "月份", "预测金额", "实际金额"])
    sheet.append(["R1001", "2025-06", 1320, 0.3])
    noisy = {rb"<v>1320</v>": b"<v>1320.0000000000002</v>",  # =1200*1.1
             rb"<v>0\.3</v>": b"<v>0.30000000000000004</v>"}  # =0.1*3
    result = run_import("forecasts", excel_written(workbook, noisy), filename="f.xlsx")
    assert (result.status, result.added) == ("imported", 1), result.problems
    # 0.3 yuan is a real fraction of a yuan, as Excel shows it: rounded, and reported; the
    # noise of 1320 is none
    assert result.rounded == {"actual_yuan": 1}
    reload(session)
    assert session.execute(select(MonthlyForecast.forecast_yuan, MonthlyForecast.actual_yuan)
                           .where(MonthlyForecast.month == __import__("datetime").date(2025, 6, 1))
                           ).one() == (1320, 0)


@pytest.mark.parametrize("format_id", [31, 27, 57, 58, 36, 50])
def test_dates_in_chinese_excel_built_in_formats_are_read_as_dates(session, branches,
                                                                    run_import, format_id):
    from datetime import datetime

    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for record in sample_text("reps").splitlines():
        sheet.append(record.split(","))
    sheet["E2"].value = datetime(2026, 2, 5)
    sheet["E2"].number_format = "yyyy-mm-dd;@"  # rewritten below to the built-in id
    # Chinese Excel writes the style with the built-in id and no <numFmt> for it.
    data = excel_written(workbook, {rb"<numFmts[^>]*>.*?</numFmts>": b"",
                                    rb'numFmtId="1[6-9][0-9]"': b'numFmtId="%d"' % format_id},
                         member="xl/styles.xml")
    result = run_import("reps", data, filename="reps.xlsx")
    assert (result.status, result.added) == ("imported", 5), result.problems
    reload(session)
    assert str(session.scalars(select(User).where(User.external_id == "R1001")).one()
               .hired_on) == "2026-02-05"


def test_a_workbook_is_read_from_its_first_visible_sheet(session, branches, run_import):
    from openpyxl import Workbook

    workbook = Workbook()
    lists = workbook.active
    lists.title = "字典"
    for value in ("民营", "国有", "中外合资"):
        lists.append([value])
    lists.sheet_state = "hidden"
    sheet = workbook.create_sheet("销售清单")
    for record in sample_text("reps").splitlines():
        sheet.append(record.split(","))
    workbook.active = 1
    buffer = io.BytesIO()
    workbook.save(buffer)
    result = run_import("reps", buffer.getvalue(), filename="reps.xlsx")
    assert (result.status, result.added) == ("imported", 5), result.problems


def test_a_title_row_above_the_column_names_is_skipped_and_named(session, branches,
                                                                run_import):
    """Exports often carry a title merged across the sheet above the column names."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["2026年11月销售清单"])
    sheet.merge_cells("A1:F1")
    for record in sample_text("reps").splitlines():
        sheet.append(record.split(","))
    buffer = io.BytesIO()
    workbook.save(buffer)
    csv_file = "2026年11月销售清单,,,\r\n" + sample_text("reps")
    reps = len(sample_text("reps").splitlines()) - 1
    for data, filename in ((buffer.getvalue(), "reps.xlsx"), (csv_file, "reps.csv")):
        result = run_import("reps", data, filename=filename)
        assert (result.status, result.problems) == ("imported", []), filename
        assert result.added + result.unchanged == reps, filename
        assert result.rows_above == [(1, "2026年11月销售清单")], filename


def test_a_formula_whose_value_was_not_saved_is_a_problem_naming_its_cell(session, branches,
                                                                          run_import):
    """A workbook written by a program that does not calculate holds its formulas without
    their values (as openpyxl writes them); such a cell is not read as empty."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for record in sample_text("reps").splitlines():
        sheet.append([*record.split(","), "备注"] if record.startswith("员工编号") else
                     [*record.split(","), "=ROW()"])  # an ignored column: its formulas do not matter
    sheet["C2"].value = '="王"&"芳"'
    sheet["E3"].value = "=DATE(2019,7,1)"  # optional: it would have been imported as no date
    sheet["F4"].value = '=IF(TRUE,"","")'  # a text result "" that Excel saved: an empty cell
    saved_empty = {rb'<c r="F4"><f>(.*?)</f><v\s*/>': rb'<c r="F4" t="str"><f>\1</f><v></v>'}
    data = excel_written(workbook, saved_empty)
    result = run_import("reps", data, filename="reps.xlsx")
    assert result.status == "refused"
    assert [(problem.row, problem.column, problem.value, str(problem.reason))
            for problem in result.problems] == [
        (2, "name", '="王"&"芳"', "Cell C2 holds a formula whose value was not saved in the file. "
         "Open the file in Excel and save it again (or paste the values over the formulas), then "
         "import it again."),
        (3, "hire_date", "=DATE(2019,7,1)", "Cell E3 holds a formula whose value was not saved in "
         "the file. Open the file in Excel and save it again (or paste the values over the "
         "formulas), then import it again.")]
    result = run_import("reps", data, filename="reps.xlsx", valid_rows_only=True)
    assert (result.status, result.added, result.skipped) == ("imported", 3, 2)
    reload(session)
    assert session.scalars(select(User.status).where(User.external_id == "R1003")).one() == (
        "active")


@pytest.fixture
def reps_loaded(branches, run_import):
    assert run_import("reps", sample_text("reps")).status == "imported"
    return branches


def test_an_id_excel_turned_into_scientific_notation_is_refused(session, reps_loaded, run_import):
    """Excel shows 123456789012 in a narrow column as 1.23457E+11 and saves a CSV so: the id
    has lost its last digits, and would be read as another account."""
    lines = sample_text("accounts").splitlines()
    lines[1] = lines[1].replace("KA-2001", "1.23457E+11", 1)
    result = run_import("accounts", "\n".join(lines))
    assert result.status == "refused"
    [problem] = result.problems
    assert (problem.row, problem.column, problem.value) == (2, "external_id", "1.23457E+11")
    assert "scientific notation" in str(problem.reason)


def test_a_workbook_number_of_more_than_15_digits_is_not_read_as_an_id(session, reps_loaded,
                                                                         run_import):
    """An 18-digit id typed into Excel as a number keeps only 15 significant digits: the cell
    holds 1.23456789012346E+17, not the id."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for record in csv.reader(io.StringIO(sample_text("accounts"))):
        sheet.append(record)
    sheet["A2"].value = 123456789012345678
    sheet["A3"].value = 123456789012  # 12 digits: Excel holds it exactly
    result = run_import("accounts", excel_written(workbook, {}), filename="accounts.xlsx")
    assert [(problem.row, problem.column, problem.value) for problem in result.problems] == [
        (2, "external_id", "1.23456789012346E+17")]


def test_the_mapping_preview_names_a_formula_whose_value_was_not_saved():
    from bidhub.domain.imports import UnsavedFormula, preview_rows

    records = [["员工编号", "用户名", "姓名", "分公司"], ["R1", "a", UnsavedFormula("=B2"), "BJ"]]
    columns = {"员工编号": "external_id", "用户名": "username", "姓名": "name", "分公司": "branch"}
    [row] = preview_rows("reps", records, columns, 5)
    cell = next(cell for cell in row.cells if cell.field == "name")
    assert (cell.raw, cell.value) == ("=B2", "") and "Cell C2 holds a formula" in str(cell.problem)
    assert all(cell.problem is None for cell in row.cells if cell.field != "name")


@pytest.mark.parametrize("totals", [
    ',合计,,,,"7,760,000",,,,,,',  # the id cell empty, the name cell 合计
    '合计,,,,,"7,760,000",,,,,,',  # the id cell 合计
    "Total:,,,,,7760000,,,,,,",
    "合　计：,,,,,7760000,,,,,,",
])
def test_a_totals_row_is_skipped_and_said_so(session, loaded, admin, login_as, run_import,
                                             totals):
    before = counts(session)
    result = run_import("accounts", sample_text("accounts") + totals + "\r\n")
    assert (result.status, result.problems, result.unchanged, result.skipped) == (
        "imported", [], 6, 1)
    assert [row for row, _word in result.totals_rows] == [8]
    assert counts(session) == before
    run = session.get(ImportRun, result.run_id)
    assert [skipped["row"] for skipped in run.report["totals_rows"]] == [8]
    page = login_as(admin).get(f"/admin/imports/{result.run_id}").get_data(as_text=True)
    assert f"Row 8 ({result.totals_rows[0][1]}) is a totals row and was skipped." in page


def test_subtotals_under_groups_and_a_forecasts_total_are_skipped(session, loaded, run_import):
    text = sample_text("forecasts").replace("R1003,", "小计,,500000,430000\r\nR1003,", 1)
    result = run_import("forecasts", text + "总计,,1000000,860000\r\n")
    assert (result.status, result.problems, result.skipped) == ("imported", [], 2)
    assert [word for _row, word in result.totals_rows] == ["小计", "总计"]


@pytest.mark.parametrize(("subtotal", "total"), [("汇总", "总计"), ("Total", "Grand Total")])
def test_a_pivot_tables_subtotals_are_skipped(session, loaded, run_import, subtotal, total):
    """Excel's pivot table writes each group's subtotal in the group's cell (R1001 汇总) and
    its grand total below."""
    lines = sample_text("forecasts").splitlines()
    groups: dict[str, list[str]] = {}
    for line in lines[1:]:
        groups.setdefault(line.split(",")[0], []).append(line)
    text = "\r\n".join([lines[0], *(line for rep, rows in groups.items()
                                     for line in (*rows, f"{rep} {subtotal},,1,1")),
                         f"{total},,9,9"]) + "\r\n"
    result = run_import("forecasts", text)
    assert (result.status, result.problems) == ("imported", [])
    assert [word for _row, word in result.totals_rows] == [
        *(f"{rep} {subtotal}" for rep in groups), total]
    assert result.added + result.updated + result.unchanged == len(lines) - 1


@pytest.mark.parametrize("cell", ["汇总", "R1001 汇总", "r1001 total", "北京 汇总", "ＲＥＰ０１ Ｔｏｔａｌ"])
def test_a_pivot_subtotal_reads_as_a_totals_word(cell):
    assert is_totals_word(cell)


@pytest.mark.parametrize("cell", ["R1001", "北京汇总科技有限公司", "Total Solutions", "汇总表",
                                  "R1001汇总"])
def test_a_name_holding_the_words_is_no_pivot_subtotal(cell):
    assert not is_totals_word(cell)


@pytest.mark.parametrize("mark", ["—", "N/A", "无", "暂无", "--", "/"])
def test_a_mark_for_no_value_is_a_blank_cell(session, loaded, run_import, mark):
    """An export's dash or N/A in an optional amount, date or choice is no value; in a
    required column it is a missing value; in free text it is the text."""
    text = sample_text("forecasts").replace("R1001,2026-02,320000,", f"R1001,2026-02,320000,{mark}")
    result = run_import("forecasts", text)
    assert (result.status, result.problems) == ("imported", [])
    reload(session)
    rep = session.scalars(select(User).where(User.external_id == "R1001")).one()
    assert session.scalars(select(MonthlyForecast.actual_yuan).where(
        MonthlyForecast.rep_id == rep.id, MonthlyForecast.month == date(2026, 2, 1))).one() is None
    accounts = sample_text("accounts").replace('"1,200,000",R1001,,', f'"1,200,000",R1001,{mark},')
    result = run_import("accounts", accounts)
    assert (result.status, result.problems) == ("imported", [])
    reload(session)
    assert session.scalars(select(Account.executive_sponsor).where(
        Account.external_id == "KA-2001")).one() is None
    missing = run_import("forecasts", text.replace("R1001,2026-01,300000", f"R1001,2026-01,{mark}"))
    assert [(problem.row, problem.column, str(problem.reason)) for problem in missing.problems
            ] == [(2, "forecast_yuan", "A value is required.")]


def test_a_hyphen_in_an_amount_stays_a_problem_and_a_mark_in_free_text_stays_text(
        session, loaded, run_import):
    """Excel's accounting format writes 0 as a hyphen: neither a blank nor a zero is sure."""
    text = sample_text("forecasts").replace("R1001,2026-02,320000,", "R1001,2026-02,320000,-")
    result = run_import("forecasts", text)
    assert [(problem.row, problem.column) for problem in result.problems] == [(3, "actual_yuan")]
    incidents = sample_text("incidents").replace("https://www.competitor-b.com/,open,",
                                                 "https://www.competitor-b.com/,open,无")
    assert run_import("incidents", incidents).status == "imported"
    reload(session)
    assert session.scalars(select(AccountabilityIncident.explanation).where(
        AccountabilityIncident.external_id == "INC-4002")).one() == "无"


def test_a_row_with_an_id_is_never_a_totals_row(session, loaded, run_import):
    before = counts(session)
    text = (sample_text("accounts") + "KA-2099,合计,,,,7760000,,,,,,\r\n"
            + "KA-2098,小计,制造业,民营,BJ,100000,,,,,,\r\n")
    result = run_import("accounts", text)
    assert_refused_without_writes(session, before, result)
    assert result.totals_rows == []
    assert {(problem.row, problem.column) for problem in result.problems} == {
        (8, "industry"), (8, "ownership_type"), (8, "branch")}
    result = run_import("accounts", text, valid_rows_only=True)
    assert (result.added, result.skipped, result.totals_rows) == (1, 1, [])
    reload(session)
    assert session.scalars(select(Account.name).where(Account.external_id == "KA-2098")).one() == (
        "小计")


def test_a_workbook_totals_row_of_formulas_without_values_is_skipped(session, loaded,
                                                                     run_import):
    """Reports written by a program put =SUM(...) under the rows, with no value saved."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for record in csv.reader(io.StringIO(sample_text("accounts"))):
        sheet.append(record)
    sheet.append(["", "合计", "", "", "", "=SUM(F2:F7)"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    result = run_import("accounts", buffer.getvalue(), filename="accounts.xlsx")
    assert (result.status, result.problems, result.skipped) == ("imported", [], 1)
    assert result.totals_rows == [(8, "合计")]


def test_the_cli_says_which_totals_row_it_skipped(app, session, loaded, admin, tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text(sample_text("accounts") + ",合计,,,,7760000,,,,,,\r\n", encoding="utf-8-sig")
    result = app.test_cli_runner().invoke(args=["import", "accounts", str(path), "--by",
                                                admin.username])
    assert result.exit_code == 0, result.output
    assert "Row 8 (合计) is a totals row and was skipped." in result.output
    assert "skipped 1" in result.output


@pytest.mark.parametrize("totals", ["合计,5人,,,,", "合计：,共 5 人,,,,", "合计,５名,,,,",
                                    "小计,3人,,BJ,,", ",5人,合计,,,"])
def test_a_totals_row_that_counts_its_rows_is_skipped(session, loaded, run_import, totals):
    """Staff lists end with the head count in an id column (合计 | 5人): a count is no id."""
    before = counts(session)
    result = run_import("reps", sample_text("reps") + totals + "\r\n")
    assert (result.status, result.problems, result.skipped) == ("imported", [], 1)
    assert [row for row, _word in result.totals_rows] == [7]
    assert counts(session) == before


@pytest.mark.parametrize("row", ["R1006,5人,赵六,BJ,2024-01-02,在职",  # a username, however odd
                                 "5人,zhaoliu,合计,BJ,2024-01-02,在职"])
def test_a_count_beside_no_totals_word_or_beside_a_real_id_is_a_row(session, loaded, run_import,
                                                                      row):
    result = run_import("reps", sample_text("reps") + row + "\r\n")
    assert result.totals_rows == []
    assert result.status == "refused" or result.added == 1


TOTALS_WORDS_AS_EXPORTED = ["合计", "总计", "小计", "合 计", "合　计：", "Total", "TOTAL",
                            "Subtotal", "SubTotal", "Sub-total", "Grand total", "GRAND TOTAL",
                            "Grand Total:", "ＳＵＢＴＯＴＡＬ", "Ｇｒａｎｄ　Ｔｏｔａｌ", "合计 | 5人",
                            "合计：5人", "小计（3家）", "Total: 7,760,000", "总计 12"]


def with_totals_row(kind: str, word: str) -> tuple[str, list[int]]:
    """The kind's sample with a totals row (its first cell `word`, quoted as an export quotes
    it) after its first row and again at its end, and those rows' numbers."""
    lines = sample_text(kind).splitlines()
    width = len(next(csv.reader([lines[0]])))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([word] + [""] * (width - 1))
    totals = buffer.getvalue()
    text = "\r\n".join([*lines[:2], totals, *lines[2:], totals]) + "\r\n"
    return text, [3, len(lines) + 2]


@pytest.mark.parametrize("word", TOTALS_WORDS_AS_EXPORTED)
@pytest.mark.parametrize("kind", ["branches", *ORDER])
def test_a_totals_row_of_every_kind_is_skipped_wherever_it_stands(session, loaded, run_import,
                                                                  kind, word):
    """Grand total, Subtotal or 合计 | 5人 under a CRM export, or under one group of it."""
    before = counts(session)
    text, rows = with_totals_row(kind, word)
    result = run_import(kind, text)
    assert (result.status, result.problems, result.skipped) == ("imported", [], 2)
    assert result.totals_rows == [(row, word) for row in rows]
    assert counts(session) == before


@pytest.mark.parametrize("name", ["合计科技有限公司", "总计划咨询有限公司", "小计算器工作室",
                                  "Totally Fun Ltd", "Total Solutions Ltd", "Subtotalis GmbH",
                                  "合计-北京"])
def test_a_name_that_begins_with_a_totals_word_is_no_totals_row(session, loaded, run_import,
                                                                name):
    """Without its id such a row is a row that lacks its id, not a totals row skipped."""
    before = counts(session)
    result = run_import("accounts", sample_text("accounts") + f",{name},互联网,民营,BJ,80,,\r\n")
    assert result.totals_rows == []
    assert_refused_without_writes(session, before, result)
    assert [(problem.row, problem.column) for problem in result.problems] == [
        (8, "external_id")]


def test_the_import_page_says_which_totals_row_was_skipped_in_both_languages(
        session, loaded, admin, login_as, run_import):
    text, _rows = with_totals_row("reps", "Grand total")
    result = run_import("reps", text)
    client, page = login_as(admin), f"/admin/imports/{result.run_id}"
    client.post("/language", data={"locale": "en", "next": page})
    assert "Row 3 (Grand total) is a totals row and was skipped." in client.get(
        page).get_data(as_text=True)
    client.post("/language", data={"locale": "zh_CN", "next": page})
    assert "第 3 行（Grand total）是合计行，已跳过。" in client.get(page).get_data(as_text=True)


def test_the_mapping_preview_leaves_out_a_totals_row():
    from bidhub.domain.imports import preview_rows

    records = [["员工编号", "用户名", "姓名", "分公司"], ["R1", "a", "张三", "BJ"], ["", "", "合计", ""]]
    columns = {"员工编号": "external_id", "用户名": "username", "姓名": "name", "分公司": "branch"}
    assert [row.number for row in preview_rows("reps", records, columns, 5)] == [2]


def test_ids_and_amounts_a_crm_wrote_as_text_formulas_import_as_their_text(session, loaded,
                                                                          run_import):
    """="KA-2001" in a CRM's CSV is the id KA-2001, as Excel shows it: the same accounts as the
    plain file, nothing changed."""
    before = counts(session)
    lines = sample_text("accounts").splitlines()
    rows = []
    for record in csv.reader(lines[1:]):
        record[0] = f'="{record[0]}"'
        record[5] = f'="{record[5]}"'
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(record)
        rows.append(buffer.getvalue())
    assert '"=""1,200,000"""' in "\n".join(rows)  # quoted, as the field holds a comma
    result = run_import("accounts", "\r\n".join([lines[0], *rows]) + "\r\n")
    assert (result.status, result.problems, result.unchanged) == ("imported", [], len(rows))
    assert counts(session) == before


# --- a rep named by name, as CRM exports write the owner ---------------------------------------

def opportunities_naming(names: dict[str, str]) -> str:
    """The opportunities sample with each rep written as `names` says (R1001 -> 王芳)."""
    lines = sample_text("opportunities").splitlines()
    rows = []
    for record in csv.reader(lines[1:]):
        record[2] = names.get(record[2], record[2])
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(record)
        rows.append(buffer.getvalue())
    return "\r\n".join([lines[0], *rows]) + "\r\n"


def reps_of_opportunities(session) -> dict[str, str]:
    reload(session)
    return dict(session.execute(select(Opportunity.external_id, User.username)
                                .join(User, User.id == Opportunity.rep_id)).all())


def test_a_rep_named_by_a_name_only_one_rep_has_is_that_rep(session, loaded, run_import):
    """Exports name the rep as the CRM shows them (王芳), in any width or spacing."""
    before = reps_of_opportunities(session)
    text = opportunities_naming({"R1001": "王芳", "R1002": "李 军", "R1003": "张伟"})
    result = run_import("opportunities", text)
    assert (result.status, result.problems) == ("imported", [])
    assert result.unchanged == len(before)
    assert reps_of_opportunities(session) == before


def test_a_name_two_reps_share_is_refused_naming_their_ids(session, loaded, run_import,
                                                             make_rep, branches):
    namesake = make_rep(username="wangfang2", name="王芳", branch=branches["BJ"])
    namesake.external_id = "R1099"
    session.commit()
    before = counts(session)
    result = run_import("opportunities", opportunities_naming({"R1001": "王芳"}))
    assert_refused_without_writes(session, before, result)
    [problem] = result.problems
    assert (problem.column, problem.value) == ("rep", "王芳")
    assert str(problem.reason) == ("2 reps are named 王芳 (employee ids R1001, R1099): write "
                                   "the rep's employee id or username instead.")
    # The ids still name each of them.
    assert run_import("opportunities", sample_text("opportunities")).status == "imported"
    assert namesake.id not in {row for row in reps_of_opportunities(session).values()}


def test_an_id_or_username_comes_before_a_name(session, loaded, run_import, make_rep, branches):
    """A rep whose name is another rep's username is not taken for them."""
    make_rep(username="zhaolei", name="lijun", branch=branches["BJ"])
    result = run_import("opportunities", opportunities_naming({"R1002": "lijun"}))
    assert (result.status, result.problems) == ("imported", [])
    assert "zhaolei" not in reps_of_opportunities(session).values()


def test_an_accounts_owner_named_by_name_is_filed_as_by_id(session, loaded, run_import):
    lines = sample_text("accounts").splitlines()
    text = "\r\n".join([lines[0], *(line.replace(",R1001,", ",王芳,") for line in lines[1:])])
    result = run_import("accounts", text + "\r\n")
    assert (result.status, result.problems, result.updated) == ("imported", [], 0)


def test_a_branch_written_as_exports_write_it_is_that_branch(session, loaded, run_import):
    """北京分公司 or Beijing Branch is the branch bidhub knows as BJ (北京 / Beijing)."""
    loaded["BJ"].name_zh = "北京"
    session.commit()
    before = counts(session)
    text = sample_text("reps").replace(",BJ,2021", ",北京分公司,2021").replace(
        ",BJ,2019", ",Beijing Branch,2019").replace(",SH,2022", ",ＳＨ,2022")
    result = run_import("reps", text)
    assert (result.status, result.problems) == ("imported", [])
    assert result.unchanged == 5 and counts(session) == before


def test_a_branch_given_as_a_department_path_is_the_branch_it_names(session, loaded,
                                                                      run_import):
    """An HR export's 部门 (华北大区/北京分公司/KA一部) mapped to the branch."""
    loaded["BJ"].name_zh = "北京"
    session.commit()
    before = counts(session)
    text = sample_text("reps").replace(",BJ,2021", ",华北大区/北京分公司/KA一部,2021").replace(
        ",SH,2022", ",销售中心 > SH > 大客户部,2022")
    result = run_import("reps", text)
    assert (result.status, result.problems) == ("imported", [])
    assert result.unchanged == 5 and counts(session) == before
    # Two branches in one path is no guess.
    refused = run_import("reps", sample_text("reps").replace(",BJ,2021", ",BJ/SH,2021"))
    assert refused.status == "refused"
    assert [(problem.column, problem.value) for problem in refused.problems] == [
        ("branch", "BJ/SH")]


def with_accounts_named(session, kind: str) -> str:
    """The kind's sample with each account written as its name (北京智联科技有限公司)."""
    names = dict(session.execute(select(Account.external_id, Account.name)).all())
    lines = sample_text(kind).splitlines()
    rows = []
    for record in csv.reader(lines[1:]):
        record[1] = names[record[1]]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(record)
        rows.append(buffer.getvalue())
    return "\r\n".join([lines[0], *rows]) + "\r\n"


@pytest.mark.parametrize("kind", ["opportunities", "incidents"])
def test_an_account_named_by_a_name_only_one_account_has_is_that_account(
        session, loaded, run_import, kind):
    before = counts(session)
    result = run_import(kind, with_accounts_named(session, kind))
    assert (result.status, result.problems) == ("imported", [])
    assert result.unchanged == len(sample_text(kind).splitlines()) - 1
    assert counts(session) == before


@pytest.mark.parametrize("kind", ["opportunities", "incidents"])
def test_an_account_name_two_accounts_share_is_refused_naming_their_ids(session, loaded,
                                                                        run_import, kind):
    text = with_accounts_named(session, kind)
    first = session.scalars(select(Account).where(
        Account.external_id == sample_text(kind).splitlines()[1].split(",")[1])).one()
    session.add(Account(external_id="KA-2999", name=first.name, industry=first.industry,
                        ownership_type=first.ownership_type, branch_id=first.branch_id,
                        annual_value_yuan=1, created_at=first.created_at))
    session.commit()
    before = counts(session)
    result = run_import(kind, text)
    assert_refused_without_writes(session, before, result)
    assert {(problem.column, problem.value, str(problem.reason))
            for problem in result.problems} == {
        ("account", first.name, f"2 accounts are named {first.name} (external ids "
         f"{first.external_id}, KA-2999): write the account's external id instead.")}
    result = run_import(kind, text.replace(first.name, "没有这家公司"))
    assert {str(problem.reason) for problem in result.problems} == {
        "No account with this external id or name."}


def test_a_new_incident_naming_its_account_keeps_the_won_deal_rule(session, loaded,
                                                                   run_import):
    """An account named by its name is the account: its recent won deal (OPP-3001, KA-2001)
    still refuses a new incident on it, as it does when the file gives the account's id."""
    by_id = sample_text("incidents").replace("INC-4001,KA-2002", "INC-4901,KA-2001")
    name = session.scalars(select(Account.name).where(Account.external_id == "KA-2001")).one()
    refusals = []
    for text in (by_id, by_id.replace("INC-4901,KA-2001", f"INC-4901,{name}")):
        result = run_import("incidents", text)
        assert result.status == "refused"
        refusals.append([(problem.row, problem.column, str(problem.reason))
                         for problem in result.problems])
    assert refusals[0] == refusals[1]
    assert [(row, column) for row, column, _reason in refusals[0]] == [(2, "account")]
    assert "placed an order with us" in refusals[0][0][2]


def test_an_incident_is_refused_against_a_rep_who_did_not_hold_the_account_that_day(
        session, loaded, run_import, make_manager, clock):
    """An incident counts against its rep's track record: the file's rep must have held the
    account on the day it was seen, as the filings tell, whether or not the rep holds it now."""
    header = sample_text("incidents").splitlines()[0]

    def incident_file(external_id: str, rep: str, seen: str) -> str:
        return (f"{header}\n{external_id},KA-2003,{rep},www.competitor-c.com,{seen},banner,首页,,"
                f"待说明,\n")

    before = counts(session)
    refused = run_import("incidents", incident_file("INC-4910", "R1002", "2026-02-25"))
    assert_refused_without_writes(session, before, refused)
    [problem] = refused.problems
    assert (problem.row, problem.column, problem.value) == (2, "rep", "R1002")
    reason = str(problem.reason)
    assert "did not hold" in reason and "2026-02-25" in reason
    held_by = session.scalars(select(User).where(User.external_id == "R1003")).one()
    assert f"(that day: {held_by.display_name})" in reason

    # KA-2003 moves from R1003 to R1002 on 3 March (Beijing), in bidhub.
    account = session.scalars(select(Account).where(Account.external_id == "KA-2003")).one()
    receiver = session.scalars(select(User).where(User.external_id == "R1002")).one()
    clock.advance(days=1)
    transfer_account(session, make_manager(), account_id=account.id, to_rep_id=receiver.id,
                     reason="客户要求更换对接人，原负责人工作量已满",
                     review_text="客户多次反映响应慢，原负责人名下客户已满，无法保证服务频次。",
                     now=clock())
    clock.advance(days=2)
    for number, (rep, seen, status) in enumerate((
            ("R1003", "2026-03-01", "imported"),  # held it then
            ("R1003", "2026-03-03", "imported"),  # held it that morning
            ("R1002", "2026-03-03", "imported"),  # and from that morning on
            ("R1003", "2026-03-04", "refused"),
            ("R1002", "2026-03-01", "refused")), start=4911):
        result = run_import("incidents", incident_file(f"INC-{number}", rep, seen))
        assert result.status == status, (rep, seen, result.problems)
    # An incident already in bidhub is imported again as it is, whoever holds it now.
    again = run_import("incidents", incident_file("INC-4911", "R1003", "2026-03-01"))
    assert (again.status, again.unchanged) == ("imported", 1)


def test_a_reps_import_audits_each_user_it_adds_or_changes(session, loaded, run_import, admin):
    """As the users page does: one entry per user, with what changed, by the admin who ran the
    import. Before, the import's own entry (counts only) was all the log had of a username
    handed from one rep to another."""
    reload(session)
    reps = {user.external_id: user for user in session.scalars(
        select(User).where(User.external_id.is_not(None)))}
    created = {event.target for event in session.scalars(
        select(AuditEvent).where(AuditEvent.action == "user.created"))}
    assert created == {f"user:{user.id}" for user in reps.values()}
    text = (sample_text("reps").replace("R1001,wangfang,王芳", "R1001,wangfang2,王芳")
            .replace("R1002,lijun,李军", "R1002,wangfang,李军"))
    result = run_import("reps", text)
    assert (result.status, result.updated) == ("imported", 2), result.problems
    reload(session)
    updated = {event.target: event for event in session.scalars(
        select(AuditEvent).where(AuditEvent.action == "user.updated"))}
    assert set(updated) == {f"user:{reps['R1001'].id}", f"user:{reps['R1002'].id}"}
    handed = updated[f"user:{reps['R1002'].id}"]
    assert (handed.before["username"], handed.after["username"]) == ("lijun", "wangfang")
    assert handed.actor_id == admin.id
    assert run_import("reps", text).updated == 0
    reload(session)
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "user.updated")) == 2  # an unchanged row is not audited


def incident(session, external_id: str) -> AccountabilityIncident:
    reload(session)
    return session.scalars(select(AccountabilityIncident).where(
        AccountabilityIncident.external_id == external_id)).one()


def test_an_imported_incident_awaiting_an_explanation_is_in_its_rep_s_inbox(
        session, loaded, run_import):
    """As one logged on the accountability page is: told once, and only where the rep has
    something to do (an incident imported as explained waits for nobody's explanation)."""
    from bidhub.models import Notification

    reload(session)
    told = {(notice.recipient_id, notice.event_key) for notice in session.scalars(
        select(Notification).where(Notification.kind == "incident_logged"))}
    incidents = {incident.external_id: incident for incident in session.scalars(
        select(AccountabilityIncident))}
    assert told == {(incidents[external_id].rep_id,
                     f"incident_logged:incident:{incidents[external_id].id}")
                    for external_id in ("INC-4002", "INC-4003")}
    again = run_import("incidents", sample_text("incidents"))
    assert (again.status, again.added) == ("imported", 0)
    reload(session)
    assert session.scalar(select(func.count()).select_from(Notification).where(
        Notification.kind == "incident_logged")) == 2


def test_an_older_incidents_export_never_takes_back_what_was_done_in_bidhub(
        session, loaded, run_import, make_manager, clock):
    """INC-4002 (open in the file) was explained by its rep in bidhub, INC-4001 (explained in
    the file) upheld by KA management: importing the same export again keeps both, says so
    on each row, and leaves the explanation, the decision and their dates as they were."""
    explained = incident(session, "INC-4002")
    rep = session.get(User, explained.rep_id)
    clock.advance(days=1)
    explain_incident(session, rep, explained.id, now=clock(),
                     explanation="客户只是转载了竞品网站上的旧广告，我已联系对方撤下并留存了截图。")
    upheld = incident(session, "INC-4001")
    clock.advance(days=20)
    resolve_incident(session, make_manager(), upheld.id, outcome="upheld",
                     note="说明不成立：广告仍在首页。", expected_version=upheld.version,
                     now=clock())
    before = {external_id: (found.status, found.explanation, found.explained_at,
                            found.resolved_at, found.resolved_by_id, found.resolution_note)
              for external_id in ("INC-4001", "INC-4002")
              for found in [incident(session, external_id)]}
    clock.advance(days=1)
    result = run_import("incidents", sample_text("incidents"))
    assert result.status == "imported", result.problems
    assert {external_id: (found.status, found.explanation, found.explained_at,
                          found.resolved_at, found.resolved_by_id, found.resolution_note)
            for external_id in ("INC-4001", "INC-4002")
            for found in [incident(session, external_id)]} == before
    assert before["INC-4002"][:2] == (
        "explained", "客户只是转载了竞品网站上的旧广告，我已联系对方撤下并留存了截图。")
    assert before["INC-4001"][0] == "upheld"
    assert [(warning.row, warning.column, str(warning.reason)) for warning in result.warnings
            ] == [(2, "status", "bidhub holds this incident as Upheld, which the file's "
                   "Explained would undo: its status was kept. Change it on the "
                   "accountability page if it must change."),
                  (3, "status", "bidhub holds this incident as Explained, which the file's "
                   "Awaiting explanation would undo: its status was kept. Change it on the "
                   "accountability page if it must change.")]


def test_a_decision_made_in_bidhub_is_not_replaced_by_another_from_a_file(
        session, loaded, run_import, make_manager, clock):
    upheld = incident(session, "INC-4001")
    clock.advance(days=20)
    resolve_incident(session, make_manager(), upheld.id, outcome="accepted", note="",
                     expected_version=upheld.version, now=clock())
    result = run_import("incidents", sample_text("incidents").replace(",已说明,", ",维持,"))
    assert result.status == "imported", result.problems
    assert incident(session, "INC-4001").status == "accepted"
    assert [(warning.row, warning.column) for warning in result.warnings] == [(2, "status")]


def test_a_file_still_moves_an_incident_forward(session, loaded, run_import, clock):
    clock.advance(days=1)
    result = run_import("incidents", sample_text("incidents").replace(
        "banner,首页,https://www.competitor-b.com/,open,", "banner,首页,https://www.competitor-b.com/,"
        "已说明,客户已撤下广告"))
    assert (result.status, result.updated, result.warnings) == ("imported", 1, [])
    moved = incident(session, "INC-4002")
    assert (moved.status, moved.explanation, moved.explained_at) == (
        "explained", "客户已撤下广告", clock())


def test_an_accounts_import_judges_its_moves_together_whatever_their_order(
        session, loaded, run_import, give_accounts):
    """Two reps at the maximum of 40 swap an account each: neither holds more than 40 once
    the file is read, so it imports, in either order of its rows. Before, each row's move was
    judged alone, so a swap was always refused and one file imported or not by its order."""
    reload(session)
    fang, jun = (session.scalars(select(User).where(User.external_id == external_id)).one()
                 for external_id in ("R1001", "R1002"))
    held = {rep.id: session.scalar(select(func.count()).select_from(Account).where(
        Account.owner_id == rep.id)) for rep in (fang, jun)}
    give_accounts(fang, 40 - held[fang.id])
    give_accounts(jun, 40 - held[jun.id])
    header = sample_text("accounts").splitlines()[0]

    def row(account: Account, owner: User) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow([
            account.external_id, account.name, account.industry, account.ownership_type,
            session.get(Branch, account.branch_id).code, account.annual_value_yuan,
            owner.external_id, "", "", "", "", ""])
        return buffer.getvalue()

    first, second = (session.scalars(select(Account).where(Account.owner_id == rep.id)
                                     .order_by(Account.id.desc())).first() for rep in (fang, jun))
    filed = session.scalar(select(func.count()).select_from(Filing))
    swap = [row(first, jun), row(second, fang)]
    result = run_import("accounts", "\n".join([header, *reversed(swap)]) + "\n")
    assert result.status == "imported", result.problems
    reload(session)
    assert (session.get(Account, first.id).owner_id, session.get(Account, second.id).owner_id) \
        == (jun.id, fang.id)
    assert session.scalar(select(func.count()).select_from(Filing)) == filed + 2
    for rep in (fang, jun):
        assert session.scalar(select(func.count()).select_from(Account).where(
            Account.owner_id == rep.id)) == 40
    # Back the other way, rows in the other order: the same.
    back = [row(first, fang), row(second, jun)]
    assert run_import("accounts", "\n".join([header, *back]) + "\n").status == "imported"
    # A move that leaves a rep past 40 is still refused, on its row's owner column, and
    # nothing of the file is written.
    extra = session.scalars(select(Account).where(Account.owner_id == jun.id)
                            .order_by(Account.id)).first()
    before = counts(session)
    refused = run_import("accounts", "\n".join([header, row(first, jun), row(extra, jun)]) + "\n")
    assert_refused_without_writes(session, before, refused)
    assert {(problem.row, problem.column) for problem in refused.problems} == {(2, "owner")}
    assert str(refused.problems[0].reason) == (
        f"{jun.display_name} holds 40 accounts; one more would exceed the maximum of 40.")


def test_an_accounts_import_does_not_move_an_account_with_an_executive_sponsor(
        session, loaded, run_import):
    """KA-2002 has the president as its executive sponsor: it moves only when the sponsor
    confirms, as on the Transfer page. Before, a file naming another owner moved it, and the
    sponsor was neither asked nor told."""
    before = counts(session)
    result = run_import("accounts", sample_text("accounts").replace(
        "3500000,lijun,总裁", "3500000,R1001,总裁"))
    assert_refused_without_writes(session, before, result)
    assert [(problem.row, problem.column, problem.value) for problem in result.problems] == [
        (3, "owner", "R1001")]
    assert "executive sponsor" in str(result.problems[0].reason)
    # The same file with the owner unchanged still imports its other changes.
    result = run_import("accounts", sample_text("accounts").replace(
        "3500000,lijun,总裁", "3600000,lijun,总裁"))
    assert (result.status, result.updated) == ("imported", 1)


def test_an_older_accounts_export_does_not_undo_a_transfer_made_in_bidhub(
        session, loaded, run_import, make_manager, clock):
    """KA-2001 was moved in bidhub from 王芳 (R1001) to 李军: the CRM's export, still naming
    王芳, keeps 李军 as the owner, files nothing and says why on the row; its other columns
    are read as usual."""
    account = session.scalars(select(Account).where(Account.external_id == "KA-2001")).one()
    fang, jun = (session.scalars(select(User).where(User.external_id == external_id)).one()
                 for external_id in ("R1001", "R1002"))
    clock.advance(days=1)
    filing = transfer_account(session, make_manager(), account_id=account.id, to_rep_id=jun.id,
                              reason="客户要求更换对接人，原负责人工作量已满",
                              review_text="客户多次反映响应慢，原负责人名下客户已满，无法保证服务频次。", now=clock())
    filed = session.scalar(select(func.count()).select_from(Filing))
    clock.advance(days=1)
    result = run_import("accounts", sample_text("accounts").replace(
        '"1,200,000",R1001', '"1,300,000",R1001'))
    assert result.status == "imported", result.problems
    reload(session)
    moved = session.get(Account, account.id)
    assert (moved.owner_id, moved.annual_value_yuan) == (jun.id, 1_300_000)
    assert session.scalar(select(func.count()).select_from(Filing)) == filed
    owners = [warning for warning in result.warnings if warning.column == "owner"]
    assert [(warning.row, warning.value) for warning in owners] == [(2, "R1001")]
    reason = str(owners[0].reason)
    assert f"from {fang.display_name} to {jun.display_name}" in reason
    assert f"(filing {filing.seq})" in reason and "the owner was kept" in reason
    # Once the CRM says what bidhub did, the file agrees and nothing is said.
    again = run_import("accounts", sample_text("accounts").replace(
        '"1,200,000",R1001', '"1,300,000",R1002'))
    assert again.status == "imported"
    assert [warning for warning in again.warnings if warning.column == "owner"] == []


# --- notes an export writes below its table ----------------------------------------------------

EXPORT_NOTES = ["导出人：管理员   导出时间：2026-11-30 10:00", "注：金额单位为元",
                "数据来源：CRM系统（截至2026-11-30）", "Exported by admin on 2026-11-30"]


def with_notes_below(kind: str, notes: list[str], column: int = 0,
                     blank_between: bool = False) -> tuple[str, list[int]]:
    """The kind's sample with one-cell rows (in `column`) after its last row, and their
    numbers."""
    lines = sample_text(kind).splitlines()
    width = len(next(csv.reader([lines[0]])))
    written = []
    for note in notes:
        buffer = io.StringIO()
        cells = [""] * width
        cells[column] = note
        csv.writer(buffer, lineterminator="").writerow(cells)
        written.append(buffer.getvalue())
    gap = ["," * (width - 1)] if blank_between else []
    text = "\r\n".join([*lines, *gap, *written]) + "\r\n"
    first = len(lines) + 1 + len(gap)
    return text, list(range(first, first + len(notes)))


@pytest.mark.parametrize("kind", ["branches", *ORDER])
@pytest.mark.parametrize(("column", "blank_between"), [(0, False), (1, True)])
def test_notes_below_the_table_are_skipped_and_said_so(session, loaded, run_import, kind, column,
                                                       blank_between):
    """A CRM export ends with who exported it and when, or the unit of its amounts: rows of one
    cell that no kind could import (each needs two values or more), after the last row."""
    before = counts(session)
    text, rows = with_notes_below(kind, EXPORT_NOTES, column, blank_between)
    result = run_import(kind, text)
    assert (result.status, result.problems, result.skipped) == ("imported", [], len(rows))
    assert result.note_rows == list(zip(rows, EXPORT_NOTES, strict=True))
    assert counts(session) == before
    run = session.get(ImportRun, result.run_id)
    assert [skipped["row"] for skipped in run.report["note_rows"]] == rows


SIGNED_BELOW = [["制表人：", "张三", "审核人：", "李四"], ["", "导出时间:", "2026-11-30 10:00"]]


def with_rows_below(kind: str, records: list[list[str]]) -> tuple[str, list[int]]:
    """The kind's sample with these records after its last row, and their numbers."""
    lines = sample_text(kind).splitlines()
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(records)
    return ("\r\n".join(lines) + "\r\n" + buffer.getvalue(),
            list(range(len(lines) + 1, len(lines) + 1 + len(records))))


@pytest.mark.parametrize("kind", ["branches", *ORDER])
def test_labels_and_their_values_below_the_table_are_notes(session, loaded, run_import, kind):
    """A sheet made for people is signed below its table, each label ending in a colon and its
    value in the next cell (制表人： | 张三): read as a row it lacked every required value,
    and the whole file was refused for its footer."""
    before = counts(session)
    text, rows = with_rows_below(kind, SIGNED_BELOW)
    result = run_import(kind, text)
    assert (result.status, result.problems, result.skipped) == ("imported", [], len(rows))
    assert result.note_rows == [(rows[0], "制表人：张三 审核人：李四"),
                                (rows[1], "导出时间:2026-11-30 10:00")]
    assert counts(session) == before


def test_a_labelled_row_with_rows_of_the_table_after_it_is_read_as_a_row(session, loaded,
                                                                         run_import):
    """In the middle of the table a row whose first cell ends with a colon is a row: held back
    while it might be a note, it is read, and imported, once a row of the table follows."""
    lines = sample_text("accounts").splitlines()
    text = "\r\n".join([*lines[:2], "KA-2099：,西安某公司,互联网,民营,BJ,100000,,,,,,",
                         *lines[2:]]) + "\r\n"
    result = run_import("accounts", text)
    assert (result.status, result.problems, result.note_rows) == ("imported", [], [])
    assert result.added == 1
    reload(session)
    assert session.scalars(select(Account.name).where(
        Account.external_id.like("KA-2099%"))).all() == ["西安某公司"]


def test_a_totals_row_with_a_colon_is_a_totals_row_not_a_note(session, loaded, run_import):
    text, rows = with_rows_below("reps", [["合计：", "5人"]])
    result = run_import("reps", text)
    assert (result.status, result.totals_rows, result.note_rows) == (
        "imported", [(rows[0], "合计：")], [])


def test_the_mapping_preview_counts_no_labelled_notes_among_the_rows(session, loaded, admin):
    from bidhub.services.imports import propose_mapping

    text, _rows = with_rows_below("reps", SIGNED_BELOW)
    text = "导出时间：| 2026-11-30\r\n".replace("| ", ",") + text.replace("员工编号", "销售编号")
    proposal = propose_mapping(session, "reps", "reps.csv", text.encode("utf-8-sig"))
    assert proposal.rows_total == len(sample_text("reps").splitlines()) - 1
    assert proposal.preview[0].number == 3


def test_a_one_cell_row_with_rows_of_the_table_after_it_is_read_as_a_row(session, loaded,
                                                                         run_import):
    """In the middle of the table a one-cell row may be a row cut short: it is refused for what
    it lacks, as before."""
    before = counts(session)
    lines = sample_text("reps").splitlines()
    text = "\r\n".join([*lines[:3], "R1099,,,,,", *lines[3:]]) + "\r\n"
    result = run_import("reps", text)
    assert_refused_without_writes(session, before, result)
    assert result.note_rows == []
    assert {problem.row for problem in result.problems} == {4}


def test_more_one_cell_rows_at_the_end_than_notes_make_are_read_as_rows(session, loaded,
                                                                        run_import):
    from bidhub.domain.imports import MAX_NOTE_ROWS

    before = counts(session)
    text, rows = with_notes_below("reps", [f"R{2000 + index}" for index in range(MAX_NOTE_ROWS + 1)])
    result = run_import("reps", text)
    assert_refused_without_writes(session, before, result)
    assert result.note_rows == []
    assert {problem.row for problem in result.problems} == set(rows)
    text, rows = with_notes_below("reps", [f"R{2000 + index}" for index in range(MAX_NOTE_ROWS)])
    assert run_import("reps", text).note_rows == [(row, f"R{2000 + index}")
                                                  for index, row in enumerate(rows)]


def test_a_totals_row_and_notes_below_it_are_both_skipped(session, loaded, run_import):
    text, _rows = with_notes_below("accounts", ["合计", *EXPORT_NOTES[:2]], column=1)
    result = run_import("accounts", text)
    assert (result.status, result.problems, result.skipped) == ("imported", [], 3)
    assert result.totals_rows == [(8, "合计")]
    assert result.note_rows == [(9, EXPORT_NOTES[0]), (10, EXPORT_NOTES[1])]


def test_notes_below_a_workbook_table_in_merged_cells_are_skipped(session, loaded, run_import):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for record in csv.reader(io.StringIO(sample_text("opportunities"))):
        sheet.append(record)
    sheet.append([])
    sheet.append([EXPORT_NOTES[0]])
    sheet.merge_cells(start_row=sheet.max_row, start_column=1, end_row=sheet.max_row,
                      end_column=8)
    buffer = io.BytesIO()
    workbook.save(buffer)
    result = run_import("opportunities", buffer.getvalue(), filename="opportunities.xlsx")
    assert (result.status, result.problems) == ("imported", [])
    assert result.note_rows == [(sheet.max_row, EXPORT_NOTES[0])]


def test_the_page_and_the_cli_say_which_notes_were_skipped(app, session, loaded, admin, login_as,
                                                          run_import, tmp_path):
    text, rows = with_notes_below("reps", EXPORT_NOTES[:1])
    result = run_import("reps", text)
    client, page = login_as(admin), f"/admin/imports/{result.run_id}"
    assert (f"Row {rows[0]} ({EXPORT_NOTES[0]}) is a note below the table and was skipped."
            in client.get(page).get_data(as_text=True))
    client.post("/language", data={"locale": "zh_CN", "next": page})
    assert (f"第 {rows[0]} 行（{EXPORT_NOTES[0]}）是表格下方的备注，已跳过。"
            in client.get(page).get_data(as_text=True))
    path = tmp_path / "reps.csv"
    path.write_text(text, encoding="utf-8-sig")
    done = app.test_cli_runner().invoke(args=["import", "reps", str(path), "--by", admin.username])
    assert done.exit_code == 0, done.output
    assert f"Row {rows[0]} ({EXPORT_NOTES[0]}) is a note below the table and was skipped." in (
        done.output)


def test_the_mapping_preview_and_its_row_count_leave_out_notes_below_the_table(session, loaded,
                                                                              admin):
    from bidhub.services.imports import propose_mapping

    text, _rows = with_notes_below("reps", EXPORT_NOTES[:2])
    lines = sample_text("reps").splitlines()
    proposal = propose_mapping(session, "reps", "reps.csv", text.encode("utf-8-sig"))
    assert proposal.rows_total == len(lines) - 1
    assert [row.number for row in proposal.preview] == list(range(2, len(lines) + 1))[:5]
    short = "\r\n".join([*lines[:3], EXPORT_NOTES[0]]) + "\r\n"
    proposal = propose_mapping(session, "reps", "reps.csv", short.encode("utf-8-sig"))
    assert (proposal.rows_total, [row.number for row in proposal.preview]) == (2, [2, 3])


TITLED = "2026年11月销售清单\r\n导出时间：2026-11-28 09:30\r\n\r\n"


def test_the_page_and_the_cli_say_which_rows_above_the_column_names_were_skipped(
        app, session, loaded, admin, login_as, run_import, tmp_path):
    text = TITLED + sample_text("reps")
    result = run_import("reps", text)
    assert result.rows_above == [(1, "2026年11月销售清单"), (2, "导出时间：2026-11-28 09:30")]
    client, page = login_as(admin), f"/admin/imports/{result.run_id}"
    assert ("Row 1 (2026年11月销售清单) is above the column names and was skipped."
            in client.get(page).get_data(as_text=True))
    client.post("/language", data={"locale": "zh_CN", "next": page})
    assert ("第 2 行（导出时间：2026-11-28 09:30）在列名上方，已跳过。"
            in client.get(page).get_data(as_text=True))
    path = tmp_path / "reps.csv"
    path.write_text(text, encoding="utf-8-sig")
    done = app.test_cli_runner().invoke(args=["import", "reps", str(path), "--by", admin.username])
    assert done.exit_code == 0, done.output
    assert "Row 1 (2026年11月销售清单) is above the column names and was skipped." in done.output


def test_the_mapping_step_reads_the_column_names_below_a_title_and_numbers_rows_as_the_file(
        session, loaded, admin):
    from bidhub.services.imports import propose_mapping

    lines = sample_text("reps").replace("员工编号", "销售编号").splitlines()
    text = TITLED + "\r\n".join(lines) + "\r\n"
    proposal = propose_mapping(session, "reps", "reps.csv", text.encode("utf-8-sig"))
    assert proposal.headers == lines[0].split(",")
    assert {match.column: match.field for match in proposal.suggestion}["销售编号"] == (
        "external_id")
    assert proposal.rows_total == len(lines) - 1
    assert [row.number for row in proposal.preview] == list(range(5, len(lines) + 4))[:5]
    assert [row.cells[0].raw for row in proposal.preview] == [
        line.split(",")[0] for line in lines[1:6]]


def test_an_account_on_the_market_keeps_its_branch(session, branches, run_import, make_account,
                                                   make_rep, make_round):
    """A listed account's branch decides who may bid for it and which round may list it (a
    round of one branch lists only that branch's accounts); an import moves it to another
    branch once it is off the market, as it changes its owner. Before, the branch moved
    under the open round."""
    owner = make_rep(branch=branches["BJ"])
    account = make_account(owner=owner, branch=branches["BJ"])
    round_ = make_round(accounts=[account])
    round_.branch_id = branches["BJ"].id
    session.commit()
    data = ("客户编号,客户名称,行业,所有制,分公司,年度金额,所属销售\n"
            f'{account.external_id},"{account.name}",{account.industry},'
            f"{account.ownership_type},SH,{account.annual_value_yuan},{owner.username}\n")
    result = run_import("accounts", data)
    assert result.status == "refused", result
    [problem] = result.problems
    assert problem.column == "branch"
    assert f"listed in round “{round_.title}”" in str(problem.reason)
    reload(session)
    assert session.get(Account, account.id).branch_id == branches["BJ"].id
    # The same file with the account's own branch is an ordinary update.
    assert run_import("accounts", data.replace(",SH,", ",BJ,")).status == "imported"


def test_a_username_one_rep_gives_up_may_go_to_another_later_in_the_file(session, loaded,
                                                                         run_import):
    """Written in the file's order: the rep giving the name up first, whatever the reps'
    order in the database. Taking it before it is given up is refused."""
    header = "员工编号,用户名,姓名,分公司,入职日期,状态\n"
    taken_first = (header + "R1001,lijun,王芳,BJ,2021-03-15,在职\n"
                   "R1002,lijun2,李军,BJ,2019-07-01,在职\n")
    result = run_import("reps", taken_first)
    assert result.status == "refused"
    assert [(problem.row, problem.column, str(problem.reason)) for problem in result.problems] == [
        (2, "username", "This username belongs to another user.")]
    given_up_first = (header + "R1002,lijun2,李军,BJ,2019-07-01,在职\n"
                      "R1001,lijun,王芳,BJ,2021-03-15,在职\n")
    result = run_import("reps", given_up_first)
    assert (result.status, result.updated, result.problems) == ("imported", 2, [])
    reload(session)
    assert dict(session.execute(select(User.external_id, User.username).where(
        User.external_id.in_(["R1001", "R1002"]))).all()) == {"R1001": "lijun", "R1002": "lijun2"}
