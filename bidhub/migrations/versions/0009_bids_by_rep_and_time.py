"""an index of bids by rep and submission time: the flags' reference bids (each rep's latest
bid before a round's deadline) are found by a seek per rep instead of a sort of every bid

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 17:50:00
"""

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_bids_rep_submitted', 'bids', ['rep_id', 'submitted_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_bids_rep_submitted', table_name='bids')
