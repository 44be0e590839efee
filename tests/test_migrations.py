"""The database upgrades in place: a populated database from the first migration reaches head."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from bidhub.db import MIGRATIONS_DIR, make_engine, upgrade_database
from bidhub.domain.collation import name_sort_bytes


def migrated_to(engine, revision: str) -> None:
    """The database of `engine` brought up to `revision` (not head)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def add_branch_and_rep(connection, display_name: str) -> None:
    """Branch 1 (BJ) and rep 1 in it, written as a database of any revision holds them."""
    connection.execute(text("INSERT INTO branches (id, code, name) VALUES (1, 'BJ', 'Beijing')"))
    connection.execute(text(
        "INSERT INTO users (id, username, display_name, password_hash, role, branch_id, "
        "is_active, status, session_token, failed_login_count, created_at) VALUES "
        "(1, 'rep', :name, 'x', 'rep', 1, 1, 'active', 't', 0, '2026-01-01 00:00:00')"),
        {"name": display_name})


def test_a_populated_first_version_database_upgrades_with_its_data(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    migrated_to(engine, "0001")
    with engine.begin() as connection:
        add_branch_and_rep(connection, "Ｒｅｐ")
        connection.execute(text(
            "INSERT INTO accounts (id, external_id, name, industry, ownership_type, branch_id, "
            "annual_value_yuan, owner_id, created_at) VALUES "
            "(1, 'KA-1', 'Ｏｌｄ Account', '金融', 'private', 1, 5, 1, '2026-01-01 00:00:00')"))
        connection.execute(text(
            "INSERT INTO accountability_incidents (id, account_id, rep_id, competitor_site, "
            "ad_type, seen_at, status, explanation) VALUES "
            "(1, 1, 1, 'zhaopin.com', 'logo', '2026-01-02 00:00:00', 'open', '')"))
    upgrade_database(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0020"
        # Names come with their place in pinyin order.
        assert connection.execute(text("SELECT name_sort_key FROM accounts")).scalar() == \
            name_sort_bytes("Ｏｌｄ Account")
        # And as a search reads them, width-blind (0016).
        assert connection.execute(text("SELECT name_folded FROM accounts")).scalar() == \
            "Old Account"
        assert connection.execute(text("SELECT display_name_sort_key FROM users")).scalar() == \
            name_sort_bytes("Ｒｅｐ")
        # Users' display names too (0017).
        assert connection.execute(text("SELECT display_name_folded FROM users")).scalar() == \
            "Rep"
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


def test_a_database_left_with_two_rule_sets_in_force_keeps_the_one_adopted_last(tmp_path):
    """Before 0013 two adoptions at the same moment could both stay active; the upgrade keeps
    the version the audit trail shows adopted last, and from then on the index holds."""
    engine = make_engine(f"sqlite:///{tmp_path / 'raced.sqlite3'}")
    migrated_to(engine, "0012")
    with engine.begin() as connection:
        for id_, is_active in ((1, 0), (2, 1), (3, 1), (4, 1)):
            connection.execute(text(
                "INSERT INTO rule_set_versions (id, sha256, name, text, note, is_active, "
                "created_at) VALUES (:id, :sha, 'rules', '', '', :active, "
                "'2026-01-01 00:00:00')"), {"id": id_, "sha": str(id_) * 64, "active": is_active})
        # Version 3 was adopted after 2 (and after 4, which was never audited), then 1 before.
        for id_, target in ((1, "rule_set:2"), (2, "rule_set:3"), (3, "rule_set:1")):
            connection.execute(text(
                "INSERT INTO audit_events (id, action, target, at) VALUES "
                "(:id, 'rules.adopted', :target, '2026-01-01 00:00:00')"),
                {"id": id_, "target": target})
    upgrade_database(engine)
    with engine.connect() as connection:
        assert connection.execute(text(
            "SELECT id FROM rule_set_versions WHERE is_active")).scalars().all() == [3]
    engine.dispose()


def test_an_actual_stored_before_its_date_was_kept_stays_undated(tmp_path):
    """0018: an actual from before bidhub kept when it became known has no date, and so
    counts at every moment, as it did."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    migrated_to(engine, "0017")
    with engine.begin() as connection:
        add_branch_and_rep(connection, "Rep")
        connection.execute(text(
            "INSERT INTO monthly_forecasts (id, rep_id, month, forecast_yuan, actual_yuan) "
            "VALUES (1, 1, '2025-12-01', 100, 90)"))
    upgrade_database(engine)
    with engine.connect() as connection:
        assert connection.execute(text(
            "SELECT actual_yuan, actual_known_at FROM monthly_forecasts")).one() == (90, None)
    engine.dispose()
