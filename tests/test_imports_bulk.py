"""Bulk imports: large files stream in batches, stay all or nothing, and change nothing again."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from bidhub.domain.collation import name_sort_bytes, width_folded
from bidhub.domain.imports import (
    MAX_ROWS,
    FileRefused,
    Problem,
    ProblemList,
    UploadLimits,
    csv_rows,
    file_shape,
    numbered_records,
)
from bidhub.models import (
    Account,
    AuditEvent,
    Contact,
    Filing,
    ImportRun,
    MonthlyForecast,
    Opportunity,
    OpportunityStageChange,
    TrackRecordSnapshot,
    User,
)
from bidhub.services import imports
from bidhub.services.imports import FileSource, import_file
from bidhub.services.ledger import verify_ledger
from tests.conftest import reload

HEADER = "商机编号,客户编号,销售,金额,阶段,创建日期,关闭日期,阶段历史"


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of 25 rows, so that a file of a few hundred rows spans many of them."""
    monkeypatch.setattr(imports.OpportunityImporter, "batch_rows", 25)
    monkeypatch.setattr(imports.ForecastImporter, "batch_rows", 25)


@pytest.fixture
def world(make_branch, make_rep, make_account, make_admin):
    branch = make_branch()
    reps = [make_rep(username=f"rep{n}", branch=branch) for n in range(4)]
    accounts = [make_account(branch=branch) for _ in range(6)]
    return {"reps": reps, "accounts": accounts, "admin": make_admin()}


@pytest.fixture
def run_import(session, world, clock):
    def run(kind: str, text: str, *, valid_rows_only: bool = False, filename: str = ""):
        return import_file(session, world["admin"], kind, filename or f"{kind}.csv",
                           text.encode("utf-8-sig"), valid_rows_only=valid_rows_only,
                           now=clock())

    return run


def opportunity_lines(world, count: int, *, start: int = 1) -> list[str]:
    """`count` opportunity rows, every third with a closed date and a stage history."""
    lines = []
    for number in range(start, start + count):
        account = world["accounts"][number % len(world["accounts"])].external_id
        rep = world["reps"][number % len(world["reps"])].username
        if number % 3 == 0:
            lines.append(f"OPP-{number:05d},{account},{rep},{number * 1000},销售实现,2025-01-05,"
                         f"2025-03-01,potential:2025-01-05;intent:2025-02-01;won:2025-03-01")
        else:
            lines.append(f"OPP-{number:05d},{account},{rep},\"{number * 1000:,}\",意向客户,"
                         f"2025-06-0{number % 9 + 1},,")
    return lines


def with_cell(line: str, index: int, value: str) -> str:
    """The CSV line with one cell replaced."""
    cells = next(csv.reader([line]))
    cells[index] = value
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()


def csv_text(lines: list[str], header: str = HEADER) -> str:
    return "\r\n".join([header, *lines]) + "\r\n"


def stored_rows(session) -> tuple[list, list]:
    reload(session)
    opportunities = session.execute(select(
        Opportunity.id, Opportunity.external_id, Opportunity.account_id, Opportunity.rep_id,
        Opportunity.amount_yuan, Opportunity.stage, Opportunity.opened_at, Opportunity.closed_at,
    ).order_by(Opportunity.id)).all()
    changes = session.execute(select(
        OpportunityStageChange.id, OpportunityStageChange.opportunity_id,
        OpportunityStageChange.stage, OpportunityStageChange.changed_at,
    ).order_by(OpportunityStageChange.id)).all()
    return opportunities, changes


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_a_file_spanning_many_batches_imports_every_row_with_its_history(
        session, world, run_import, small_batches):
    result = run_import("opportunities", csv_text(opportunity_lines(world, 300)))
    assert (result.status, result.added, result.updated, result.unchanged) == (
        "imported", 300, 0, 0), result.problems
    opportunities, changes = stored_rows(session)
    assert len(opportunities) == 300 and len(changes) == 100 * 3
    won = session.scalars(select(Opportunity).where(Opportunity.external_id == "OPP-00003")).one()
    assert (won.stage, won.amount_yuan, won.rep_id) == ("won", 3000, world["reps"][3].id)
    assert [(change.stage, change.changed_at.date()) for change in won.stage_changes] == [
        ("potential", date(2025, 1, 4)), ("intent", date(2025, 1, 31)), ("won", date(2025, 2, 28))]
    # Midnight in Beijing is 16:00 UTC the day before.
    assert won.closed_at == datetime(2025, 2, 28, 16, 0, tzinfo=UTC)
    run = session.get(ImportRun, result.run_id)
    assert (run.status, run.rows_total, run.added) == ("imported", 300, 300)


