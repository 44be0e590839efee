"""A database bidhub cannot work on (nobody set it up, a release has not migrated it yet, a newer
release has) stops a command, `bidhub serve`, `bidhub scheduler` and `bidhub run` before anything
runs, with a sentence that says what to do, never a traceback about a missing table; nothing is
written."""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, make_url, text
from sqlalchemy.pool import NullPool

from bidhub import create_app
from bidhub.db import engine_of, migrations_head, schema_problem
from tests.conftest import postgres_test_url
from tests.test_scheduler_lease import bidhub_command, process_environment, wait_for

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
RULES = SAMPLES.parent / "rules" / "default.toml"

# Every command that reads or writes the database, with arguments it accepts.
DATABASE_COMMANDS = [
    ["import", "opportunities", str(SAMPLES / "opportunities.csv"), "--by", "admin"],
    ["create-user", "--username", "boss", "--name", "Boss", "--password", "a-long-password"],
    ["verify-ledger"],
    ["close-due-rounds"],
    ["apply-due-results"],
    ["rescore", "1"],
    ["refresh-track-records"],
    ["rules", "what-if", "1", str(RULES)],
    ["rules", "adopt", str(RULES), "--note", "same rules", "--by", "admin"],
    ["branches", "list"],
    ["branches", "add", "BJ", "Beijing", "--by", "admin"],
]


def app_on(database_url: str, tmp_path):
    return create_app({"DATABASE_URL": database_url, "TESTING": True, "SECRET_KEY": "test",
                       "LEDGER_KEY": "test-ledger-key", "SCHEDULER_ENABLED": False,
                       "LEDGER_CHECKPOINT_FILE": str(tmp_path / "checkpoints.jsonl")})


def table_names(database_url: str) -> list[str]:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return sorted(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def empty_sqlite_url(tmp_path) -> str:
    """A new, empty SQLite file (as `sqlite3` or another program leaves one): it exists, and
    nobody set it up for bidhub."""
    path = tmp_path / "empty.sqlite3"
    path.touch()
    return f"sqlite:///{path}"


@pytest.fixture
def empty_database_url(request, backend, tmp_path) -> str:
    """A database nobody set up for bidhub: a new SQLite file, or a new PostgreSQL database."""
    if backend == "sqlite":
        return empty_sqlite_url(tmp_path)
    databases = request.getfixturevalue("postgres_databases")
    name = f"{databases.prefix}_empty_{next(databases.counter)}"
    databases.execute(f'CREATE DATABASE "{name}"')
    databases.created.append(name)
    return databases.url_of(name)


def set_revision(database_url: str, revision: str) -> None:
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :revision"),
                           {"revision": revision})
    engine.dispose()


def previous_revision() -> str:
    from alembic.script import ScriptDirectory

    from bidhub.db import MIGRATIONS_DIR

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_revision(migrations_head()).down_revision


