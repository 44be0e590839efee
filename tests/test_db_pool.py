"""PostgreSQL's pooled connections: kept while the server keeps them, replaced when it ends them;
their prepared statements kept across requests that only read, dropped with a failed or undone
write and with a schema change."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from bidhub import db
from bidhub.db import (
    WRITES_ALONE,
    engine_of,
    may_write_alone,
    needs_transaction_block,
    unit_of_work,
    upgrade_database,
)
from bidhub.models import Branch


def backend_pids(engine) -> set[int]:
    """The server processes behind the connections the pool holds now."""
    connections = [engine.connect() for _ in range(engine.pool.checkedin())]
    try:
        return {connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
                for connection in connections}
    finally:
        for connection in connections:
            connection.close()


def terminate(url, pids: set[int]) -> None:
    """End those server processes, as a restart or a crash of the server would."""
    admin = create_engine(url, poolclass=NullPool)
    try:
        with admin.connect() as connection:
            for pid in pids:
                # Waits (up to 5 s) until the process is gone, so its socket is closed.
                assert connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"),
                                          {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


@pytest.fixture
def postgres_app(app, backend):
    if backend != "postgresql":
        pytest.skip("SQLite has no server to lose a connection to")
    return app


def test_a_healthy_pooled_connection_is_reused(postgres_app):
    engine = engine_of(postgres_app)
    with engine.connect() as connection:
        first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() == first


def test_connections_the_server_ended_do_not_fail_requests(postgres_app, client):
    engine = engine_of(postgres_app)
    assert client.get("/healthz").status_code == 200
    ended = backend_pids(engine)
    assert ended
    terminate(engine.url, ended)

    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["database"] == {"ok": True}
    assert backend_pids(engine).isdisjoint(ended)


# Prepared statements: psycopg prepares a statement after PREPARE_AFTER runs on a connection
# (its prepare_threshold) and forgets them all on ROLLBACK.
PREPARE_AFTER = 5
BRANCH_NAME = text("SELECT branches.name FROM branches WHERE branches.code = :code")


def prepared_statements(connection) -> list[str]:
    return list(connection.execute(text("SELECT statement FROM pg_prepared_statements")
                                   ).scalars())


def read_branch_name(app, times: int = PREPARE_AFTER + 1) -> None:
    """Read a branch's name in as many requests' sessions, each ended by closing it."""
    for _ in range(times):
        session = app.extensions["bidhub_sessionmaker"]()
        try:
            assert session.execute(BRANCH_NAME, {"code": "BJ"}).scalar_one() == "Beijing"
        finally:
            session.close()


def test_sessions_that_only_read_leave_their_statements_prepared(postgres_app, make_branch,
                                                                 session):
    make_branch()
    session.commit()
    session.close()
    engine = engine_of(postgres_app)
    read_branch_name(postgres_app)
    with engine.connect() as connection:
        assert BRANCH_NAME.text.replace(":code", "$1") in prepared_statements(connection)


def test_requests_that_only_read_leave_their_statements_prepared(postgres_app, client):
    for _ in range(PREPARE_AFTER + 1):
        assert client.get("/healthz").status_code == 200
    with engine_of(postgres_app).connect() as connection:
        assert "SELECT version_num FROM alembic_version" in prepared_statements(connection)


def test_what_a_closed_session_wrote_is_still_undone(app, backend, make_branch, session):
    """Whatever sent a write (the ORM's flush, a Core or a text statement), however many reads
    came after it, a session closed without a commit leaves nothing behind."""
    make_branch()
    session.commit()
    session.close()
    writes = [
        lambda s: (s.add(Branch(code="SH", name="Shanghai")), s.flush()),
        lambda s: s.execute(update(Branch).values(name="Renamed")),
        lambda s: s.execute(text("UPDATE branches SET name = 'Renamed'")),
        lambda s: s.execute(delete(Branch)),
    ]
    for write in writes:
        writer = app.extensions["bidhub_sessionmaker"]()
        try:
            write(writer)
            for _ in range(PREPARE_AFTER + 1):
                writer.execute(BRANCH_NAME, {"code": "BJ"}).all()
        finally:
            writer.close()
        assert session.execute(select(Branch.code, Branch.name)).all() == [("BJ", "Beijing")]
        session.close()


def test_a_unit_of_work_that_failed_after_writing_saves_nothing(app, backend, session):
    class Refused(Exception):
        pass

    writer = app.extensions["bidhub_sessionmaker"]()
    with pytest.raises(Refused), unit_of_work(writer):
        writer.add(Branch(code="SH", name="Shanghai"))
        writer.flush()
        writer.execute(BRANCH_NAME, {"code": "SH"}).all()
        raise Refused
    writer.close()
    assert session.execute(select(Branch.code)).all() == []


def test_a_session_that_locked_rows_releases_them(postgres_app, make_branch, session):
    make_branch()
    session.commit()
    session.close()
    reader = postgres_app.extensions["bidhub_sessionmaker"]()
    reader.execute(select(Branch.id).with_for_update()).all()
    reader.close()
    other = create_engine(engine_of(postgres_app).url, poolclass=NullPool)
    try:
        with other.connect() as connection:
            connection.execute(text("SET lock_timeout = '2s'"))
            assert connection.execute(select(Branch.id).with_for_update(nowait=True)).all()
            connection.rollback()
    finally:
        other.dispose()


def test_a_transaction_in_error_is_rolled_back_and_forgets_its_plans(postgres_app, make_branch,
                                                                    session):
    make_branch()
    session.commit()
    session.close()
    read_branch_name(postgres_app)
    failing = postgres_app.extensions["bidhub_sessionmaker"]()
    failing.execute(update(Branch).values(name="Renamed"))
    with pytest.raises(DBAPIError):
        failing.execute(text("SELECT 1 / 0")).all()
    failing.close()
    with engine_of(postgres_app).connect() as connection:
        assert prepared_statements(connection) == []
    read_branch_name(postgres_app, times=1)


def test_a_read_that_failed_outside_a_transaction_leaves_the_connection_as_it_was(
        postgres_app, make_branch, session):
    make_branch()
    session.commit()
    session.close()
    read_branch_name(postgres_app)
    failing = postgres_app.extensions["bidhub_sessionmaker"]()
    with pytest.raises(DBAPIError):
        failing.execute(text("SELECT 1 / 0")).all()
    assert failing.execute(BRANCH_NAME, {"code": "BJ"}).scalar_one() == "Beijing"
    failing.close()
    with engine_of(postgres_app).connect() as connection:
        assert BRANCH_NAME.text.replace(":code", "$1") in prepared_statements(connection)


def transaction_status(session) -> str:
    return session.connection().connection.driver_connection.info.transaction_status.name


def test_reads_run_outside_a_transaction_block(postgres_app, make_branch, session):
    """psycopg would send BEGIN and later COMMIT, a round trip each, around a request's
    reads; at READ COMMITTED each statement reads its own snapshot either way."""
    make_branch()
    session.commit()
    session.close()
    reader = postgres_app.extensions["bidhub_sessionmaker"]()
    try:
        assert reader.execute(BRANCH_NAME, {"code": "BJ"}).scalar_one() == "Beijing"
        assert transaction_status(reader) == "IDLE"
    finally:
        reader.close()


@pytest.fixture
def writer(postgres_app, make_branch, session):
    """A session of its own beside the test's, once the branch BJ (Beijing) is committed."""
    make_branch()
    session.commit()
    session.close()
    return postgres_app.extensions["bidhub_sessionmaker"]()


def test_a_write_outside_a_unit_of_work_opens_a_block_that_undoes_the_rest(writer, session):
    try:
        writer.execute(BRANCH_NAME, {"code": "BJ"}).all()
        assert transaction_status(writer) == "IDLE"
        writer.execute(update(Branch).values(name="Renamed"))
        assert transaction_status(writer) == "INTRANS"
        writer.add(Branch(code="SH", name="Shanghai"))
        writer.flush()
        writer.rollback()
    finally:
        writer.close()
    assert session.execute(select(Branch.code, Branch.name)).all() == [("BJ", "Beijing")]


def test_a_statement_that_writes_alone_is_committed_as_it_completes(writer, session):
    try:
        writer.execute(BRANCH_NAME, {"code": "BJ"}).all()
        assert may_write_alone(writer)
        writer.connection().execute(update(Branch).values(name="Renamed"),
                                    execution_options={WRITES_ALONE: True})
        assert transaction_status(writer) == "IDLE"
        # Written, and seen by another session before this one ends: committed.
        assert session.execute(BRANCH_NAME, {"code": "BJ"}).scalar_one() == "Renamed"
        session.rollback()
        writer.rollback()  # nothing left to undo
        assert session.execute(BRANCH_NAME, {"code": "BJ"}).scalar_one() == "Renamed"
        # Not alone once something is pending, a block is open or a unit of work runs.
        writer.add(Branch(code="SH", name="Shanghai"))
        assert not may_write_alone(writer)
        writer.rollback()
        writer.execute(update(Branch).values(name="Beijing"))
        assert transaction_status(writer) == "INTRANS" and not may_write_alone(writer)
        writer.rollback()
        with pytest.raises(LookupError), unit_of_work(writer):
            assert not may_write_alone(writer)
            # In a unit of work it is one more statement of the unit's block, undone with it.
            writer.connection().execute(update(Branch).values(name="Undone"),
                                        execution_options={WRITES_ALONE: True})
            assert transaction_status(writer) == "INTRANS"
            raise LookupError("a step after the write failed")
    finally:
        writer.close()
    session.rollback()
    assert session.execute(BRANCH_NAME, {"code": "BJ"}).scalar_one() == "Renamed"


def test_only_postgresql_writes_alone(app, backend, session):
    assert may_write_alone(session) == (backend == "postgresql")


def test_a_unit_of_work_runs_in_one_block_from_its_start(postgres_app, session):
    writer = postgres_app.extensions["bidhub_sessionmaker"]()
    try:
        with unit_of_work(writer):
            assert transaction_status(writer) == "INTRANS"
            writer.add(Branch(code="SH", name="Shanghai"))
        assert transaction_status(writer) == "IDLE"
    finally:
        writer.close()
    assert session.execute(select(Branch.code)).all() == [("SH",)]


@pytest.mark.parametrize("locking", [
    lambda s: s.execute(select(Branch.id).with_for_update()).all(),
    lambda s: s.execute(select(Branch.id).with_for_update(read=True)).all(),
    lambda s: s.execute(text("select id from branches for no key update")).all(),
])
def test_a_read_that_locks_holds_its_lock_until_the_session_ends(postgres_app, make_branch,
                                                                 session, locking):
    make_branch()
    session.commit()
    session.close()
    reader = postgres_app.extensions["bidhub_sessionmaker"]()
    other = create_engine(engine_of(postgres_app).url, poolclass=NullPool)
    try:
        locking(reader)
        with other.connect() as connection:
            with pytest.raises(DBAPIError):
                connection.execute(select(Branch.id).with_for_update(nowait=True)).all()
            connection.rollback()
        reader.close()
        with other.connect() as connection:
            assert connection.execute(select(Branch.id).with_for_update(nowait=True)).all()
            connection.rollback()
    finally:
        reader.close()
        other.dispose()


def test_an_advisory_transaction_lock_is_held_until_the_session_ends(postgres_app):
    key = 4_242_424_242
    holder = postgres_app.extensions["bidhub_sessionmaker"]()
    other = create_engine(engine_of(postgres_app).url, poolclass=NullPool)
    try:
        holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        with other.connect() as connection:
            assert connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                      {"key": key}).scalar_one() is False
            connection.rollback()
        holder.close()
        with other.connect() as connection:
            assert connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                      {"key": key}).scalar_one() is True
            connection.rollback()
    finally:
        holder.close()
        other.dispose()


