"""the filing register's id: a random value kept as an instance marker and written into each
checkpoint line, so that databases sharing one checkpoint file are each checked against their
own lines

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 22:45:00
"""

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

MARKER = 'ledger_register'


def upgrade() -> None:
    markers = sa.table('instance_markers', sa.column('name', sa.String),
                       sa.column('value', sa.Text), sa.column('created_at', sa.DateTime))
    connection = op.get_bind()
    if connection.scalar(sa.select(markers.c.name).where(markers.c.name == MARKER)) is None:
        op.execute(markers.insert().values(name=MARKER, value=secrets.token_hex(16),
                                           created_at=datetime.now(UTC).replace(tzinfo=None)))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM instance_markers WHERE name = 'ledger_register'"))
