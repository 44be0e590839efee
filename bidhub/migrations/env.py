"""Alembic environment: runs on the connection bidhub hands over, or on BIDHUB_DATABASE_URL."""

from __future__ import annotations

from alembic import context

from bidhub.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from bidhub import create_app
        from bidhub.db import engine_of

        engine = engine_of(create_app())
        with engine.begin() as new_connection:
            context.configure(connection=new_connection, target_metadata=target_metadata,
                              render_as_batch=True)
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True)
    context.run_migrations()


run_migrations()