@pytest.mark.parametrize(("statement", "needs_block"), [
    ("SELECT branches.name FROM branches WHERE branches.code = $1", False),
    ("  select 1", False),
    ("SELECT 'FOR UPDATE' AS label", True),  # a false alarm costs a BEGIN, nothing more
    ("SELECT id FROM branches FOR UPDATE", True),
    ("SELECT id FROM branches FOR UPDATE OF branches NOWAIT", True),
    ("select id from branches for share", True),
    ("SELECT id FROM branches FOR NO KEY UPDATE", True),
    ("SELECT id FROM branches FOR KEY SHARE", True),
    ("SELECT pg_advisory_xact_lock(42)", True),
    ("INSERT INTO branches (code, name) VALUES ($1, $2)", True),
    ("UPDATE branches SET name = $1", True),
    ("DELETE FROM branches", True),
    ("WITH gone AS (DELETE FROM branches RETURNING id) SELECT count(*) FROM gone", True),
    ("SAVEPOINT sa_savepoint_1", True),
    ("CREATE TABLE t (id integer)", True),
])
def test_what_needs_a_transaction_block(statement, needs_block):
    assert needs_transaction_block(statement) is needs_block


@pytest.mark.parametrize(("statement", "needs_block"), [
    ("SELECT id FROM branches WHERE id IN (" + ", ".join(map(str, range(3000))) + ")", False),
    ("SELECT id FROM branches WHERE id IN (" + ", ".join(map(str, range(3000)))
     + ") FOR UPDATE", True),
    ("INSERT INTO branches (code, name) VALUES " + ", ".join(["($1, $2)"] * 2000), True),
])
def test_long_statements_are_classified_alike_and_not_kept(statement, needs_block):
    """An import's batches of keys make many long texts: the classification keeps none."""
    kept = db._kept_classification.cache_info().currsize
    assert len(statement) > 8192
    assert needs_transaction_block(statement) is needs_block
    assert db._kept_classification.cache_info().currsize == kept


