"""notifications: the inbox, its events, the delivery outbox, and a user's e-mail address

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 01:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=254), nullable=True))
    op.create_table(
        'notification_events',
        sa.Column('key', sa.String(length=160), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_notification_events')),
    )
    op.create_table(
        'notifications',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('recipient_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=48), nullable=False),
        sa.Column('event_key', sa.String(length=160), nullable=False),
        sa.Column('msgid', sa.Text(), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('link_endpoint', sa.String(length=64), nullable=False),
        sa.Column('link_args', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('read_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['recipient_id'], ['users.id'],
                                name=op.f('fk_notifications_recipient_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
        sa.UniqueConstraint('recipient_id', 'event_key',
                            name=op.f('uq_notifications_recipient_id')),
    )
    op.create_index('ix_notifications_recipient_read', 'notifications',
                    ['recipient_id', 'read_at'], unique=False)
    op.create_table(
        'notification_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('notification_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('address', sa.String(length=254), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['notification_id'], ['notifications.id'],
                                name=op.f('fk_notification_deliveries_notification_id_notifications')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_deliveries')),
    )
    op.create_index(op.f('ix_notification_deliveries_notification_id'),
                    'notification_deliveries', ['notification_id'], unique=False)
    op.create_index('ix_notification_deliveries_due', 'notification_deliveries',
                    ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_notification_deliveries_due', table_name='notification_deliveries')
    op.drop_index(op.f('ix_notification_deliveries_notification_id'),
                  table_name='notification_deliveries')
    op.drop_table('notification_deliveries')
    op.drop_index('ix_notifications_recipient_read', table_name='notifications')
    op.drop_table('notifications')
    op.drop_table('notification_events')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('email')
