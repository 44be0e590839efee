"""Timestamps are stored as naive UTC and read back aware, in UTC, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError

from bidhub.db import engine_of
from bidhub.models import UTCDateTime

BEIJING = timezone(timedelta(hours=8))


def round_trip(app, value):
    """`value` bound as a stored timestamp is, and read back as one."""
    engine = engine_of(app)
    # The parameter as the column type PostgreSQL stores; SQLite keeps the text it is given.
    expression = "CAST(:at AS TIMESTAMP)" if engine.dialect.name == "postgresql" else ":at"
    statement = (text(f"SELECT {expression} AS at")
                 .bindparams(bindparam("at", type_=UTCDateTime()))
                 .columns(at=UTCDateTime()))
    with engine.connect() as connection:
        return connection.execute(statement, {"at": value}).scalar_one()


def test_a_timestamp_comes_back_aware_in_utc_and_equal(app):
    written = datetime(2026, 3, 2, 17, 30, 15, 250_000, tzinfo=BEIJING)
    read = round_trip(app, written)
    assert read == written
    assert read.tzinfo is UTC
    assert read.replace(tzinfo=None) == datetime(2026, 3, 2, 9, 30, 15, 250_000)


def test_a_missing_timestamp_stays_missing(app):
    assert round_trip(app, None) is None


def test_a_naive_timestamp_is_refused(app):
    with pytest.raises(StatementError, match="naive datetime"):
        round_trip(app, datetime(2026, 3, 2, 9, 30))


def reader(dialect):
    """UTCDateTime's reader of a stored value, as SQLAlchemy makes it for `dialect`."""
    return UTCDateTime()._cached_result_processor(dialect, None)


NAIVE = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31))


@given(NAIVE)
def test_sqlite_text_is_read_as_the_utc_time_it_stores(stored):
    text_as_stored = sqlite.DATETIME().bind_processor(sqlite.dialect())(stored)
    read = reader(sqlite.dialect())(text_as_stored)
    assert read == stored.replace(tzinfo=UTC) and read.tzinfo is UTC


@pytest.mark.parametrize("stored", [
    "2026-03-02 09:30:15",  # SQLite's CURRENT_TIMESTAMP
    "2026-03-02T09:30:15.250000",
    "2026-03-02 09:30",
    "2026-03-02",
    "2026-03-02 09:30:15+08:00",  # an offset of its own is replaced, as before
    "2026-03-02 09:30:15Z",
])
def test_other_sqlite_texts_are_read_as_the_dialect_reads_them_in_utc(stored):
    read = reader(sqlite.dialect())(stored)
    assert read == datetime.fromisoformat(stored).replace(tzinfo=UTC)
    assert read.tzinfo is UTC


def test_text_sqlite_cannot_read_is_refused_as_the_dialect_refuses_it():
    with pytest.raises(ValueError):
        reader(sqlite.dialect())("2 March 2026")


@given(NAIVE.map(lambda value: value.replace(fold=1)) | NAIVE)
def test_a_drivers_datetime_is_read_in_utc(stored):
    read = reader(postgresql.dialect())(stored)
    assert read == stored.replace(tzinfo=UTC) and read.tzinfo is UTC
    assert read.fold == stored.fold