def test_a_schema_change_behind_the_pools_back_fails_one_request_not_every_one(
        postgres_app, make_branch, session):
    """A statement prepared before another process changed the type of a column it reads is
    refused by the server ("cached plan must not change result type"); the pool then replaces
    all its connections, so only that one statement fails, not one on each pooled connection.
    """
    make_branch()
    session.commit()
    session.close()
    maker = postgres_app.extensions["bidhub_sessionmaker"]
    held = [maker(), maker()]  # two pooled connections, each with the statement prepared
    for each in held:
        for _ in range(PREPARE_AFTER + 1):
            each.execute(BRANCH_NAME, {"code": "BJ"}).all()
    for each in held:
        each.close()
    assert engine_of(postgres_app).pool.checkedin() == 2

    admin = create_engine(engine_of(postgres_app).url, poolclass=NullPool)
    try:
        with admin.begin() as connection:
            connection.execute(text("ALTER TABLE branches ALTER COLUMN name TYPE varchar(200)"))
    finally:
        admin.dispose()

    failed = maker()
    with pytest.raises(DBAPIError) as refused:
        failed.execute(BRANCH_NAME, {"code": "BJ"}).all()
    failed.close()
    assert refused.value.connection_invalidated
    again = [maker(), maker()]
    try:
        for each in again:
            assert each.execute(BRANCH_NAME, {"code": "BJ"}).scalar_one() == "Beijing"
    finally:
        for each in again:
            each.close()