@pytest.mark.parametrize("arguments", DATABASE_COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_command_on_a_database_nobody_set_up_says_to_run_init_and_writes_nothing(
        empty_database_url, tmp_path, arguments):
    app = app_on(empty_database_url, tmp_path)
    result = app.test_cli_runner().invoke(args=arguments)
    engine_of(app).dispose()
    assert result.exit_code == 1, result.output
    assert "is not set up for bidhub yet: run `bidhub init`" in result.output
    assert isinstance(result.exception, SystemExit)  # click's own ending, not an error
    assert table_names(empty_database_url) == []


def missing_message(path: Path) -> str:
    return (f"The database file {path} does not exist: check BIDHUB_DATABASE_URL, or run "
            "`bidhub init` to create a new database there (or `bidhub demo` for the demo world).")


@pytest.mark.parametrize("arguments", [*DATABASE_COMMANDS, ["rescore", "--verify", "1"]],
                         ids=lambda args: " ".join(args[:2]))
def test_a_command_on_a_sqlite_file_that_does_not_exist_says_so_and_creates_nothing(
        tmp_path, arguments):
    """A mistyped BIDHUB_DATABASE_URL is not a new database: no folder, no empty file."""
    missing = tmp_path / "missing" / "folder" / "bidhub.sqlite3"
    app = app_on(f"sqlite:///{missing}", tmp_path)
    result = app.test_cli_runner().invoke(args=arguments)
    engine_of(app).dispose()
    assert result.exit_code == 1, result.output
    assert result.output == f"Error: {missing_message(missing)}\n"
    assert isinstance(result.exception, SystemExit)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("command", [["verify-ledger"], ["serve"], ["scheduler"]],
                         ids=lambda command: command[0])
def test_a_process_on_a_sqlite_file_that_does_not_exist_says_so_and_creates_nothing(
        tmp_path, command):
    missing = tmp_path / "missing" / "folder" / "bidhub.sqlite3"
    env = process_environment(f"sqlite:///{missing}", tmp_path,
                              BIDHUB_BIND=f"127.0.0.1:{closed_port()}", BIDHUB_WORKERS="1")
    done = subprocess.run([*bidhub_command(), *command], env=env, capture_output=True,  # noqa: S603
                          text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert missing_message(missing) in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("arguments", [["init"], ["demo", "--no-serve"]])
def test_init_and_the_demo_create_a_sqlite_file_that_does_not_exist_with_its_folder(
        tmp_path, arguments, monkeypatch):
    import bidhub.demo

    # The demo's world is not what is checked here: an empty one is built in its place.
    monkeypatch.setattr(bidhub.demo, "build_demo", lambda session, now: None)
    missing = tmp_path / "new" / "folder" / "bidhub.sqlite3"
    app = app_on(f"sqlite:///{missing}", tmp_path)
    result = app.test_cli_runner().invoke(args=arguments)
    assert result.exit_code == 0, result.output
    assert schema_problem(engine_of(app)) is None
    engine_of(app).dispose()
    assert stat.S_IMODE(missing.stat().st_mode) == 0o600


def test_create_user_asks_for_no_password_on_a_database_nobody_set_up(empty_database_url,
                                                                      tmp_path):
    app = app_on(empty_database_url, tmp_path)
    result = app.test_cli_runner().invoke(args=["create-user", "--username", "boss", "--name",
                                                "Boss"], input="a-long-password\n" * 2)
    engine_of(app).dispose()
    assert result.exit_code == 1, result.output
    assert "Password" not in result.output
    assert "is not set up for bidhub yet: run `bidhub init`" in result.output


def test_create_user_asks_for_the_password_twice_when_it_is_not_given(database_url, tmp_path):
    app = app_on(database_url, tmp_path)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-user", "--username", "boss", "--name", "Boss"],
                           input="a-long-password\nanother-password\na-long-password\n"
                                 "a-long-password\n")
    engine_of(app).dispose()
    assert result.exit_code == 0, result.output
    assert result.output.count("Password: ") == 2
    assert "Error: The two entered values do not match." in result.output
    assert "Created admin 'boss'." in result.output


def test_a_database_a_release_has_not_migrated_names_both_migrations_until_init_runs(
        database_url, tmp_path):
    before = previous_revision()
    set_revision(database_url, before)
    app = app_on(database_url, tmp_path)
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["branches", "list"])
    assert refused.exit_code == 1
    assert (f"is at migration {before} and this bidhub needs {migrations_head()}: run "
            "`bidhub init` to upgrade it") in refused.output
    # What `bidhub init` does, without running the newest migration again on the schema that
    # already has it: the revision is all this test moved back.
    set_revision(database_url, migrations_head())
    listed = runner.invoke(args=["branches", "list"])
    engine_of(app).dispose()
    assert listed.exit_code == 0, listed.output
    assert "No branches yet" in listed.output


def test_a_database_a_newer_release_migrated_is_refused_by_this_one(database_url, tmp_path):
    set_revision(database_url, "9999_from_a_newer_release")
    app = app_on(database_url, tmp_path)
    result = app.test_cli_runner().invoke(args=["verify-ledger"])
    problem = schema_problem(engine_of(app))
    engine_of(app).dispose()
    assert result.exit_code == 1
    assert ("is at migration 9999_from_a_newer_release, which this bidhub does not know "
            f"(its newest is {migrations_head()})") in result.output
    assert problem is not None and problem.reachable


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free again, and nothing listens on it


def test_a_database_server_that_does_not_answer_is_named_without_its_password(tmp_path):
    url = f"postgresql+psycopg://bidhub:secret-pw@127.0.0.1:{closed_port()}/bidhub"
    app = app_on(url, tmp_path)
    result = app.test_cli_runner().invoke(args=["close-due-rounds"])
    problem = schema_problem(engine_of(app))
    engine_of(app).dispose()
    assert result.exit_code == 1
    assert "cannot be reached" in result.output and "secret-pw" not in result.output
    assert problem is not None and not problem.reachable


