"""when each monthly forecast's actual became known to bidhub (the CRM import that brought
it), so that the track record at an earlier moment reads the month without it

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 07:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No backfill: an actual stored before this revision has no known date, and one without
    # a date counts at every moment, as it did.
    with op.batch_alter_table('monthly_forecasts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actual_known_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('monthly_forecasts', schema=None) as batch_op:
        batch_op.drop_column('actual_known_at')