def test_importing_the_same_file_again_changes_nothing(session, world, run_import,
                                                       small_batches):
    text = csv_text(opportunity_lines(world, 200))
    assert run_import("opportunities", text).added == 200
    before = stored_rows(session)
    result = run_import("opportunities", text)
    assert (result.status, result.added, result.updated, result.unchanged) == (
        "imported", 0, 0, 200)
    # Not even rewritten: the stage changes keep their ids.
    assert stored_rows(session) == before
    run = session.get(ImportRun, result.run_id)
    assert (run.added, run.updated, run.unchanged) == (0, 0, 200)
    audit = session.scalars(select(AuditEvent).where(
        AuditEvent.target == f"import_run:{run.id}")).one()
    assert (audit.action, audit.after["added"], audit.after["updated"]) == (
        "import.imported", 0, 0)


def test_only_the_rows_that_differ_are_written(session, world, run_import, small_batches):
    lines = opportunity_lines(world, 120)
    run_import("opportunities", csv_text(lines))
    opportunities, changes = stored_rows(session)
    lines[9] = with_cell(lines[9], 3, "10500")  # OPP-00010: the amount
    lines[59] = lines[59].replace("intent:2025-02-01", "intent:2025-02-02")  # OPP-00060: history
    lines[100] = lines[100].replace(f",{world['reps'][101 % 4].username},",
                                    f",{world['reps'][0].username},")  # OPP-00101: the rep
    result = run_import("opportunities", csv_text(lines))
    assert (result.added, result.updated, result.unchanged) == (0, 3, 117), result.problems
    after, changes_after = stored_rows(session)
    differing = {row.external_id for row, old in zip(after, opportunities, strict=True)
                 if row != old}
    assert differing == {"OPP-00010", "OPP-00101"}
    by_id = {row.id: row.external_id for row in after}
    rewritten = {by_id[change.opportunity_id] for change in set(changes_after) - set(changes)}
    assert rewritten == {"OPP-00060"}
    history = session.scalars(select(Opportunity).where(
        Opportunity.external_id == "OPP-00060")).one().stage_changes
    assert [change.changed_at.date() for change in history] == [
        date(2025, 1, 4), date(2025, 2, 1), date(2025, 2, 28)]


@pytest.mark.parametrize(("bad_row", "column", "cell", "value"), [
    (290, "account", 1, "NO-SUCH-ACCOUNT"),
    (295, "amount_yuan", 3, "lots"),
    (299, "rep", 2, "nobody"),
])
def test_a_bad_row_deep_in_a_large_file_changes_nothing_and_is_named(
        session, world, run_import, small_batches, bad_row, column, cell, value):
    """The batches before the bad row were already written inside the transaction: all of it
    is rolled back, and the report names the row as Excel shows it and the column."""
    run_import("opportunities", csv_text(opportunity_lines(world, 50)))
    before = stored_rows(session)
    lines = opportunity_lines(world, 320)
    lines[bad_row - 2] = with_cell(lines[bad_row - 2], cell, value)
    result = run_import("opportunities", csv_text(lines))
    assert result.status == "refused"
    assert [(problem.row, problem.column) for problem in result.problems] == [(bad_row, column)]
    assert (result.added, result.updated, result.unchanged) == (0, 0, 0)
    assert stored_rows(session) == before
    run = session.get(ImportRun, result.run_id)
    assert (run.status, run.added, run.rows_total) == ("refused", 0, 320)
    assert run.report["problems"][0]["row"] == bad_row


