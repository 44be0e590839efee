"""indexes of lower(external_id) on accounts, opportunities and incidents: imports match an
external id in any case (KA-3001, ka-3001), found by index rather than by reading the table

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TABLES = ('accounts', 'opportunities', 'accountability_incidents')


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f'ix_{table}_external_id_lower', table, [sa.text('lower(external_id)')],
                        unique=False)


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f'ix_{table}_external_id_lower', table_name=table)
