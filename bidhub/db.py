"""Database wiring: engine and per-request session, SQLite pragmas, units of work, migrations."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import select
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from flask import Flask, current_app, g
from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from sqlalchemy.orm.util import identity_key

try:
    import fcntl
except ImportError:  # not on POSIX: SQLite's busy handler alone serialises writers
    fcntl = None

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
IMMEDIATE = "bidhub_begin_immediate"
UNIT_OF_WORK = "bidhub_unit_of_work"


def database_url(app: Flask) -> str:
    url = app.config.get("DATABASE_URL")
    if url:
        return url
    return "sqlite:///" + str(Path(app.instance_path) / "bidhub.sqlite3")


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite URL names, as an absolute path (as the driver opens it); None for an
    in-memory database, a file: URI (whose options SQLite reads itself) or another database."""
    url = make_url(url)
    database = url.database
    if (url.get_backend_name() != "sqlite" or not database or database == ":memory:"
            or database.startswith("file:")):
        return None
    return Path(os.path.abspath(database))


def create_private_sqlite_file(url: str | URL) -> None:
    """Create a SQLite database file that does not exist yet with mode 0600, and its folder.

    SQLite would create it under the umask (usually 0644, readable by every local user); it
    gives its -wal and -shm files the database file's mode, so they follow.
    """
    path = sqlite_file(url)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def create_database(engine: Engine) -> None:
    """Create the SQLite file behind `engine` (and its folder) when there is none, private to
    this user; a server's database is the server's to create. Only what sets a database up
    calls it (`upgrade_database`, so `bidhub init`, and `bidhub demo`): any other command on a
    missing file says so (`schema_problem`) instead of leaving an empty database, and folders
    to hold it, wherever a mistyped BIDHUB_DATABASE_URL pointed."""
    if engine.dialect.name == "sqlite":
        create_private_sqlite_file(engine.url)


def missing_database_file(engine: Engine) -> Path | None:
    """The SQLite file `engine` opens, if it does not exist; None when it does, or when the
    database is none of a file's."""
    path = sqlite_file(engine.url)
    return path if path is not None and not path.exists() else None


POSTGRES_CONNECT_TIMEOUT_SECONDS = 10


def make_engine(url: str, *, create: bool = True) -> Engine:
    """The engine for `url`, its sessions set up for bidhub (SQLite's pragmas and write
    transactions, PostgreSQL's round trips).

    A SQLite file that does not exist is created first (`create_private_sqlite_file`), unless
    `create` is False (the app's engine: `engine_of_setting`); then `create_database` makes it.
    Either way the engine never lets SQLite make one itself: a connection to a missing file
    is refused, with a sqlite3.OperationalError naming it.
    """
    if url.startswith("postgresql"):
        # A database host that does not answer fails the request (and /healthz) in seconds
        # instead of holding a worker until gunicorn kills it.
        connect_args = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS}
        if make_url(url).get_driver_name() != "psycopg":
            return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        engine = create_engine(url, connect_args=connect_args)
        event.listen(engine, "checkout", ping_if_server_spoke)
        keep_prepared_statements(engine)
        begin_transactions_only_to_write(engine)
        return engine
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if create:
        create_private_sqlite_file(url)
    engine = create_engine(url, connect_args={"timeout": 15})
    lock_path = writer_lock_path(url)
    if lock_path is not None and fcntl is not None:
        WRITER_LOCKS[engine] = lock_path
    database_file = sqlite_file(url)

    @event.listens_for(engine, "do_connect")
    def refuse_missing_file(_dialect: Any, _record: Any, _args: Any, _params: Any) -> None:
        # SQLite would make an empty database under the umask, in a folder that must exist.
        if database_file is not None and not database_file.exists():
            raise sqlite3.OperationalError(f"the database file {database_file} does not exist")

    @event.listens_for(engine, "connect")
    def set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN, so that writes can say IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin_sqlite_transaction(connection: Any) -> None:
        # A write that starts as a read cannot wait for the lock in WAL mode; take it up front.
        if connection.get_execution_options().get(IMMEDIATE):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            # A read's BEGIN takes no lock, so it cannot fail on one: sent on the driver's
            # connection, since every request begins one and SQLAlchemy's statement machinery
            # costs more than the BEGIN itself.
            connection.connection.driver_connection.execute("BEGIN")

    return engine