def test_valid_rows_only_writes_the_good_rows_of_every_batch(session, world, run_import,
                                                             small_batches):
    lines = opportunity_lines(world, 100)
    for index in (4, 40, 90):
        lines[index] = with_cell(lines[index], 1, "NO-SUCH-ACCOUNT")
    result = run_import("opportunities", csv_text(lines), valid_rows_only=True)
    assert (result.status, result.added, result.skipped) == ("imported", 97, 3)
    assert [problem.row for problem in result.problems] == [6, 42, 92]
    reload(session)
    assert count(session, Opportunity) == 97


def test_a_second_row_with_the_same_id_in_a_later_batch_is_a_problem(
        session, world, run_import, small_batches):
    lines = opportunity_lines(world, 80)
    lines.append(lines[3])
    result = run_import("opportunities", csv_text(lines))
    assert result.status == "refused"
    assert [(problem.row, problem.column) for problem in result.problems] == [(82, "external_id")]
    reload(session)
    assert count(session, Opportunity) == 0


def test_the_snapshots_of_the_reps_an_import_touches_are_forgotten(
        session, world, run_import, small_batches, clock):
    reps = world["reps"]
    lines = [line for line in opportunity_lines(world, 40) if f",{reps[3].username}," not in line]

    def store_snapshots():
        reload(session)
        for rep in reps:
            snapshot = session.get(TrackRecordSnapshot, rep.id)
            if snapshot is None:
                session.add(TrackRecordSnapshot(rep_id=rep.id, history={"opportunities": []},
                                                refreshed_at=clock()))
            else:
                snapshot.history, snapshot.refreshed_at = {"opportunities": []}, clock()
        session.commit()

    def kept() -> set[str]:
        reload(session)
        return {snapshot.rep_id for snapshot in session.scalars(select(TrackRecordSnapshot))
                if snapshot.history is not None}

    store_snapshots()
    run_import("opportunities", csv_text(lines))
    assert kept() == {reps[3].id}
    store_snapshots()
    run_import("opportunities", csv_text(lines))  # nothing changes: every snapshot stays
    assert kept() == {rep.id for rep in reps}
    # OPP-00001 moves from rep1 to rep2: both lose their snapshots.
    lines[0] = lines[0].replace(f",{reps[1].username},", f",{reps[2].username},")
    result = run_import("opportunities", csv_text(lines))
    assert result.updated == 1
    assert kept() == {reps[0].id, reps[3].id}


def test_forecasts_import_in_bulk_and_again_change_nothing(session, world, run_import,
                                                           small_batches):
    reps = world["reps"]
    lines = [f"{rep.username},2025-{month:02d},{10_000 * month},{9_000 * month}"
             for rep in reps for month in range(1, 13)]
    text = csv_text(lines, "rep,month,forecast_yuan,actual_yuan")
    result = run_import("forecasts", text)
    assert (result.status, result.added) == ("imported", 48), result.problems
    result = run_import("forecasts", text)
    assert (result.added, result.updated, result.unchanged) == (0, 0, 48)
    lines[30] = lines[30].rsplit(",", 1)[0] + ",1"
    result = run_import("forecasts", csv_text(lines, "rep,month,forecast_yuan,actual_yuan"))
    assert (result.added, result.updated, result.unchanged) == (0, 1, 47)
    reload(session)
    changed = session.scalars(select(MonthlyForecast).where(
        MonthlyForecast.rep_id == reps[2].id, MonthlyForecast.month == date(2025, 7, 1))).one()
    assert (changed.forecast_yuan, changed.actual_yuan) == (70_000, 1)


def test_a_forecast_given_twice_in_different_batches_is_refused(session, world, run_import,
                                                                small_batches):
    rep = world["reps"][0]
    # The same rep and month, 61 rows apart, the username in another case.
    lines = [f"{rep.username},2025-01,100"] + [
        f"{world['reps'][1].username},20{year:02d}-01,100" for year in range(0, 60)]
    lines.append(f"{rep.username.upper()},2025-01,200")
    result = run_import("forecasts", csv_text(lines, "rep,month,forecast_yuan"))
    assert result.status == "refused"
    assert [(problem.row, problem.column) for problem in result.problems] == [(63, "rep + month")]
    reload(session)
    assert count(session, MonthlyForecast) == 0


