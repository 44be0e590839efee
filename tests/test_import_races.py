"""An import that loses a race: the database ends its transaction because of another one at
the same moment (a deadlock with a transfer that locks the same reps in another order, or
SQLite's writer lock waited for in vain). Nothing of it was saved, so it runs again from the
start; after IMPORT_ATTEMPTS it is refused as a Conflict, never a traceback."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bidhub.domain.errors import Conflict
from bidhub.models import Account, Filing, ImportRun
from bidhub.services import imports
from bidhub.services.imports import IMPORT_ATTEMPTS, import_file
from bidhub.services.ledger import verify_ledger
from tests.conftest import reload

HEADER = "客户编号,客户名称,行业,所有制,分公司,年度金额,所属销售"


class Deadlock(Exception):
    sqlstate = "40P01"


@pytest.fixture
def world(make_branch, make_rep, make_account, make_admin):
    branch = make_branch()
    giver, taker = make_rep(branch=branch), make_rep(branch=branch)
    moved = make_account(branch=branch, owner=giver)
    return {"branch": branch, "giver": giver, "taker": taker, "moved": moved,
            "admin": make_admin()}


def accounts_file(world) -> bytes:
    """Three new accounts for `taker`, and `moved` from `giver` to `taker`."""
    code, taker, moved = world["branch"].code, world["taker"].username, world["moved"]
    rows = [HEADER.split(","),
            *([f"KA-RACE-{n}", f"新客户{n}", "制造", "民营", code, "100000", taker]
              for n in range(3)),
            [moved.external_id, moved.name, "制造", "民营", code, "100000", taker]]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def losing(monkeypatch, times: int) -> list[int]:
    """Make the first `times` imports lose their race after doing all their work (so that
    the rollback, not a missing write, keeps it out); the calls are counted."""
    calls: list[int] = []
    apply_rows = imports._apply_rows

    def racing(*args, **kwargs):
        result = apply_rows(*args, **kwargs)
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError("SELECT users.id FROM users FOR UPDATE", {},
                                   Deadlock("deadlock detected"))
        return result

    monkeypatch.setattr(imports, "_apply_rows", racing)
    return calls


def state(session, world) -> tuple:
    reload(session)
    return (session.scalar(select(func.count()).select_from(Account)),
            session.scalar(select(func.count()).select_from(Filing)),
            session.scalar(select(func.count()).select_from(ImportRun)),
            session.get(Account, world["moved"].id).owner_id)


def test_an_import_that_loses_a_race_runs_again_and_is_saved_once(session, world, clock,
                                                                  monkeypatch):
    accounts, filings, runs, _owner = state(session, world)
    calls = losing(monkeypatch, IMPORT_ATTEMPTS - 1)
    result = import_file(session, world["admin"], "accounts", "accounts.csv",
                         accounts_file(world), valid_rows_only=False, now=clock())
    assert (result.status, result.added, result.updated) == ("imported", 3, 1), result.problems
    assert len(calls) == IMPORT_ATTEMPTS
    # One import's worth: three accounts, a filing for each account given its owner (the three
    # new ones and the one moved), one recorded run.
    assert state(session, world) == (accounts + 3, filings + 4, runs + 1, world["taker"].id)
    assert verify_ledger(session).is_intact


def test_an_import_that_keeps_losing_is_refused_and_changes_nothing(session, world, clock,
                                                                   monkeypatch):
    before = state(session, world)
    losing(monkeypatch, IMPORT_ATTEMPTS)
    with pytest.raises(Conflict, match="nothing was imported"):
        import_file(session, world["admin"], "accounts", "accounts.csv", accounts_file(world),
                    valid_rows_only=False, now=clock())
    assert state(session, world) == before


def test_another_database_error_is_not_taken_for_a_lost_race(session, world, clock, monkeypatch):
    calls: list[int] = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise OperationalError("SELECT 1", {}, Exception("disk I/O error"))

    monkeypatch.setattr(imports, "_apply_rows", broken)
    with pytest.raises(OperationalError):
        import_file(session, world["admin"], "accounts", "accounts.csv", accounts_file(world),
                    valid_rows_only=False, now=clock())
    assert len(calls) == 1


def test_the_command_line_says_so_without_a_traceback(app, session, world, monkeypatch,
                                                      tmp_path):
    before = state(session, world)
    losing(monkeypatch, IMPORT_ATTEMPTS)
    path = tmp_path / "accounts.csv"
    path.write_bytes(accounts_file(world))
    result = app.test_cli_runner().invoke(args=["import", "accounts", str(path), "--by",
                                                world["admin"].username])
    assert result.exit_code == 1
    assert result.output == (
        "accounts.csv: Other changes to the same accounts or reps were being saved at the same "
        f"moment, and the import was stopped {IMPORT_ATTEMPTS} times to let them through; "
        "nothing was imported. Import the file again.\n")
    assert state(session, world) == before


def test_the_upload_page_says_so_in_chinese(session, world, monkeypatch, login_as):
    before = state(session, world)
    losing(monkeypatch, IMPORT_ATTEMPTS)
    client = login_as(world["admin"])
    response = client.post("/admin/imports/", data={
        "kind": "accounts", "file": (io.BytesIO(accounts_file(world)), "accounts.csv")},
        content_type="multipart/form-data", headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 409
    assert "同一批客户或销售的其他变更正在同时保存" in response.get_data(as_text=True)
    assert state(session, world) == before



def test_the_progress_page_says_so_in_chinese(app, session, world, monkeypatch, login_as):
    """A large upload is imported behind a progress page: the refusal ends that page."""
    before = state(session, world)
    losing(monkeypatch, IMPORT_ATTEMPTS)
    monkeypatch.setitem(app.config, "IMPORT_PROGRESS_MIN_BYTES", 1)
    client = login_as(world["admin"])
    response = client.post("/admin/imports/", data={
        "kind": "accounts", "file": (io.BytesIO(accounts_file(world)), "accounts.csv")},
        content_type="multipart/form-data", headers={"Accept-Language": "zh-CN"})
    page = response.get_data(as_text=True)
    assert "同一批客户或销售的其他变更正在同时保存" in page
    assert "The error was logged" not in page and "错误已记录" not in page
    assert state(session, world) == before

def test_an_import_deadlocked_with_a_transfers_locks_is_run_again(app, session, backend,
                                                                  world, clock, monkeypatch):
    """The race as it happens on PostgreSQL: the import's first batch locks the rep it names
    (taker); a transfer from giver to taker locks giver, as every ownership change locks reps
    in id order; the import's next batch moves an account of giver's, so it waits for giver
    while the transfer waits for taker. The database ends the import (it waited first), and
    the import runs again once the transfer is through."""
    import threading

    from sqlalchemy import text

    from bidhub.db import engine_of

    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: its transactions never wait in a circle")
    giver, taker = world["giver"], world["taker"]
    assert giver.id < taker.id
    monkeypatch.setattr(imports.AccountImporter, "batch_rows", 3)  # the move is in batch 2
    second_batch, giver_held = threading.Event(), threading.Event()
    prepared: list[int] = []
    prepare = imports.AccountImporter.prepare

    def in_step(importer, rows):
        prepared.append(len(rows))
        if len(prepared) == 2:  # batch 1 holds taker; let the transfer take giver first
            second_batch.set()
            assert giver_held.wait(10)
        return prepare(importer, rows)

    monkeypatch.setattr(imports.AccountImporter, "prepare", in_step)
    failures: list[BaseException] = []

    def transfer_locks() -> None:
        try:
            assert second_batch.wait(10)
            with engine_of(app).connect() as connection:
                connection.execute(text("SELECT id FROM users WHERE id = :id FOR UPDATE"),
                                   {"id": giver.id})
                giver_held.set()
                threading.Event().wait(0.3)  # the import now waits for giver
                connection.execute(text("SELECT id FROM users WHERE id = :id FOR UPDATE"),
                                   {"id": taker.id})
                connection.commit()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            failures.append(error)
            giver_held.set()

    transfer = threading.Thread(target=transfer_locks)
    transfer.start()
    result = import_file(session, world["admin"], "accounts", "accounts.csv",
                         accounts_file(world), valid_rows_only=False, now=clock())
    transfer.join(20)
    assert failures == []
    assert (result.status, result.added, result.updated) == ("imported", 3, 1)
    assert len(prepared) > 2  # the first attempt was ended and the import ran again
    reload(session)
    assert session.get(Account, world["moved"].id).owner_id == taker.id
    assert verify_ledger(session).is_intact


def test_inside_a_callers_unit_of_work_the_lost_race_is_the_callers(session, world, clock,
                                                                    monkeypatch):
    """Its rollback took the caller's work too: running the import alone again would let the
    caller go on as if that work were there."""
    from bidhub.db import unit_of_work

    calls = losing(monkeypatch, 1)
    with pytest.raises(OperationalError), unit_of_work(session):
        import_file(session, world["admin"], "accounts", "accounts.csv", accounts_file(world),
                    valid_rows_only=False, now=clock())
    assert len(calls) == 1