def ping_if_server_spoke(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Hand out a pooled PostgreSQL connection only if the server did not end it while idle.

    A restarted or crashed server, or a terminated backend, closes the socket, which then
    reads as ready; an idle connection the server said nothing on is as good as it was when
    returned. Asking the socket costs a system call, where pool_pre_ping's SELECT 1 cost a
    round trip on every request. When the socket is ready, the ping decides; a failed one
    makes the pool replace the connection, so the request does not fail.
    """
    try:
        # poll, not select: select refuses descriptors above 1023.
        poller = select.poll()
        poller.register(dbapi_connection.pgconn.socket, select.POLLIN)
        ready = poller.poll(0)
    except Exception as error:  # closed by the driver already: no socket to ask
        raise DisconnectionError(str(error)) from error
    if not ready:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
        dbapi_connection.commit()  # not rollback(): that would forget the prepared statements
    except Exception as error:
        raise DisconnectionError(str(error)) from error


def begin_transactions_only_to_write(engine: Engine) -> None:
    """Let PostgreSQL reads run without a transaction block; begin one for anything else.

    psycopg sends BEGIN as a round trip of its own before a transaction's first statement,
    and the transaction ends with another (COMMIT), so a page of three reads cost five round
    trips. At READ COMMITTED, PostgreSQL's level here, every statement reads its own newest
    snapshot whether or not a block surrounds it, so a read outside one sees exactly what it
    would inside. The connection is left in autocommit, and a BEGIN is sent where a block
    does matter: when a unit of work starts (`unit_of_work`, every use case's write), and
    before any other statement that writes, locks or must be undone with the ones after it
    (DML, DDL, SAVEPOINT, SELECT ... FOR UPDATE, a transaction-scoped advisory lock). The
    block then lasts until SQLAlchemy's commit or rollback ends it, as before.
    """
    event.listen(engine, "connect", read_in_autocommit)
    event.listen(engine, "begin", begin_if_writing_throughout)
    event.listen(engine, "before_cursor_execute", begin_before_writing)


# A SELECT that holds something until its transaction ends.
_HOLDS_UNTIL_COMMIT = re.compile(
    r"\bFOR\s+(?:UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b|_xact_lock", re.IGNORECASE)


def needs_transaction_block(statement: str) -> bool:
    """Whether the statement writes, locks or may: anything but a plain SELECT. Worked out
    once per text for the statements pages run again and again (a text is the same object
    each time); a long one (an import's batch of keys, say) is not kept, so the memory kept
    stays small."""
    if len(statement) > _KEPT_CLASSIFICATION_MAX_LENGTH:
        return _classified(statement)
    return _kept_classification(statement)


_KEPT_CLASSIFICATION_MAX_LENGTH = 8192


def _classified(statement: str) -> bool:
    return (statement.lstrip()[:6].upper() != "SELECT"
            or _HOLDS_UNTIL_COMMIT.search(statement) is not None)


_kept_classification = functools.lru_cache(maxsize=1024)(_classified)


def read_in_autocommit(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.autocommit = True


def send_begin(connection: Any) -> None:
    driver = connection.connection.driver_connection
    if driver.pgconn.transaction_status == _IDLE:
        driver.execute("BEGIN", prepare=False)


def begin_if_writing_throughout(connection: Any) -> None:
    """A transaction marked IMMEDIATE (a unit of work, the scheduler's lease, a migration)
    writes as a whole: it is one block from its first statement."""
    if connection.get_execution_options().get(IMMEDIATE):
        send_begin(connection)


def begin_before_writing(connection: Any, _cursor: Any, statement: str, _parameters: Any,
                         context: Any, _executemany: bool) -> None:
    if needs_transaction_block(statement) and not context.execution_options.get(WRITES_ALONE):
        send_begin(connection)


# The execution option of a statement that is a transaction on its own: one that checks and
# writes at once (an INSERT ... SELECT ... WHERE). Where `may_write_alone` says so it runs
# outside a block, committed by PostgreSQL as it completes, without the BEGIN and COMMIT round
# trips; inside a unit of work it is one statement of the unit's block like any other.
WRITES_ALONE = "bidhub_writes_alone"


def may_write_alone(session: Session) -> bool:
    """Whether a statement run now with WRITES_ALONE is a transaction of its own: on
    PostgreSQL, outside a unit of work, with nothing pending in the session and no block open
    on its connection (at READ COMMITTED a statement alone reads as it would in a block)."""
    if (session.get_bind().dialect.name != "postgresql" or UNIT_OF_WORK in session.info
            or session.new or session.dirty or session.deleted):
        return False
    driver = session.connection().connection.driver_connection
    return driver.pgconn.transaction_status == _IDLE


# In a pooled PostgreSQL connection's info: its open transaction sent something other than a
# SELECT, so ending it must undo what it may have written.
MAY_HAVE_WRITTEN = "bidhub_may_have_written"
_IDLE = 0  # libpq's PQTRANS_IDLE: not in a transaction block
_IN_TRANSACTION = 2  # libpq's PQTRANS_INTRANS: in a transaction block, no error in it


def keep_prepared_statements(engine: Engine) -> None:
    """Let each pooled psycopg connection keep its prepared statements across requests.

    psycopg prepares a statement once it has run a few times on a connection, so the server
    stops parsing and planning it; but every ROLLBACK forgets them all (DEALLOCATE ALL). Every
    request ends its session, and a session ends its transaction with a ROLLBACK, so nothing
    stayed prepared from one request to the next: the server planned each statement anew.
    A transaction that only read has nothing to undo, so it ends with a COMMIT instead, which
    keeps them (most reads run outside any transaction, `begin_transactions_only_to_write`:
    this is for a unit of work or a locking read that wrote nothing). Anything that may have
    written (any statement but a SELECT: ORM flushes, Core or text DML, DDL, SAVEPOINTs) still
    ends with the ROLLBACK it asked for, and so does a transaction in error.
    """
    event.listen(engine, "connect", allow_prepared_statements)
    event.listen(engine, "before_cursor_execute", note_possible_write)
    event.listen(engine, "commit", forget_possible_write)
    event.listen(engine, "rollback", commit_if_only_read)
    event.listen(engine, "handle_error", drop_connections_with_stale_plans)


# bidhub's pages run a couple of hundred distinct statements between them (a crawl of the demo
# as a rep, a manager and an admin: 206, each run at least 5 times); psycopg keeps 100 prepared
# per connection by default and would evict and prepare them again in turn, a round trip each.
PREPARED_STATEMENTS_PER_CONNECTION = 300


def allow_prepared_statements(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.prepared_max = PREPARED_STATEMENTS_PER_CONNECTION


def note_possible_write(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    if not statement.startswith("SELECT"):
        connection.info[MAY_HAVE_WRITTEN] = True


def forget_possible_write(connection: Any) -> None:
    if not connection.invalidated:
        connection.info.pop(MAY_HAVE_WRITTEN, None)


def commit_if_only_read(connection: Any) -> None:
    """Before the rollback of a transaction that only read, COMMIT it (the same outcome), so
    that the driver's rollback finds no transaction and keeps the prepared statements."""
    if connection.invalidated or connection.closed:
        return
    if connection.info.pop(MAY_HAVE_WRITTEN, False):
        return
    driver = connection.connection.driver_connection
    if driver is None or driver.pgconn.transaction_status != _IN_TRANSACTION:
        return  # nothing to end, or a transaction in error: the ROLLBACK clears the plans
    with contextlib.suppress(connection.dialect.dbapi.Error):
        # A COMMIT that fails ends the transaction anyway; a connection it found broken fails
        # the ROLLBACK that follows too, which invalidates it as before.
        driver.commit()


# PostgreSQL's plancache refuses to run a prepared statement whose result columns changed
# type since it was prepared (a migration ran while this process held the connection).
_STALE_PLAN = ("0A000", "RevalidateCachedQuery")


def drop_connections_with_stale_plans(context: Any) -> None:
    """Treat "cached plan must not change result type" as a lost connection: the pool then
    replaces every connection it holds, and with them their statements prepared against the
    old schema, so one request fails instead of one per statement and connection."""
    diag = getattr(context.original_exception, "diag", None)
    if diag is not None and (diag.sqlstate, diag.source_function) == _STALE_PLAN:
        context.is_disconnect = True


def end_read_before_write(session: Session, keep: tuple[object, ...] = ()) -> None:
    """Ready the session for the write transaction of a use case (begun by `unit_of_work`
    with BEGIN IMMEDIATE on SQLite after this; with nothing to flush, this locks nothing).

    Whatever the session read before (the logged-in user, say) is committed first, so the
    write transaction starts from the newest snapshot instead of upgrading a stale one; rows
    loaded before are read again when next used, so no decision rests on an old copy. The
    objects in `keep` are left as loaded: the use case reads what it decides on about them
    again itself, and the request goes on using them (reloading would cost a statement).
    """
    if session.in_transaction():
        session.commit()
    if keep:
        for instance in list(session.identity_map.values()):
            if not any(instance is kept for kept in keep):
                session.expire(instance)
    else:
        session.expire_all()


class UnitOfWorkFailed(RuntimeError):
    """A use case inside a unit of work failed and the unit went on as if it had not."""


def refresh_planner_statistics(session: Session) -> None:
    """On PostgreSQL, VACUUM ANALYZE the database, as autovacuum would a minute or more after
    a whole world is written at once. ANALYZE has the planner plan for the rows instead of the
    nearly empty tables it last measured: with it the rep's listing page took 5 to 8% less
    time in-process on the demo. VACUUM marks the pages all-visible, so that a count over an
    index reads the index alone: the manager's round page counts its proposed winners'
    accounts so, instead of reading every account. VACUUM runs outside a transaction, so the
    session's is committed first. SQLite keeps no statistics unless asked, and its pages ran
    no faster with them, so it is left as it is."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    session.commit()
    with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE", execution_options={WRITES_ALONE: True})


# SQLSTATEs of transactions PostgreSQL ended because of another one: deadlock detected,
# serialization failure, lock not available.
LOST_RACE_STATES = {"40P01", "40001", "55P03"}


def is_lost_race(error: OperationalError) -> bool:
    """Whether the database ended the transaction because of another one at the same moment
    (its work rolled back, nothing of it saved): it may be run again."""
    state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if state in LOST_RACE_STATES:
        return True
    # SQLite gives up waiting for the write lock only after busy_timeout.
    return "database is locked" in str(error.orig)


@contextlib.contextmanager
def unit_of_work(session: Session, keep: tuple[object, ...] = ()) -> Iterator[Session]:
    """The transaction of a use case: begun by the outermost use case, committed once by it.

    The outermost `with unit_of_work(session)` ends the session's read
    (`end_read_before_write`), queues for the writer where writers queue (SQLite) and starts
    the write transaction (BEGIN IMMEDIATE on SQLite), commits when its body ends and rolls back when any exception leaves it, so a caller never
    has to clean up after a refused request. A use case called inside another one joins the
    open unit: it neither begins nor commits, and an exception leaving it rolls back the
    whole unit. An outer body that swallows such an exception cannot commit either: half of
    a failed use case would be saved. `keep`: see `end_read_before_write`.
    """
    unit = session.info.get(UNIT_OF_WORK)
    if unit is not None:
        try:
            yield session
        except BaseException:
            unit["failed"] = True
            raise
        return
    unit = session.info[UNIT_OF_WORK] = {"failed": False}
    # Ending the read commits it, which flushes what is pending: a flush that writes waits
    # in the queue like any write; one that has nothing to write goes before it.
    flushes = bool(session.new or session.dirty or session.deleted)
    try:
        if not flushes:
            try:
                end_read_before_write(session, keep)
            except BaseException:
                session.rollback()
                raise
        with queued_writer(session):
            try:
                if flushes:
                    end_read_before_write(session, keep)
                session.connection(execution_options={IMMEDIATE: True})
                yield session
                if unit["failed"]:
                    raise UnitOfWorkFailed("A step of this unit of work failed; nothing was "
                                           "saved.")
                session.commit()
            except BaseException:
                session.rollback()
                raise
    finally:
        session.info.pop(UNIT_OF_WORK, None)


# SQLite engines -> the file beside their database that writers queue on (see queued_writer).
WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def writer_lock_path(url: str) -> str | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database + "-writer.lock"


@contextlib.contextmanager
def queued_writer(session: Session) -> Iterator[None]:
    """Queue for SQLite's one writer on a lock file beside the database, across processes.

    A writer that finds the database locked sleeps in SQLite's busy handler, up to 100 ms a
    step, and may wake long after the lock is free, or later than writers that came after
    it. Waiting on an exclusive flock instead, writers wake as soon as the one before them
    ends, in the kernel's order. SQLite's own lock still guards the data: a process that does
    not queue here (another program, the scheduler's lease) is waited for as before. Each
    unit opens the file itself, so threads queue too (a flock belongs to an open file).
    """
    path = WRITER_LOCKS.get(session.get_bind())
    held = getattr(_queue_state, "held", set())
    # PostgreSQL locks rows; an in-memory database has one connection; and a thread already
    # at the head of this queue (a second session's unit inside the first) must not wait
    # behind itself.
    if path is None or path in held:
        yield
        return
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        queued = wait_for_flock(descriptor, WRITER_QUEUE_TIMEOUT_SECONDS)
        if queued:
            _queue_state.held = held | {path}
        try:
            yield
        finally:
            if queued:
                _queue_state.held = held
    finally:
        os.close(descriptor)  # releases the lock, as the end of the process would


# As long as SQLite's own busy timeout: a writer that waited this long (behind an import, say)
# goes on to SQLite's lock, which waits as before and then refuses with "database is locked".
WRITER_QUEUE_TIMEOUT_SECONDS = 15
_queue_state = threading.local()


def wait_for_flock(descriptor: int, timeout: float) -> bool:
    """Take the exclusive flock, polling each millisecond until `timeout`; False if it stayed
    taken (a blocking flock could wait forever)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)


def in_unit_of_work(session: Session) -> bool:
    return UNIT_OF_WORK in session.info


def end_read(session: Session) -> None:
    """End the read transaction, so no snapshot stays open during slow work or between steps.

    Inside a unit of work the transaction is the unit's, and stays open.
    """
    if session.in_transaction() and not in_unit_of_work(session):
        session.commit()


T = TypeVar("T")


@functools.cache
def column_keys(model: type) -> tuple[str, ...]:
    """The keys of the model's mapped columns, in the mapper's order."""
    return tuple(model.__mapper__.column_attrs.keys())


def columns_of(*models: type) -> list[Any]:
    """Every mapped column of each model in turn: the start of a statement whose rows
    `values_by_model` splits, for objects made with `attached` instead of the ORM's loading."""
    return [getattr(model, key) for model in models for key in column_keys(model)]


def values_by_model(row: Any, *models: type) -> list[dict[str, Any] | None]:
    """Each model's column values in a row that starts with `columns_of(*models)`, by key;
    None for a model whose id is NULL (an outer join that found no row)."""
    found, start = [], 0
    for model in models:
        keys = column_keys(model)
        values = dict(zip(keys, row[start:start + len(keys)], strict=True))
        found.append(None if values["id"] is None else values)
        start += len(keys)
    return found


def attached(session: Session, model: type[T], values: dict[str, Any]) -> T:
    """The `model` instance with these column values in `session`: the one already there
    for its primary key, else one made from them, as if loaded by a query."""
    instance = session.identity_map.get(identity_key(model, values["id"]))
    if instance is None:
        instance = model.__mapper__.class_manager.new_instance()
        instance.__dict__.update(values)
        make_transient_to_detached(instance)
        session.add(instance)
    return instance


def get_session() -> Session:
    """The session of the current request or CLI command."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["bidhub_sessionmaker"]()
    return g.db_session


def close_session(_exception: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def upgrade_database(engine: Engine) -> None:
    """Bring the schema to the newest migration (creating it on an empty database, and a
    SQLite file that does not exist: `create_database`)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    create_database(engine)
    # A write from its first statement: one transaction block (BEGIN IMMEDIATE on SQLite).
    with engine.connect().execution_options(**{IMMEDIATE: True}) as connection:
        is_sqlite = engine.dialect.name == "sqlite"
        if is_sqlite:
            # SQLite changes a table by copying it; with foreign keys enforced the copy's
            # DROP TABLE fails on a populated database. Off for the migration, checked after.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if is_sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
        finally:
            if is_sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
    if engine.dialect.name == "postgresql":
        # The pool's idle connections may hold statements prepared against the old schema:
        # closed here. The pool itself is kept (engine.dispose would make a new one), so a
        # connection checked out now returns to it rather than being left open in an abandoned
        # pool; a stale plan on it makes the pool replace its connections
        # (drop_connections_with_stale_plans).
        engine.pool.dispose()


@functools.cache
def migrations_head() -> str | None:
    """The newest migration this code ships; read from the scripts once per process."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def _is_known_migration(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory(str(MIGRATIONS_DIR)).get_revision(revision) is not None
    except CommandError:
        return False


class SchemaProblem(NamedTuple):
    """Why this code cannot work on a database, as a sentence that says what to do about it;
    `reachable` is False when the database did not answer at all (a server that may yet come
    up; a SQLite file that does not exist is an answer), `init_fixes` is True when `bidhub
    init` sets it right (it does not exist, is not set up, or is at an older migration)."""

    message: str
    reachable: bool
    init_fixes: bool = False


def schema_problem(engine: Engine) -> SchemaProblem | None:
    """Why this code cannot work on the database behind `engine`; None when the database
    answers and is at the newest migration.

    A command or a server started on a database nobody set up (or one a new release has not
    migrated yet) would otherwise fail on its first statement with a traceback about a
    missing table or column, after perhaps part of its work. Nothing is written here."""
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import SQLAlchemyError

    where = engine.url.render_as_string(hide_password=True)
    missing = missing_database_file(engine)
    if missing is not None:
        return SchemaProblem(f"The database file {missing} does not exist: check "
                             "BIDHUB_DATABASE_URL, or run `bidhub init` to create a new database "
                             "there (or `bidhub demo` for the demo world).",
                             reachable=True, init_fixes=True)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                current = None
            else:
                current = connection.execute(
                    text("SELECT version_num FROM alembic_version")).scalar()
            connection.rollback()
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        return SchemaProblem(f"The database {where} cannot be reached: "
                             f"{reason[0] if reason else type(error).__name__}", reachable=False)
    head = migrations_head()
    if current == head:
        return None
    if current is None:
        return SchemaProblem(f"The database {where} is not set up for bidhub yet: run `bidhub "
                             "init` (or `bidhub demo` for the demo world) first.",
                             reachable=True, init_fixes=True)
    if _is_known_migration(current):
        return SchemaProblem(f"The database {where} is at migration {current} and this bidhub "
                             f"needs {head}: run `bidhub init` to upgrade it.",
                             reachable=True, init_fixes=True)
    return SchemaProblem(f"The database {where} is at migration {current}, which this bidhub "
                         f"does not know (its newest is {head}): a newer bidhub has upgraded "
                         "it; run that version.", reachable=True)


def init_app(app: Flask) -> None:
    engine = engine_of_setting(database_url(app))
    app.extensions["bidhub_engine"] = engine
    app.extensions["bidhub_sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(close_session)


def engine_of_setting(url: str) -> Engine:
    """The engine for BIDHUB_DATABASE_URL; ConfigError when it is no URL of a database bidhub
    works on (the value is not repeated: it may hold a password)."""
    from bidhub.config import ConfigError

    try:
        dialect = make_url(url).get_backend_name()
    except ArgumentError:
        raise ConfigError("BIDHUB_DATABASE_URL is not a database URL: write it as "
                          "sqlite:////path/to/bidhub.sqlite3 or "
                          "postgresql+psycopg://user:password@host/database.") from None
    if dialect not in ("sqlite", "postgresql"):
        raise ConfigError(f"BIDHUB_DATABASE_URL names a {dialect} database; bidhub works on "
                          "SQLite and PostgreSQL (postgresql+psycopg://...).")
    try:
        # A SQLite file is created by the commands that set a database up (`create_database`),
        # not by every command, page or process that starts on the setting.
        return make_engine(url, create=False)
    except (ArgumentError, ImportError) as error:  # an unknown or missing driver
        raise ConfigError(f"BIDHUB_DATABASE_URL cannot be used: {error}. Write it as "
                          "sqlite:////path/to/bidhub.sqlite3 or "
                          "postgresql+psycopg://user:password@host/database.") from None


def engine_of(app: Flask) -> Engine:
    return app.extensions["bidhub_engine"]