def test_an_xlsx_file_streams_like_a_csv(session, world, run_import, small_batches):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER.split(","))
    for cells in csv.reader(opportunity_lines(world, 60)):
        sheet.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    data = buffer.getvalue()
    result = import_file(session, world["admin"], "opportunities", "opportunities.xlsx", data,
                         valid_rows_only=False, now=datetime(2026, 3, 2, tzinfo=UTC))
    assert (result.status, result.added) == ("imported", 60), result.problems
    result = import_file(session, world["admin"], "opportunities", "opportunities.xlsx", data,
                         valid_rows_only=False, now=datetime(2026, 3, 2, tzinfo=UTC))
    assert (result.added, result.updated, result.unchanged) == (0, 0, 60)


def test_new_accounts_first_owners_are_filed_in_groups_each_on_the_chain(
        session, world, run_import, monkeypatch):
    """The first owners of new accounts are filed a group at a time: every one is filed, in
    the file's order, on an unbroken chain, beside an existing account's transfer in the same
    file."""
    monkeypatch.setattr(imports, "FIRST_OWNERS_AT_ONCE", 7)
    reps, moved = world["reps"], world["accounts"][0]
    rows = ["external_id,name,industry,ownership_type,branch,annual_value_yuan,owner"]
    rows += [f"NEW-{n:03d},New {n},制造业,民营,{reps[0].branch.code},100000,"
             f"{reps[n % 4].username if n % 5 else ''}" for n in range(30)]
    moved_row = io.StringIO()
    csv.writer(moved_row, lineterminator="").writerow([
        moved.external_id, moved.name, moved.industry, moved.ownership_type, moved.branch.code,
        moved.annual_value_yuan, reps[3].username])
    rows.insert(12, moved_row.getvalue())
    before = session.scalar(select(func.max(Filing.seq))) or 0
    result = run_import("accounts", "\r\n".join(rows) + "\r\n")
    assert (result.status, result.added, result.updated) == ("imported", 30, 1), result.problems
    reload(session)
    filings = session.scalars(select(Filing).where(Filing.seq > before)
                              .order_by(Filing.seq)).all()
    owned = {account.external_id: account for account in session.scalars(
        select(Account).where(Account.external_id.like("NEW-%")))}
    new_ids = {account.id for account in owned.values()}
    first_loads = [filing for filing in filings if filing.account_id in new_ids]
    assert all(filing.from_rep_id is None for filing in first_loads)
    assert [filing.account_id for filing in first_loads] == [
        owned[f"NEW-{n:03d}"].id for n in range(30) if n % 5]
    assert all(owned[f"NEW-{n:03d}"].owner_id == (reps[n % 4].id if n % 5 else None)
               for n in range(30))
    assert [filing.seq for filing in filings] == list(range(before + 1, before + 1 + 25))
    assert session.get(Account, moved.id).owner_id == reps[3].id
    assert verify_ledger(session).is_intact
    again = run_import("accounts", "\r\n".join(rows) + "\r\n")
    assert (again.added, again.updated, again.unchanged) == (0, 0, 31)


# --- the row cap and bounded memory, without a database ----------------------------------------

def cap_file(rows: int) -> bytes:
    return b"external_id\r\n" + b"x\r\n" * rows


def test_the_row_cap_takes_200000_rows_and_refuses_one_more():
    assert MAX_ROWS >= 200_000
    source = FileSource("big.csv", cap_file(MAX_ROWS))
    assert (source.header, source.rows_total) == (["external_id"], MAX_ROWS)
    with pytest.raises(FileRefused, match=f"more than {MAX_ROWS:,} rows"):
        FileSource("big.csv", cap_file(MAX_ROWS + 1))


def test_a_file_over_the_cap_is_refused_before_anything_is_written(session, world, run_import):
    result = run_import("opportunities", cap_file(MAX_ROWS + 1).decode())
    assert result.status == "refused" and result.problems[0].row is None
    assert f"more than {MAX_ROWS:,} rows" in str(result.problems[0].reason)
    reload(session)
    assert count(session, Opportunity) == 0
    assert session.get(ImportRun, result.run_id).status == "refused"


