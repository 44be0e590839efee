"""/healthz for load balancers: database reachable, migrations current, scheduler heartbeat."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from bidhub.clock import system_now
from bidhub.db import engine_of, migrations_head
from bidhub.models import UTCDateTime
from bidhub.scheduler import LEASE_NAME
from bidhub.web.access import public

blueprint = Blueprint("health", __name__)
HEARTBEAT_AT = text("SELECT holder, heartbeat_at FROM scheduler_leases WHERE name = :name"
                    ).columns(heartbeat_at=UTCDateTime())


def query(connection: Connection, statement, **params) -> Any:
    """The first row of `statement`, or the error's class name: one failed check (a table a
    behind database lacks) must not hide the others, so each ends its own transaction."""
    try:
        return connection.execute(statement, params).first()
    except SQLAlchemyError as error:
        return type(error).__name__
    finally:
        connection.rollback()


def scheduler_check(row: Any) -> dict[str, Any]:
    limit = current_app.config.get("HEALTH_MAX_HEARTBEAT_SECONDS")
    report: dict[str, Any] = {"holder": None, "heartbeat_age_seconds": None,
                              "max_heartbeat_seconds": limit, "ok": limit is None}
    if row is not None and not isinstance(row, str):
        age = (system_now() - row.heartbeat_at).total_seconds()
        report.update(holder=row.holder, heartbeat_age_seconds=round(age, 3),
                      ok=limit is None or age <= limit)
    return report


def health_report() -> dict[str, Any]:
    head = migrations_head()
    try:
        with engine_of(current_app).connect() as connection:
            reachable = query(connection, text("SELECT 1"))
            version = query(connection, text("SELECT version_num FROM alembic_version"))
            lease = query(connection, HEARTBEAT_AT, name=LEASE_NAME)
    except SQLAlchemyError as error:  # the connection itself failed
        reachable = version = lease = type(error).__name__
    database_ok = reachable is not None and not isinstance(reachable, str)
    current = version[0] if version is not None and not isinstance(version, str) else None
    report = {
        "database": {"ok": database_ok} if database_ok else {"ok": False, "error": reachable},
        "migrations": {"ok": database_ok and current == head, "database": current, "head": head},
        "scheduler": scheduler_check(lease),
    }
    healthy = all(part["ok"] for part in report.values())
    return {"status": "ok" if healthy else "unhealthy", **report}


@blueprint.route("/healthz")
@public
def healthz():
    report = health_report()
    response = jsonify(report)
    response.status_code = 200 if report["status"] == "ok" else 503
    response.headers["Cache-Control"] = "no-store"
    return response
