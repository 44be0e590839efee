"""who asked for a transfer that someone else decided: a sponsored transfer is decided by the
sponsor who accepts it (or an admin standing in), and the filing names the manager who asked
beside them

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch copy: copying the table on SQLite would drop the
    # triggers that keep filings append-only. SQLite takes the foreign key only inside the
    # column's own definition.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE filings ADD COLUMN requested_by_id INTEGER '
                   'CONSTRAINT fk_filings_requested_by_id_users REFERENCES users (id)')
    else:
        op.add_column('filings', sa.Column('requested_by_id', sa.Integer(), nullable=True))
        op.create_foreign_key(op.f('fk_filings_requested_by_id_users'), 'filings', 'users',
                              ['requested_by_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('filings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_filings_requested_by_id_users'),
                                 type_='foreignkey')
        batch_op.drop_column('requested_by_id')
