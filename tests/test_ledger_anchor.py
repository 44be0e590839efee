"""verify-ledger catches tampering done behind the app's back, at the right filing number."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from bidhub.db import engine_of
from bidhub.domain.ledger import HASHED_FIELDS, checkpoint_mac, filing_hash
from bidhub.models import Account, Filing, Role, User
from bidhub.services.filings import transfer_account
from bidhub.services.ledger import REGISTER_ID, CheckpointStore, verify_ledger
from tests.conftest import client_of, reload

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


def register_head_line(app, session) -> str:
    """The register page's line about its head, as a manager reads it in Chinese."""
    manager = session.scalars(select(User).where(User.role == Role.KA_MANAGER)).first()
    page = client_of(app, manager).get("/manage/filings", headers={
        "Accept-Language": "zh-CN"}).get_data(as_text=True)
    return page[page.index('class="ledger-head"'):page.index("</p>", page.index(
        'class="ledger-head"'))]


def test_the_register_page_says_filings_were_deleted_when_the_checkpoints_run_ahead(
        app, session, backend, register, make_manager):
    """Deleted behind the app's back, the newest filings still have their checkpoints: the
    page says filings up to the checkpoints' newest were deleted, not that the newest filing
    has no checkpoint (it has one); a rewritten newest filing is said as rewritten."""
    make_manager()
    tamper(app, backend, f"UPDATE filings SET reason = 'quietly edited', hash = '{'f' * 64}' "
                         f"WHERE seq = {FILINGS}")
    reload(session)
    line = register_head_line(app, session)
    assert "该备案被改写了" in line and "有备案被删除了" not in line
    tamper(app, backend, f"DELETE FROM filings WHERE seq > {FILINGS - 3}")
    reload(session)
    line = register_head_line(app, session)
    assert f"记录的备案一直到第 {FILINGS} 号" in line and "有备案被删除了" in line
    assert "没有校验点" not in line


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
    account_owner = account.owner
    with engine_of(app).begin() as connection:
        connection.execute(text("UPDATE accounts SET owner_id = :rep WHERE id = :account"),
                           {"rep": intruder.id, "account": account.id})
    reload(session)
    report = verify_ledger(session)
    assert report.first_problem.seq == last
    # Named, not by ids: the account by its number and name, the reps by name and username.
    assert str(report.first_problem.problem) == (
        f"account {account.external_id} {account.name} is held by {intruder.display_name} "
        f"({intruder.username}) in the database, but its filings give it to "
        f"{account_owner.display_name} ({account_owner.username}): its holder was changed "
        f"without a filing")


def test_two_filings_swapped_behind_the_apps_back_are_found_at_the_first(app, session,
                                                                        backend, register):
    """Reordering the register: filings 6 and 9 trade places (their numbers), hashes and all."""
    tamper(app, backend, "UPDATE filings SET seq = -6 WHERE seq = 6",
           "UPDATE filings SET seq = 6 WHERE seq = 9", "UPDATE filings SET seq = 9 WHERE seq = -6")
    reload(session)
    report = verify_ledger(session)
    assert report.first_problem.seq == 6
    result = app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 1 and "Ledger broken at filing 6:" in result.output


def test_a_filing_that_moves_an_account_nobody_moved_is_found(app, session, register, make_rep,
                                                             make_manager, clock):
    """Written beside the one change of owner (ownership.change_owners): the owner is left as it
    is, but the filing says the account came from someone else. Chain, checkpoints and today's
    owners all agree with it; the filings before it do not."""
    from bidhub.services.ownership import append_filings

    account = session.get(Account, register[3].id)
    stranger = make_rep()
    [filing] = append_filings(session, [{
        "kind": "direct_transfer", "account_id": account.id, "from_rep_id": stranger.id,
        "to_rep_id": account.owner_id, "branch_id": account.branch_id,
        "reason": "Owner moves to another region.", "decided_by_id": make_manager().id}],
        now=clock())
    session.commit()
    reload(session)
    report = verify_ledger(session)
    assert not report.is_intact
    assert report.first_problem.seq == filing.seq
    assert (f"filing {filing.seq} moves account {account.id} from rep {stranger.id}, but the "
            f"filings before it leave it with rep {account.owner_id}") in \
        report.first_problem.problem
    result = app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 1 and f"Ledger broken at filing {filing.seq}:" in result.output


