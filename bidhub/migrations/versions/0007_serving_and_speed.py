"""serving and speed: the scheduler's lease (one active scheduler among many processes) and
stored track-record snapshots (a rep's history as the metrics read it)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 07:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'scheduler_leases',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=200), nullable=False),
        sa.Column('acquired_at', sa.DateTime(), nullable=False),
        sa.Column('heartbeat_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduler_leases')),
    )
    op.create_table(
        'track_record_snapshots',
        sa.Column('rep_id', sa.Integer(), nullable=False),
        sa.Column('history', sa.JSON(), nullable=True),
        sa.Column('version', sa.Integer(), server_default='0', nullable=False),
        sa.Column('refreshed_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['rep_id'], ['users.id'],
                                name=op.f('fk_track_record_snapshots_rep_id_users')),
        sa.PrimaryKeyConstraint('rep_id', name=op.f('pk_track_record_snapshots')),
    )


def downgrade() -> None:
    op.drop_table('track_record_snapshots')
    op.drop_table('scheduler_leases')
