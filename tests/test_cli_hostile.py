"""The command line under wrong settings and hostile arguments: a sentence naming what is
wrong and a non-zero exit, never a traceback, and nothing written."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bidhub.cli import create_app_or_exit
from bidhub.models import ImportRun, RuleSetVersion, User

EXAMPLE_RULES = Path(__file__).resolve().parents[1] / "rules" / "examples" / "newcomer_friendly.toml"


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("BIDHUB_SMTP_PORT", "twenty-five", "BIDHUB_SMTP_PORT"),
    ("BIDHUB_DEFAULT_LOCALE", "fr", "BIDHUB_DEFAULT_LOCALE"),
    ("BIDHUB_TIMEZONE", "Mars/Olympus", "BIDHUB_TIMEZONE"),
    ("BIDHUB_TIMEZONE", "", "BIDHUB_TIMEZONE"),
    ("BIDHUB_DATABASE_URL", "not a url", "BIDHUB_DATABASE_URL"),
    ("BIDHUB_DATABASE_URL", "mysql://bidhub:secret@db/bidhub", "SQLite and PostgreSQL"),
    ("BIDHUB_DATABASE_URL", "postgresql+nodriver://bidhub:secret@db/bidhub",
     "BIDHUB_DATABASE_URL"),
])
def test_a_setting_bidhub_cannot_use_stops_a_command_with_its_name(
        monkeypatch, capsys, tmp_path, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        create_app_or_exit({"SECRET_KEY": "test", "LEDGER_KEY": "test-ledger-key",
                            "LEDGER_CHECKPOINT_FILE": str(tmp_path / "checkpoints.jsonl"),
                            **({} if variable == "BIDHUB_DATABASE_URL" else
                               {"DATABASE_URL": f"sqlite:///{tmp_path / 'bidhub.sqlite3'}"})})
    assert stopped.value.code == 1
    message = capsys.readouterr().err
    assert named in message and "Traceback" not in message
    assert "secret" not in message


def test_an_import_reads_no_more_of_a_file_than_its_size_limit_and_one_byte(
        app, session, make_admin, tmp_path, monkeypatch):
    """A file past the limit (or a device that never ends, /dev/zero) is refused for its size
    without being read whole into memory first."""
    import bidhub.cli_imports
    import bidhub.services.imports
    from bidhub.domain.imports import UploadLimits

    admin = make_admin()
    big = tmp_path / "reps.csv"
    big.write_bytes(b"external_id,name\n" + b"R1,x\n" * 1000)
    monkeypatch.setattr(bidhub.cli_imports, "default_limits",
                        lambda: UploadLimits(max_file_bytes=1024))
    given = []
    real_import_file = bidhub.services.imports.import_file

    def import_file(session, actor, kind, filename, data, **options):
        given.append(len(data))
        return real_import_file(session, actor, kind, filename, data,
                                **{**options, "limits": UploadLimits(max_file_bytes=1024)})

    monkeypatch.setattr(bidhub.services.imports, "import_file", import_file)
    result = app.test_cli_runner().invoke(args=["import", "reps", str(big), "--by",
                                                admin.username])
    assert given == [1025]
    assert result.exit_code == 1, result.output
    assert "larger than" in result.output


def test_an_import_whose_file_or_mapping_cannot_be_read_names_it_and_imports_nothing(
        app, session, make_admin, tmp_path):
    admin = make_admin()
    reps = tmp_path / "reps.csv"
    reps.write_text("external_id,username,name,branch\n", encoding="utf-8")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["import", "reps", "/proc/self/mem", "--by", admin.username])
    assert result.exit_code == 2 and "cannot be read" in result.output, result.output
    result = runner.invoke(args=["import", "reps", str(reps), "--by", admin.username,
                                 "--mapping", "/dev/zero"])
    assert result.exit_code == 2 and "not a mapping file" in result.output, result.output
    assert not isinstance(result.exception, MemoryError)
    assert session.scalar(select(func.count()).select_from(ImportRun)) == 0


def test_rules_are_not_adopted_in_the_name_of_a_deactivated_admin(app, session, make_admin):
    admin = make_admin()
    admin.is_active = False
    session.commit()
    before = session.scalar(select(func.count()).select_from(RuleSetVersion))
    result = app.test_cli_runner().invoke(args=[
        "rules", "adopt", str(EXAMPLE_RULES), "--note", "newcomers get a chance",
        "--by", admin.username])
    assert result.exit_code == 2, result.output
    assert "not an active admin" in result.output
    assert session.scalar(select(func.count()).select_from(RuleSetVersion)) == before


def test_verify_ledger_names_a_checkpoint_file_it_cannot_read(app_config, tmp_path):
    from bidhub import create_app
    from bidhub.db import engine_of

    app = create_app({**app_config, "LEDGER_CHECKPOINT_FILE": str(tmp_path)})  # a folder
    try:
        result = app.test_cli_runner().invoke(args=["verify-ledger"])
    finally:
        engine_of(app).dispose()
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"the checkpoint file {tmp_path} cannot be read" in result.output


@pytest.mark.parametrize("hired_on", ["9999-12-31", "2026-03-03", "1949-12-31", "0001-01-01"])
def test_create_user_refuses_a_hire_date_after_today_or_before_1950_in_one_line(
        app, session, make_branch, hired_on):
    """The rule the users page applies (users.check_hire_date), named by the option; nothing
    is written. Today is 2026-03-02 in the department's time zone."""
    make_branch("SH", "Shanghai")
    result = app.test_cli_runner().invoke(args=[
        "create-user", "--username", "rep9", "--name", "Rep Nine", "--role", "rep",
        "--branch", "SH", "--hired-on", hired_on, "--password", "a-long-password"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.output == ("Error: --hired-on: Enter a hire date between 1950-01-01 and "
                             "today, 2026-03-02.\n")
    assert session.scalar(select(func.count()).select_from(User)) == 0


def test_create_user_takes_a_hire_date_of_today(app, session, make_branch):
    make_branch("SH", "Shanghai")
    result = app.test_cli_runner().invoke(args=[
        "create-user", "--username", "rep9", "--name", "Rep Nine", "--role", "rep",
        "--branch", "SH", "--hired-on", "2026-03-02", "--password", "a-long-password"])
    assert result.exit_code == 0, result.output
    assert session.scalars(select(User.hired_on)).one() == date(2026, 3, 2)
