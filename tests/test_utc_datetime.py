"""Timestamps are stored as naive UTC and read back aware, in UTC, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, text
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