def test_a_forged_filing_added_after_the_last_checkpoint_is_found(app, session, backend,
                                                                  register, make_rep):
    """The register refuses changes, not additions: an intruder appends a filing that moves an
    account to someone, hashed onto the chain, and moves the owner to match. Chain, owners and
    history agree with it; no checkpoint does."""
    intruder = make_rep()
    account = session.get(Account, register[2].id)
    last = session.execute(select(*[getattr(Filing, name) for name in HASHED_FIELDS],
                                  Filing.hash).order_by(Filing.seq.desc()).limit(1)).mappings().one()
    forged = {**last, "seq": FILINGS + 1, "prev_hash": last["hash"], "account_id": account.id,
              "from_rep_id": account.owner_id, "to_rep_id": intruder.id,
              "reason": "Owner moves to another region."}
    forged["hash"] = filing_hash(forged)
    with engine_of(app).begin() as connection:
        connection.execute(text(f"INSERT INTO filings ({', '.join(forged)}) VALUES "
                                f"({', '.join(':' + name for name in forged)})"), forged)
        connection.execute(text("UPDATE accounts SET owner_id = :rep WHERE id = :account"),
                           {"rep": intruder.id, "account": account.id})
    reload(session)
    report = verify_ledger(session)
    assert report.first_problem.seq == FILINGS + 1
    assert f"filing {FILINGS + 1} has no checkpoint outside the database" in \
        report.first_problem.problem
    result = app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 1 and f"Ledger broken at filing {FILINGS + 1}:" in result.output


def test_filings_whose_checkpoints_could_not_be_written_are_reported(
        app, session, monkeypatch, clock, register, make_rep, make_manager, make_account):
    """The filings are committed, the checkpoint file cannot be written: the log says so, and
    verify-ledger names the filings left without checkpoints, here in the middle of the chain."""
    store = app.extensions["bidhub_ledger_anchor"]
    manager, receiver = make_manager(), make_rep()
    accounts = [make_account(owner=make_rep()) for _ in range(3)]
    first_new = session.scalar(select(Filing.seq).order_by(Filing.seq.desc())) + 1

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(store, "append", full_disk)
        for account in accounts[:2]:
            transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                             reason="Owner moves to another region.",
                             review_text="Handover planned with the client.", now=clock())
    transfer_account(session, manager, account_id=accounts[2].id, to_rep_id=receiver.id,
                     reason="Owner moves to another region.",
                     review_text="Handover planned with the client.", now=clock())
    reload(session)
    report = verify_ledger(session)
    assert report.first_problem.seq == first_new
    assert (f"filings {first_new} to {first_new + 1} have no checkpoint outside the database"
            in report.first_problem.problem)


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


def test_checkpoints_that_name_their_register_stay_in_place_for_a_new_one(tmp_path, clock):
    """Another database's anchor is not moved away: a new register reads only its own lines."""
    from bidhub.services.ledger import set_aside_checkpoints

    store = CheckpointStore(tmp_path / "checkpoints.jsonl", b"key")
    store.append([(1, "a" * 64)], clock(), register="the real database")
    assert set_aside_checkpoints(store, clock()) is None
    assert '"register":"the real database"' in store.path.read_text()


def test_the_head_is_read_from_the_end_of_a_long_checkpoint_file(tmp_path, clock):
    from bidhub.services.ledger import CheckpointStore

    store = CheckpointStore(tmp_path / "checkpoints.jsonl", b"key")
    store.append([(seq, f"{seq:064x}") for seq in range(1, 3001)], clock())
    assert store.path.stat().st_size > CheckpointStore.HEAD_WINDOW_BYTES
    head = store.head()
    assert (head.seq, head.hash) == (3000, f"{3000:064x}")
    newest = max(store.read()[0], key=lambda checkpoint: checkpoint.seq)
    assert head.mac == newest.mac


def another_databases_checkpoints(app, count: int) -> None:
    """Lines another database's filings leave in a checkpoint file it shares with this one (a
    demo and a real database made in the same folder): the same key, another register."""
    store = CheckpointStore(app.config["LEDGER_CHECKPOINT_FILE"],
                            app.extensions["bidhub_ledger_anchor"].key)
    store.append([(seq, f"{seq:064x}") for seq in range(1, count + 1)],
                 datetime.now(UTC), register="another database")


def test_each_checkpoint_line_names_its_databases_register(app, session, register):
    own = session.scalar(REGISTER_ID)
    with open(app.config["LEDGER_CHECKPOINT_FILE"]) as lines:
        assert {json.loads(line)["register"] for line in lines} == {own}


