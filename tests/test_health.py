"""/healthz: what a load balancer asks, answered without a login, a cookie or a write."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from bidhub import create_app
from bidhub.clock import system_now
from bidhub.db import engine_of, migrations_head
from bidhub.scheduler import Lease


def test_a_migrated_database_is_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    report = response.get_json()
    assert report["status"] == "ok"
    assert report["database"] == {"ok": True}
    assert report["migrations"] == {"ok": True, "database": migrations_head(),
                                    "head": migrations_head()}
    # No scheduler has run yet: reported, and healthy unless a limit is configured.
    assert report["scheduler"] == {"holder": None, "heartbeat_age_seconds": None,
                                   "max_heartbeat_seconds": None, "ok": True}
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def test_a_database_behind_the_code_is_unhealthy(app, client):
    with engine_of(app).begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0006'"))
    response = client.get("/healthz")
    assert response.status_code == 503
    report = response.get_json()
    assert report["status"] == "unhealthy"
    assert report["database"] == {"ok": True}
    assert report["migrations"] == {"ok": False, "database": "0006", "head": migrations_head()}


def test_an_unreachable_database_is_unhealthy(app_config):
    # Nothing listens on port 1: the connection is refused at once.
    app = create_app({**app_config,
                      "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/nothing"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    report = response.get_json()
    assert report["database"] == {"ok": False, "error": "OperationalError"}
    assert report["migrations"]["ok"] is False


def test_the_scheduler_heartbeat_age_and_holder_are_reported(app, client):
    lease = Lease(engine_of(app), "host:123:abcd", 60)
    try:
        assert lease.hold()
        report = client.get("/healthz").get_json()
        assert report["scheduler"]["holder"] == "host:123:abcd"
        assert 0 <= report["scheduler"]["heartbeat_age_seconds"] < 60
        assert report["scheduler"]["ok"] is True
    finally:
        lease.release()


def test_an_old_heartbeat_is_unhealthy_only_when_a_limit_is_configured(app, client):
    stale = Lease(engine_of(app), "stalled", 60, now=lambda: system_now() - timedelta(hours=2))
    try:
        assert stale.hold()
        report = client.get("/healthz").get_json()
        assert report["status"] == "ok"
        assert report["scheduler"]["heartbeat_age_seconds"] >= 7200
        app.config["HEALTH_MAX_HEARTBEAT_SECONDS"] = 120.0
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.get_json()["scheduler"] == {
            "holder": "stalled", "max_heartbeat_seconds": 120.0, "ok": False,
            "heartbeat_age_seconds": response.get_json()["scheduler"]["heartbeat_age_seconds"]}
    finally:
        stale.release()


def test_healthz_answers_get_only(client):
    assert client.post("/healthz").status_code == 405
    assert client.head("/healthz").status_code == 200
