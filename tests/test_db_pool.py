"""PostgreSQL's pooled connections: kept while the server keeps them, replaced when it ends them."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bidhub.db import engine_of


def backend_pids(engine) -> set[int]:
    """The server processes behind the connections the pool holds now."""
    connections = [engine.connect() for _ in range(engine.pool.checkedin())]
    try:
        return {connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
                for connection in connections}
    finally:
        for connection in connections:
            connection.close()


def terminate(url, pids: set[int]) -> None:
    """End those server processes, as a restart or a crash of the server would."""
    admin = create_engine(url, poolclass=NullPool)
    try:
        with admin.connect() as connection:
            for pid in pids:
                # Waits (up to 5 s) until the process is gone, so its socket is closed.
                assert connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"),
                                          {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


@pytest.fixture
def postgres_app(app, backend):
    if backend != "postgresql":
        pytest.skip("SQLite has no server to lose a connection to")
    return app


def test_a_healthy_pooled_connection_is_reused(postgres_app):
    engine = engine_of(postgres_app)
    with engine.connect() as connection:
        first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() == first


def test_connections_the_server_ended_do_not_fail_requests(postgres_app, client):
    engine = engine_of(postgres_app)
    assert client.get("/healthz").status_code == 200
    ended = backend_pids(engine)
    assert ended
    terminate(engine.url, ended)

    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["database"] == {"ok": True}
    assert backend_pids(engine).isdisjoint(ended)