def test_databases_sharing_a_checkpoint_file_are_each_checked_against_their_own_lines(
        app, session, register, make_manager, login_as):
    another_databases_checkpoints(app, 3_000)  # more than the page's head window
    reload(session)
    report = verify_ledger(session)
    assert report.is_intact, report.problems
    assert report.checkpoints == FILINGS
    result = app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 0 and f"{FILINGS} filings, {FILINGS} checkpoints" in result.output
    page = login_as(make_manager()).get("/manage/filings").get_data(as_text=True)
    assert f"No. {FILINGS}, hash" in page and "Checkpointed outside" in page


def test_tampering_is_still_found_beside_another_databases_checkpoints(app, session, backend,
                                                                       register):
    another_databases_checkpoints(app, 40)
    tamper(app, backend, f"DELETE FROM filings WHERE seq > {FILINGS - 2}")
    assert first_problem_seq(session) == FILINGS - 1


def test_a_register_given_another_id_is_found(app, session, register):
    """Whoever rewrites the whole chain cannot escape its checkpoints by renaming the
    register: a register with filings and no line of its own is unanchored."""
    another_databases_checkpoints(app, 5)
    with engine_of(app).begin() as connection:
        connection.execute(text("UPDATE instance_markers SET value = 'forged' "
                                "WHERE name = 'ledger_register'"))
    reload(session)
    report = verify_ledger(session)
    assert report.first_problem.seq == 1
    assert "no checkpoint is kept for this database's register (forged)" in \
        report.first_problem.problem


def test_a_line_moved_to_another_register_has_a_wrong_hmac(app, session, register):
    path = app.config["LEDGER_CHECKPOINT_FILE"]
    with open(path) as lines:
        records = [json.loads(line) for line in lines]
    records[-1]["register"] = "another database"
    with open(path, "w") as lines:
        lines.writelines(json.dumps(record) + "\n" for record in records)
    reload(session)
    report = verify_ledger(session)
    assert any("wrong HMAC" in problem.problem for problem in report.problems)


def test_lines_written_before_registers_had_ids_count_for_the_register(app, session, backend,
                                                                       register):
    path = app.config["LEDGER_CHECKPOINT_FILE"]
    key = app.extensions["bidhub_ledger_anchor"].key
    with open(path) as lines:
        records = [json.loads(line) for line in lines]
    with open(path, "w") as lines:
        for record in records:
            del record["register"]
            record["mac"] = checkpoint_mac(key, record["seq"], record["hash"])
            lines.write(json.dumps(record) + "\n")
    reload(session)
    report = verify_ledger(session)
    assert report.is_intact and report.checkpoints == FILINGS
    tamper(app, backend, f"DELETE FROM filings WHERE seq = {FILINGS}")
    assert first_problem_seq(session) == FILINGS


def written_by_the_older_version(app, *, another_database: int = 0) -> None:
    """Rewrite the checkpoint file as the version before registers had ids wrote it: no
    register on any line, the HMAC over the number and hash alone. With `another_database`,
    the file was shared (a demo built first in the same folder, as the README suggested): that
    database's filings 1, 2, 3... come first, unlabelled like this one's."""
    path = app.config["LEDGER_CHECKPOINT_FILE"]
    key = app.extensions["bidhub_ledger_anchor"].key
    with open(path) as lines:
        records = [json.loads(line) for line in lines]
    demo = [{"seq": seq, "hash": f"{seq:064x}", "at": records[0]["at"]}
            for seq in range(1, another_database + 1)]
    with open(path, "w") as lines:
        for record in demo + records:
            record.pop("register", None)
            record["mac"] = checkpoint_mac(key, record["seq"], record["hash"])
            lines.write(json.dumps(record, separators=(",", ":")) + "\n")