def test_the_cap_counts_data_rows_not_blank_ones():
    limits = UploadLimits(max_rows=3, max_lines=20)
    data = b"external_id\r\n\r\n1\r\n2\r\n\r\n\r\n3\r\n\r\n"  # a lone unknown name is a title
    assert file_shape(numbered_records(csv_rows(data, limits), limits)).rows_total == 3
    with pytest.raises(FileRefused, match="more than 3 rows"):
        file_shape(numbered_records(csv_rows(data + b"4\r\n", limits), limits))


def test_rows_keep_the_numbers_excel_shows():
    data = "a,b\r\n\r\n1,\"two\r\nlines\"\r\n\r\n3,4\r\n".encode("gb18030")
    limits = UploadLimits()
    assert list(numbered_records(csv_rows(data, limits), limits)) == [
        (1, ["a", "b"]), (3, ["1", "two\r\nlines"]), (5, ["3", "4"])]


def test_the_problem_list_keeps_the_earliest_rows_within_its_limit():
    problems = ProblemList(UploadLimits(max_problems=10))
    for row in [*range(5_000, 2, -1), 1, 2]:
        problems.add(Problem(row, "c", "", "bad"))
    assert len(problems.kept) < 20
    problems.finish()
    assert [problem.row for problem in problems.kept] == list(range(1, 11))
    assert problems.more == 5_000 - 10


# --- accounts, a batch at a time -------------------------------------------------------------

ACCOUNTS_HEADER = "客户编号,客户名称,行业,所有制,分公司,年度金额,所属销售,决策人,接口人"


def account_lines(world, prefix: str, existing: list[Account]) -> list[str]:
    """New accounts (ids starting with `prefix`) with owners, contacts and names in either
    width, and rows for `existing` accounts (held by nobody) that name an owner."""
    reps, code = world["reps"], world["reps"][0].branch.code
    lines = [f"{prefix}{n:03d},Ｎｏ．{n} 科技有限公司,制造业,民营,{code},{n * 10_000},"
             f"{reps[n % 4].username if n % 5 else ''},赵总{n},{'' if n % 3 else f'李专员{n}'}"
             for n in range(23)]
    for offset, account in enumerate(existing):
        lines.insert(5 + offset * 9, f"{account.external_id},更名 {offset},金融,国有,{code},"
                                     f"500000,{reps[3].username},王总,")
    return lines


def account_outcome(session, ids: list[str], after_seq: int) -> list[tuple]:
    """What an import left for each of `ids`, in that order, by nothing that differs between
    two imports of the same rows: fields, keys, owner, contacts and filings. (When a first
    owner is filed beside a transfer depends on the group it waits in, so filings are compared
    account by account.)"""
    names = dict(session.execute(select(User.id, User.username)).all())
    accounts = {account.external_id: account for account in session.scalars(
        select(Account).where(Account.external_id.in_(ids)))}
    filings: dict[int, list[tuple]] = {}
    for filing in session.scalars(select(Filing).where(Filing.seq > after_seq)
                                  .order_by(Filing.seq)):
        filings.setdefault(filing.account_id, []).append((
            names.get(filing.from_rep_id), names.get(filing.to_rep_id), filing.kind,
            filing.reason, filing.rule_set_sha256 is not None))
    return [(account.name, account.name_sort_key, account.name_folded, account.industry,
             account.ownership_type, account.branch_id, account.annual_value_yuan,
             names.get(account.owner_id), account.executive_sponsor, account.sponsor_id,
             sorted((contact.role, contact.name) for contact in account.contacts),
             filings.get(account.id, []))
            for account in (accounts[external_id] for external_id in ids)]


