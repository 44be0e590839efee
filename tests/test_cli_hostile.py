"""The command line under wrong settings and hostile arguments: a sentence naming what is
wrong and a non-zero exit, never a traceback, and nothing written."""

from __future__ import annotations

import pytest

from bidhub.cli import create_app_or_exit


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