def test_migrating_drops_the_connections_prepared_against_the_old_schema(postgres_app,
                                                                         make_branch, session):
    make_branch()
    session.commit()
    session.close()
    engine = engine_of(postgres_app)
    read_branch_name(postgres_app)
    before = backend_pids(engine)
    upgrade_database(engine)
    assert engine.pool.checkedin() == 0
    read_branch_name(postgres_app, times=1)
    assert backend_pids(engine).isdisjoint(before)


def test_a_backend_that_ends_after_a_read_is_replaced(postgres_app):
    """A read leaves no transaction to end, so its session closes without asking the server;
    the connection the server ended goes back to the pool, which sees the closed socket and
    gives the next session a new one."""
    maker = postgres_app.extensions["bidhub_sessionmaker"]
    reading = maker()
    ended = reading.execute(text("SELECT pg_backend_pid()")).scalar_one()
    terminate(engine_of(postgres_app).url, {ended})
    reading.close()
    following = maker()
    try:
        assert following.execute(text("SELECT pg_backend_pid()")).scalar_one() != ended
    finally:
        following.close()


def test_a_backend_that_ends_during_a_write_fails_it_and_is_replaced(postgres_app):
    maker = postgres_app.extensions["bidhub_sessionmaker"]
    writing = maker()
    writing.execute(update(Branch).values(name="Renamed"))
    ended = writing.execute(text("SELECT pg_backend_pid()")).scalar_one()
    terminate(engine_of(postgres_app).url, {ended})
    with pytest.raises(DBAPIError) as lost:
        writing.close()
    assert lost.value.connection_invalidated
    following = maker()
    try:
        assert following.execute(text("SELECT pg_backend_pid()")).scalar_one() != ended
    finally:
        following.close()