def test_an_accounts_import_in_many_batches_equals_one_in_a_single_batch(
        session, world, run_import, monkeypatch):
    """The same rows imported in one batch and in batches of three (first owners filed in
    groups of two) leave the same accounts, keys, owners, contacts, filings and audit; both
    imported again change nothing."""
    existing = world["accounts"]
    outcomes, audits = [], []
    for prefix, batch_rows, held in (("ONE-", 10_000, existing[:2]), ("MANY-", 3, existing[2:4])):
        monkeypatch.setattr(imports.AccountImporter, "batch_rows", batch_rows)
        monkeypatch.setattr(imports, "FIRST_OWNERS_AT_ONCE", 10_000 if batch_rows > 3 else 2)
        lines = account_lines(world, prefix, held)
        text = "\r\n".join([ACCOUNTS_HEADER, *lines]) + "\r\n"
        seq = session.scalar(select(func.max(Filing.seq))) or 0
        audit = session.scalar(select(func.max(AuditEvent.id))) or 0
        result = run_import("accounts", text)
        assert (result.status, result.added, result.updated) == ("imported", 23, 2), (
            result.problems)
        reload(session)
        outcomes.append(account_outcome(session, [line.split(",")[0] for line in lines], seq))
        audits.append([(event.action, {key: value for key, value in (event.after or {}).items()
                                       if key not in ("filename", "sha256")})
                       for event in session.scalars(select(AuditEvent).where(
                           AuditEvent.id > audit).order_by(AuditEvent.id))])
        again = run_import("accounts", text)
        assert (again.status, again.added, again.updated, again.unchanged) == (
            "imported", 0, 0, 25)
    assert outcomes[0] == outcomes[1]
    assert audits[0] == audits[1] and audits[0]
    first = outcomes[1][0]
    assert (first[1], first[2]) == (name_sort_bytes("Ｎｏ．0 科技有限公司"),
                                    width_folded("Ｎｏ．0 科技有限公司"))
    assert verify_ledger(session).is_intact


def test_a_bad_row_in_a_later_batch_leaves_every_batch_unwritten(session, world, run_import,
                                                                 monkeypatch):
    monkeypatch.setattr(imports.AccountImporter, "batch_rows", 3)
    lines = account_lines(world, "NEW-", world["accounts"][:2])
    lines[-2] = lines[-2].replace(world["reps"][1].username, "nobody")
    assert "nobody" in lines[-2]
    before = {model: count(session, model) for model in (Account, Contact, Filing, AuditEvent)}
    result = run_import("accounts", "\r\n".join([ACCOUNTS_HEADER, *lines]) + "\r\n")
    assert (result.status, result.added, result.updated) == ("refused", 0, 0)
    assert [(problem.row, problem.column) for problem in result.problems] == [
        (len(lines), "owner")]
    reload(session)
    assert {model: count(session, model) for model in before} == {
        **before, AuditEvent: before[AuditEvent] + 1}  # the refusal's own
    assert all(session.get(Account, account.id).owner_id is None
               for account in world["accounts"][:2])


def test_every_account_a_file_names_is_locked_before_any_rep(session, world, run_import,
                                                            monkeypatch):
    """Accounts, then reps, as every ownership change locks: an account in a later batch is
    locked before the first batch locks its reps, or a transfer holding it and waiting for
    one of those reps would wait in a circle with the import."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite's write transaction excludes writers")
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    monkeypatch.setattr(imports.AccountImporter, "batch_rows", 3)
    later = world["accounts"][1]
    lines = account_lines(world, "NEW-", [world["accounts"][0], later])
    assert [line.split(",")[0] for line in lines].index(later.external_id) > 3
    locked_at_first_rep_lock: list[bool] = []

    def locked_elsewhere(account_id: int) -> bool:
        with session.get_bind().engine.connect() as other:
            try:
                other.execute(text("SELECT id FROM accounts WHERE id = :id FOR UPDATE NOWAIT"),
                              {"id": account_id})
            except OperationalError:
                return True
            finally:
                other.rollback()
        return False

    lock_reps = imports.lock_reps

    def spying(session_, rep_ids):
        if not locked_at_first_rep_lock:
            locked_at_first_rep_lock.append(locked_elsewhere(later.id))
        return lock_reps(session_, rep_ids)

    monkeypatch.setattr(imports, "lock_reps", spying)
    result = run_import("accounts", "\r\n".join([ACCOUNTS_HEADER, *lines]) + "\r\n")
    assert (result.status, result.added, result.updated) == ("imported", 23, 2), result.problems
    assert locked_at_first_rep_lock == [True]