@pytest.mark.parametrize("command", [["serve"], ["scheduler"], ["run", "--port", "{port}"]],
                         ids=lambda command: command[0])
def test_serve_the_scheduler_and_the_development_server_do_not_start_on_a_database_nobody_set_up(
        tmp_path, command):
    database_url = empty_sqlite_url(tmp_path)
    port = closed_port()
    env = process_environment(database_url, tmp_path, BIDHUB_BIND=f"127.0.0.1:{port}",
                              BIDHUB_WORKERS="1")
    done = subprocess.run([*bidhub_command(), *(part.format(port=port) for part in command)],  # noqa: S603
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "is not set up for bidhub yet: run `bidhub init`" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "Listening at" not in done.stdout  # gunicorn never bound its port
    assert "Running on" not in done.stdout + done.stderr  # nor the development server
    assert table_names(database_url) == []


@pytest.mark.parametrize("command", [["run", "--port", "{port}"],
                                     ["import", "opportunities", str(SAMPLES / "opportunities.csv"),
                                      "--by", "admin"]],
                         ids=lambda command: command[0])
def test_the_scheduler_a_process_runs_inside_waits_for_a_database_set_up_for_bidhub(
        tmp_path, command):
    """BIDHUB_SCHEDULER_ENABLED (the scheduler inside `bidhub run`) on a database nobody set
    up: the command says to run init, and no scheduler starts to log missing tables first."""
    database_url = empty_sqlite_url(tmp_path)
    port = closed_port()
    env = process_environment(database_url, tmp_path, BIDHUB_SCHEDULER_ENABLED="1")
    done = subprocess.run([*bidhub_command(), *(part.format(port=port) for part in command)],  # noqa: S603
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "is not set up for bidhub yet: run `bidhub init`" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "scheduler lease" not in done.stdout + done.stderr
    assert table_names(database_url) == []


def test_serve_starts_while_its_database_server_is_down_and_healthz_says_so(tmp_path):
    """A server started before its database comes up stays up, logs why, and answers the
    load balancer's /healthz as unhealthy: it serves once the database answers."""
    from tests.test_serving import fetch

    port = closed_port()
    url = (make_url(postgres_test_url() or "postgresql+psycopg://bidhub:pw@127.0.0.1/bidhub")
           .set(port=closed_port()).render_as_string(hide_password=False))
    env = process_environment(url, tmp_path, BIDHUB_BIND=f"127.0.0.1:{port}",
                              BIDHUB_WORKERS="1")
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen([*bidhub_command(), "serve"], env=env,  # noqa: S603
                                  stdout=log_file, stderr=subprocess.STDOUT)
    try:
        status, _headers, body = wait_for(lambda: fetch(f"http://127.0.0.1:{port}/healthz"), 60,
                                          "bidhub serve to answer /healthz")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert status == 503
    assert json.loads(body)["database"]["ok"] is False
    warnings = [json.loads(line) for line in log_path.read_text().splitlines()
                if '"WARNING"' in line]
    assert any("cannot be reached" in entry["message"] for entry in warnings)


@pytest.mark.parametrize("arguments", [["init"], ["demo", "--no-serve"]])
def test_init_and_the_demo_leave_a_database_a_newer_release_migrated_as_it_is(
        database_url, tmp_path, arguments):
    set_revision(database_url, "9999_from_a_newer_release")
    before = table_names(database_url)
    app = app_on(database_url, tmp_path)
    result = app.test_cli_runner().invoke(args=arguments)
    engine_of(app).dispose()
    assert result.exit_code == 1, result.output
    assert "is at migration 9999_from_a_newer_release, which this bidhub does not know" in (
        result.output)
    assert isinstance(result.exception, SystemExit)
    assert table_names(database_url) == before
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "9999_from_a_newer_release")
    engine.dispose()


@pytest.mark.parametrize("arguments", [["init"], ["demo", "--no-serve"]])
def test_init_and_the_demo_name_a_database_server_that_does_not_answer(tmp_path, arguments):
    app = app_on(f"postgresql+psycopg://bidhub:pw@127.0.0.1:{closed_port()}/bidhub", tmp_path)
    result = app.test_cli_runner().invoke(args=arguments)
    engine_of(app).dispose()
    assert result.exit_code == 1, result.output
    assert "cannot be reached" in result.output and isinstance(result.exception, SystemExit)
