"""a new round's one-time form key: the New round form sent twice (a double click, the
browser resending) creates one draft round

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('submission_key', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_rounds_submission_key'),
                                          ['submission_key'])


def downgrade() -> None:
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_rounds_submission_key'), type_='unique')
        batch_op.drop_column('submission_key')
