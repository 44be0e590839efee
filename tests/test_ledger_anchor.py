"""verify-ledger catches tampering done behind the app's back, at the right filing number."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from bidhub.db import engine_of
from bidhub.domain.ledger import HASHED_FIELDS, filing_hash
from bidhub.models import Filing
from bidhub.services.filings import transfer_account
from bidhub.services.ledger import verify_ledger
from tests.conftest import reload

FILINGS = 16


@pytest.fixture
def register(app, session, clock, make_rep, make_manager, make_account):
    """A register of FILINGS filings: first owners, then direct transfers."""
    manager, receiver = make_manager(), make_rep()
    accounts = [make_account(owner=make_rep()) for _ in range(FILINGS // 2)]
    for account in accounts:
        clock.advance(minutes=5)
        transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                         reason="Owner moves to another region.",
                         review_text="Handover planned with the client.", now=clock())
    reload(session)
    assert session.scalar(select(Filing.seq).order_by(Filing.seq.desc())) == FILINGS
    report = verify_ledger(session)
    assert report.is_intact and report.checkpoints == FILINGS
    return accounts


def tamper(app, backend, *statements, params=None):
    """Run SQL with the register's append-only triggers out of the way, as an intruder would."""
    with engine_of(app).begin() as connection:
        if backend == "postgresql":
            connection.execute(text("ALTER TABLE filings DISABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER IF EXISTS filings_refuse_update"))
            connection.execute(text("DROP TRIGGER IF EXISTS filings_refuse_delete"))
        for statement in statements:
            connection.execute(text(statement), params or {})
        if backend == "postgresql":
            connection.execute(text("ALTER TABLE filings ENABLE TRIGGER USER"))


def first_problem_seq(session) -> int | None:
    reload(session)
    report = verify_ledger(session)
    assert not report.is_intact
    return report.first_problem.seq


def test_an_edited_field_is_found(app, session, backend, register):
    tamper(app, backend, "UPDATE filings SET reason = 'quietly edited' WHERE seq = 7")
    assert first_problem_seq(session) == 7


def test_a_deleted_middle_filing_is_found(app, session, backend, register):
    tamper(app, backend, "DELETE FROM filings WHERE seq = 5")
    assert first_problem_seq(session) == 5


def test_a_deleted_last_filing_is_found(app, session, backend, register):
    tamper(app, backend, f"DELETE FROM filings WHERE seq = {FILINGS}",
           f"UPDATE accounts SET owner_id = (SELECT from_rep_id FROM filings WHERE seq = "
           f"{FILINGS}) WHERE id = (SELECT account_id FROM filings WHERE seq = {FILINGS})")
    assert first_problem_seq(session) == FILINGS


def test_ten_deleted_last_filings_are_found(app, session, backend, register):
    tamper(app, backend, f"DELETE FROM filings WHERE seq > {FILINGS - 10}")
    assert first_problem_seq(session) == FILINGS - 9


def test_all_deleted_filings_are_found(app, session, backend, register):
    tamper(app, backend, "DELETE FROM filings", "UPDATE accounts SET owner_id = NULL")
    assert first_problem_seq(session) == 1


def test_a_forged_rehashed_chain_is_found_where_it_starts(app, session, backend, register):
    rows = [dict(row) for row in session.execute(
        select(*[getattr(Filing, name) for name in HASHED_FIELDS], Filing.hash)
        .order_by(Filing.seq)).mappings()]
    forged_from = 9
    previous = rows[forged_from - 2]["hash"]
    updates = []
    for row in rows[forged_from - 1:]:
        if row["seq"] == forged_from:
            row["reason"] = "A different story"
        row["prev_hash"] = previous
        row["hash"] = filing_hash(row)
        previous = row["hash"]
        updates.append(row)
    with engine_of(app).begin() as connection:
        if backend == "postgresql":
            connection.execute(text("ALTER TABLE filings DISABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER IF EXISTS filings_refuse_update"))
        # Hashes are unique: clear the tail's first, then write the forged chain.
        connection.execute(text("UPDATE filings SET hash = 'x' || seq WHERE seq >= :seq"),
                           {"seq": forged_from})
        for row in updates:
            connection.execute(text("UPDATE filings SET reason = :reason, prev_hash = "
                                    ":prev_hash, hash = :hash WHERE seq = :seq"), row)
        if backend == "postgresql":
            connection.execute(text("ALTER TABLE filings ENABLE TRIGGER USER"))
    reload(session)
    report = verify_ledger(session)
    # The chain alone looks fine; the checkpoints kept outside the database do not.
    assert report.first_problem.seq == forged_from


