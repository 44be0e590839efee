"""The database upgrades in place: a populated database from the first migration reaches head."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from bidhub.db import MIGRATIONS_DIR, make_engine, upgrade_database


def test_a_populated_first_version_database_upgrades_with_its_data(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO branches (id, code, name) VALUES (1, 'BJ', 'Beijing')"))
        connection.execute(text(
            "INSERT INTO users (id, username, display_name, password_hash, role, branch_id, "
            "is_active, status, session_token, failed_login_count, created_at) VALUES "
            "(1, 'rep', 'Rep', 'x', 'rep', 1, 1, 'active', 't', 0, '2026-01-01 00:00:00')"))
        connection.execute(text(
            "INSERT INTO accounts (id, external_id, name, industry, ownership_type, branch_id, "
            "annual_value_yuan, owner_id, created_at) VALUES "
            "(1, 'KA-1', 'Old Account', '金融', 'private', 1, 5, 1, '2026-01-01 00:00:00')"))
        connection.execute(text(
            "INSERT INTO accountability_incidents (id, account_id, rep_id, competitor_site, "
            "ad_type, seen_at, status, explanation) VALUES "
            "(1, 1, 1, 'zhaopin.com', 'logo', '2026-01-02 00:00:00', 'open', '')"))
    upgrade_database(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0012"
        # A database from before registers had ids gets one.
        register = connection.execute(text(
            "SELECT value FROM instance_markers WHERE name = 'ledger_register'")).scalar()
        assert len(register) == 32
        assert connection.execute(text("SELECT owner_id FROM accounts")).scalar() == 1
        assert connection.execute(text(
            "SELECT version, resolution_note FROM accountability_incidents")).one() == (1, "")
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        triggers = connection.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars().all()
        assert set(triggers) == {"filings_refuse_update", "filings_refuse_delete"}
    engine.dispose()