@pytest.mark.parametrize("another_database", [FILINGS // 2, FILINGS * 3])
def test_a_file_the_older_version_shared_between_databases_raises_no_false_alarm(
        app, session, register, another_database):
    """Before lines named their register, two databases made in one folder wrote unlabelled
    lines into one file; each database's filings are checked against its own run of them."""
    written_by_the_older_version(app, another_database=another_database)
    reload(session)
    report = verify_ledger(session)
    assert report.is_intact, [str(problem.problem) for problem in report.problems]
    assert report.checkpoints == FILINGS
    result = app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("deleted", [1, 3])
def test_a_deleted_tail_is_still_found_in_a_file_the_older_version_shared(app, session, backend,
                                                                          register, deleted):
    written_by_the_older_version(app, another_database=FILINGS * 3)
    tamper(app, backend, f"DELETE FROM filings WHERE seq > {FILINGS - deleted}")
    assert first_problem_seq(session) == FILINGS - deleted + 1


def test_a_rewritten_chain_is_still_found_in_a_file_the_older_version_shared(app, session,
                                                                             backend, register):
    written_by_the_older_version(app, another_database=FILINGS * 3)
    tamper(app, backend, "UPDATE filings SET reason = 'quietly edited' WHERE seq = 5")
    assert first_problem_seq(session) == 5


def test_a_wiped_register_is_not_called_intact_beside_a_file_the_older_version_shared(
        app, session, backend, register):
    written_by_the_older_version(app, another_database=FILINGS * 3)
    tamper(app, backend, "DELETE FROM filings")
    reload(session)
    report = verify_ledger(session)
    assert not report.is_intact
    assert "written by an older version" in str(report.first_problem.problem)


def own_line(app, seq: int, filing_hash: str) -> dict:
    """This database's checkpoint line of filing `seq` (recording `filing_hash`)."""
    with open(app.config["LEDGER_CHECKPOINT_FILE"]) as lines:
        [found] = [record for record in map(json.loads, lines)
                   if (record["seq"], record["hash"]) == (seq, filing_hash)]
    return found


@pytest.mark.parametrize("filed_since", [False, True])
def test_the_register_head_is_this_databases_checkpoint_in_a_file_the_older_version_shared(
        app, session, clock, register, make_manager, make_rep, login_as, filed_since):
    """The other database's unlabelled lines go further (up to 48) than this one's (16): the
    head names this database's own line, as verify-ledger reads them, whether its newest line
    is one of the older version's or one written since, naming the register."""
    written_by_the_older_version(app, another_database=FILINGS * 3)
    manager = make_manager()
    if filed_since:
        clock.advance(minutes=5)
        transfer_account(session, manager, account_id=register[0].id, to_rep_id=make_rep().id,
                         reason="Owner moves to another region.",
                         review_text="Handover planned with the client.", now=clock())
    reload(session)
    assert verify_ledger(session).is_intact
    newest = session.scalars(select(Filing).order_by(Filing.seq.desc())).first()
    assert newest.seq == FILINGS + filed_since
    mac = own_line(app, newest.seq, newest.hash)["mac"]
    client = login_as(manager)
    page = client.get("/manage/filings").get_data(as_text=True)
    assert f"No. {newest.seq}, hash {newest.hash}" in page
    assert "Checkpointed outside" in page and mac[:16] in page
    assert "no checkpoint" not in page
    export = client.get("/manage/filings.csv").get_data(as_text=True)
    assert export.strip().splitlines()[-1] == f"Register head,{newest.seq},{newest.hash},{mac}"


def test_the_register_head_says_plainly_when_no_line_is_this_databases(
        app, session, register, make_manager, login_as):
    """A file the older version shared holds only other databases' runs (this database's lines
    are gone): the head names no checkpoint of theirs and says none is recorded for it."""
    path = app.config["LEDGER_CHECKPOINT_FILE"]
    key = app.extensions["bidhub_ledger_anchor"].key
    with open(path, "w") as lines:
        for run, count in ((1, FILINGS * 3), (2, FILINGS + 4)):
            for seq in range(1, count + 1):
                hashed = f"{run:02x}{seq:062x}"
                lines.write(json.dumps({"seq": seq, "hash": hashed,
                                        "mac": checkpoint_mac(key, seq, hashed)}) + "\n")
    reload(session)
    report = verify_ledger(session)
    assert "no checkpoint is kept for this database's register" in str(report.first_problem.problem)
    client = login_as(make_manager())
    for language, words in (
            ("en", "No checkpoint outside the database is recorded for this database's register; "
                   "run <code>bidhub verify-ledger</code>."),
            ("zh-CN", "数据库之外没有记录本数据库登记簿的校验点，请运行 <code>bidhub verify-ledger</code>。")):
        page = client.get("/manage/filings", headers={"Accept-Language": language}
                          ).get_data(as_text=True)
        assert words in page  # the command set as code, not between backticks
        assert "`" not in page and "Checkpointed outside" not in page
    export = client.get("/manage/filings.csv").get_data(as_text=True)
    assert export.strip().splitlines()[-1].endswith(",not anchored")


@pytest.mark.parametrize("statement", [
    "UPDATE filings SET decided_at = 'yesterday' WHERE seq = 7",
    "UPDATE filings SET appeals = 'not a JSON document' WHERE seq = 7",
    "UPDATE filings SET reason = CAST(reason AS BLOB) WHERE seq = 7",
])
def test_a_value_no_filing_is_written_with_is_found_at_its_filing(app, session, backend,
                                                                  register, statement):
    """SQLite keeps whatever a column is given: a filing that cannot be read as filed is
    reported at its number, not a traceback that names none."""
    if backend == "postgresql":
        pytest.skip("PostgreSQL refuses a value of another type in a column")
    tamper(app, backend, statement)
    assert first_problem_seq(session) == 7
    result = app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 1
    assert "Ledger broken at filing 7: content does not match its hash" in result.output


def test_the_register_page_says_so_when_every_filing_was_deleted(app, session, backend,
                                                                 register, make_manager,
                                                                 login_as):
    """With filings left, a deleted tail shows as a head without its checkpoint; with none
    left, the page must not look like a new register's."""
    tamper(app, backend, "DELETE FROM filings")
    page = login_as(make_manager()).get("/manage/filings").get_data(as_text=True)
    assert (f"The database holds no filings, but the checkpoints kept outside it record "
            f"filings up to No. {FILINGS}") in html.unescape(page)


def test_a_manager_checks_the_whole_register_from_its_page(app, session, backend, register,
                                                           make_manager):
    """The register page's button runs the same check as `bidhub verify-ledger` and says
    what it found: intact, or where the register breaks, with each problem in the page's
    language. The check changes nothing."""
    client = client_of(app, make_manager())
    page = client.get("/manage/filings").get_data(as_text=True)
    assert 'hx-get="/manage/filings/check"' in page

    intact = html.unescape(client.get("/manage/filings/check", headers={
        "HX-Request": "true"}).get_data(as_text=True))
    assert intact.lstrip().startswith('<section id="register-check"')
    assert (f"Intact: {FILINGS} filings, their hash chain unbroken; {FILINGS} checkpoints kept "
            "outside the database match them") in intact

    tamper(app, backend, "UPDATE filings SET reason = 'quietly edited' WHERE seq = 7")
    before = session.scalar(select(Filing.reason).where(Filing.seq == 7))
    broken = html.unescape(client.get("/manage/filings/check", headers={
        "Accept-Language": "zh-CN"}).get_data(as_text=True))
    assert "备案登记簿在第 7 号备案处断裂" in broken
    assert "第 7 号备案：内容与其哈希不符" in broken.replace("\n", "")
    assert "<html" in broken  # without htmx, a page of its own
    reload(session)
    assert session.scalar(select(Filing.reason).where(Filing.seq == 7)) == before


def test_the_register_check_says_an_account_left_without_a_holder_by_name(
        app, session, backend, register, make_manager):
    """A holder removed in the database behind the app's back: the check names the account
    and the rep its filings give it to, and says the database gives it to no rep."""
    account, manager = register[0], make_manager()
    tamper(app, backend, f"UPDATE accounts SET owner_id = NULL WHERE id = {account.id}")
    reload(session)
    body = html.unescape(client_of(app, manager).get(
        "/manage/filings/check", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True))
    receiver = session.scalars(select(User).join(Filing, Filing.to_rep_id == User.id)
                               .where(Filing.account_id == account.id)
                               .order_by(Filing.seq.desc())).first()
    assert (f"数据库中客户 {account.external_id} {account.name} 没有归属KA销售，但按备案应归 "
            f"{receiver.display_name} ({receiver.username})") in body
    assert "None" not in body


def test_the_register_check_tells_an_edited_checkpoint_file_from_a_broken_register(
        app, register, make_manager):
    """A checkpoint line edited outside the app: the check says the register and its
    checkpoints disagree from that filing on, not that the register broke there, and names
    the filing once per problem."""
    path = app.config["LEDGER_CHECKPOINT_FILE"]
    with open(path) as lines:
        rows = [json.loads(line) for line in lines]
    rows[2]["mac"] = "0" * 64
    with open(path, "w") as lines:
        lines.writelines(json.dumps(row) + "\n" for row in rows)
    client = client_of(app, make_manager())
    english = html.unescape(client.get("/manage/filings/check").get_data(as_text=True))
    assert ("The register and the checkpoints kept outside the database disagree from filing "
            "No. 3.") in english
    assert "broken" not in english
    chinese = html.unescape(client.get("/manage/filings/check", headers={
        "Accept-Language": "zh-CN"}).get_data(as_text=True))
    assert "备案登记簿与数据库之外保存的校验点自第 3 号备案起不一致" in chinese
    assert "第 3 号备案：第 3 号备案" not in chinese.replace("\n", "")
    assert "断裂" not in chinese