def test_a_direct_owner_change_is_found(app, session, backend, register, make_rep):
    intruder = make_rep()
    account = register[3]
    last = session.scalar(select(Filing.seq).where(Filing.account_id == account.id)
                          .order_by(Filing.seq.desc()))
    with engine_of(app).begin() as connection:
        connection.execute(text("UPDATE accounts SET owner_id = :rep WHERE id = :account"),
                           {"rep": intruder.id, "account": account.id})
    reload(session)
    report = verify_ledger(session)
    assert report.first_problem.seq == last
    assert f"account {account.id}" in report.first_problem.problem


def test_a_forged_checkpoint_line_is_found(app, session, register):
    path = app.config["LEDGER_CHECKPOINT_FILE"]
    with open(path, "a") as checkpoints:
        checkpoints.write(json.dumps({"seq": FILINGS + 1, "hash": "f" * 64, "mac": "0" * 64})
                          + "\n")
    report = verify_ledger(session)
    assert any("wrong HMAC" in problem.problem for problem in report.problems)


def test_the_command_names_the_first_broken_filing(app, session, backend, register):
    tamper(app, backend, f"DELETE FROM filings WHERE seq > {FILINGS - 3}")
    result = app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 1
    assert f"Ledger broken at filing {FILINGS - 2}" in result.output


def test_the_command_reports_an_intact_register(app, register):
    result = app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 0, result.output
    assert f"{FILINGS} filings, {FILINGS} checkpoints" in result.output


def test_the_register_page_and_its_export_show_the_head_to_keep(app, session, register,
                                                                 make_manager, login_as):
    client = login_as(make_manager())
    head = session.scalars(select(Filing).order_by(Filing.seq.desc())).first()
    page = client.get("/manage/filings").get_data(as_text=True)
    assert f"No. {FILINGS}, hash {head.hash}" in page and "Checkpointed outside" in page
    export = client.get("/manage/filings.csv").get_data(as_text=True)
    last_line = export.strip().splitlines()[-1]
    assert last_line.startswith(f"Register head,{FILINGS},{head.hash},")


def test_an_earlier_registers_checkpoints_are_set_aside_not_deleted(tmp_path, clock):
    from bidhub.services.ledger import CheckpointStore, set_aside_checkpoints

    store = CheckpointStore(tmp_path / "checkpoints.jsonl", b"key")
    assert set_aside_checkpoints(store, clock()) is None
    store.append([(1, "a" * 64)], clock())
    kept = set_aside_checkpoints(store, clock())
    assert kept is not None and not store.path.exists()
    assert '"seq":1' in kept.read_text()


def test_the_head_is_read_from_the_end_of_a_long_checkpoint_file(tmp_path, clock):
    from bidhub.services.ledger import CheckpointStore

    store = CheckpointStore(tmp_path / "checkpoints.jsonl", b"key")
    store.append([(seq, f"{seq:064x}") for seq in range(1, 3001)], clock())
    assert store.path.stat().st_size > CheckpointStore.HEAD_WINDOW_BYTES
    head = store.head()
    assert (head.seq, head.hash) == (3000, f"{3000:064x}")
    newest = max(store.read()[0], key=lambda checkpoint: checkpoint.seq)
    assert head.mac == newest.mac
