"""The SQLite database and the secret key are private to the service's user from the start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from bidhub import create_app
from bidhub.config import instance_secret_key
from bidhub.db import engine_of, make_engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """The most permissive umask: whatever a file gets, it gets from how it was created."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_the_secret_key_is_created_0600_without_a_later_chmod(tmp_path, open_umask, monkeypatch):
    # A key written first and chmod-ed after is readable by others in between; with chmod
    # made a no-op, only the mode it was created with remains.
    monkeypatch.setattr(Path, "chmod", lambda self, mode: None)
    key = instance_secret_key(str(tmp_path / "instance"))
    path = tmp_path / "instance" / "secret_key"
    assert mode(path) == 0o600
    assert len(key) == 64 and path.read_text() == key
    assert instance_secret_key(str(tmp_path / "instance")) == key


def test_an_existing_secret_key_is_kept(tmp_path):
    (tmp_path / "secret_key").write_text("kept\n")
    assert instance_secret_key(str(tmp_path)) == "kept"


def test_a_new_sqlite_database_and_its_wal_files_are_0600(tmp_path, open_umask):
    path = tmp_path / "data" / "bidhub.sqlite3"
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "SECRET_KEY": "test",
                      "TESTING": True})
    # `bidhub init` makes the file (and its folder); starting the app makes nothing.
    assert not path.parent.exists()
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    engine = engine_of(app)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
        # While a connection is open in WAL mode, the -wal and -shm files exist.
        assert mode(path) == 0o600
        for suffix in ("-wal", "-shm"):
            wal = Path(f"{path}{suffix}")
            assert wal.exists() and mode(wal) == 0o600, suffix
    engine.dispose()


def test_an_existing_database_keeps_its_mode(tmp_path):
    path = tmp_path / "existing.sqlite3"
    path.touch()
    path.chmod(0o640)
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()
    assert mode(path) == 0o640


def test_an_in_memory_database_creates_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = make_engine("sqlite://")
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()
    assert list(tmp_path.iterdir()) == []
