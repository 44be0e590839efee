"""After the demo is built, PostgreSQL's tables are vacuumed and their planner statistics
measured, as autovacuum would later; SQLite's are left alone (`refresh_planner_statistics`,
the demo's last step)."""

from __future__ import annotations

from sqlalchemy import inspect, text

from bidhub.db import refresh_planner_statistics


def test_tables_are_vacuumed_and_measured_on_postgresql_only(session, backend):
    refresh_planner_statistics(session)
    if backend == "postgresql":
        unmeasured = session.execute(text(
            "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NULL "
            "OR last_vacuum IS NULL")).scalars().all()
        assert unmeasured == []
    else:
        assert "sqlite_stat1" not in inspect(session.connection()).get_table_names()


def test_postgresql_s_analyze_is_committed_and_sqlite_s_read_is_left_alone(session, backend):
    session.execute(text("SELECT 1"))
    refresh_planner_statistics(session)
    assert session.in_transaction() == (backend == "sqlite")
