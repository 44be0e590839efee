"""appeals and the book of accounts: the standstill window, appeals, cancellations, executives
and sponsors as people, sponsored transfers waiting for confirmation, loss reviews due from the
rep, and incidents with page area, evidence and a due date

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 04:30:00
"""

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# Imported incidents had no due date; they get the default explanation period from when seen.
INCIDENT_EXPLANATION_DAYS = 7


def upgrade() -> None:
    op.create_table(
        'appeals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('listing_id', sa.Integer(), nullable=False),
        sa.Column('appellant_id', sa.Integer(), nullable=False),
        sa.Column('ground', sa.Text(), nullable=False),
        sa.Column('filed_at', sa.DateTime(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('answer', sa.Text(), nullable=False),
        sa.Column('answered_by_id', sa.Integer(), nullable=True),
        sa.Column('answered_at', sa.DateTime(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['answered_by_id'], ['users.id'],
                                name=op.f('fk_appeals_answered_by_id_users')),
        sa.ForeignKeyConstraint(['appellant_id'], ['users.id'],
                                name=op.f('fk_appeals_appellant_id_users')),
        sa.ForeignKeyConstraint(['listing_id'], ['listings.id'],
                                name=op.f('fk_appeals_listing_id_listings')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_appeals')),
        sa.UniqueConstraint('listing_id', 'appellant_id', name=op.f('uq_appeals_listing_id')),
    )
    with op.batch_alter_table('appeals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appeals_appellant_id'), ['appellant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeals_listing_id'), ['listing_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeals_status'), ['status'], unique=False)

    op.create_table(
        'transfer_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('from_rep_id', sa.Integer(), nullable=True),
        sa.Column('to_rep_id', sa.Integer(), nullable=False),
        sa.Column('sponsor_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('review_text', sa.Text(), nullable=False),
        sa.Column('requested_by_id', sa.Integer(), nullable=False),
        sa.Column('requested_at', sa.DateTime(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('answered_by_id', sa.Integer(), nullable=True),
        sa.Column('answered_at', sa.DateTime(), nullable=True),
        sa.Column('answer_note', sa.Text(), nullable=False),
        sa.Column('stood_in', sa.Boolean(), nullable=False),
        sa.Column('filing_seq', sa.Integer(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_transfer_requests_account_id_accounts')),
        sa.ForeignKeyConstraint(['answered_by_id'], ['users.id'],
                                name=op.f('fk_transfer_requests_answered_by_id_users')),
        sa.ForeignKeyConstraint(['filing_seq'], ['filings.seq'],
                                name=op.f('fk_transfer_requests_filing_seq_filings')),
        sa.ForeignKeyConstraint(['from_rep_id'], ['users.id'],
                                name=op.f('fk_transfer_requests_from_rep_id_users')),
        sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'],
                                name=op.f('fk_transfer_requests_requested_by_id_users')),
        sa.ForeignKeyConstraint(['sponsor_id'], ['users.id'],
                                name=op.f('fk_transfer_requests_sponsor_id_users')),
        sa.ForeignKeyConstraint(['to_rep_id'], ['users.id'],
                                name=op.f('fk_transfer_requests_to_rep_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_transfer_requests')),
    )
    with op.batch_alter_table('transfer_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfer_requests_account_id'), ['account_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_transfer_requests_sponsor_id'), ['sponsor_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_transfer_requests_status'), ['status'], unique=False)

    with op.batch_alter_table('account_reviews', schema=None) as batch_op:
        batch_op.add_column(sa.Column('filing_seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=False,
                                      server_default='due'))
        batch_op.add_column(sa.Column('due_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('what_happened', sa.Text(), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('do_differently', sa.Text(), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('submitted_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('manager_comment', sa.Text(), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('closed_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='1'))
        batch_op.alter_column('written_by_id', existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_index(batch_op.f('ix_account_reviews_status'), ['status'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_account_reviews_closed_by_id_users'), 'users',
                                    ['closed_by_id'], ['id'])
    # Reviews written before this revision were management's own, complete when written.
    op.execute("UPDATE account_reviews SET status = 'closed', closed_at = created_at, "
               "closed_by_id = written_by_id")

    with op.batch_alter_table('accountability_incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('page_area', sa.String(length=24), nullable=False,
                                      server_default='home_page'))
        batch_op.add_column(sa.Column('evidence_url', sa.String(length=500), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('evidence_file', sa.String(length=255), nullable=False,
                                      server_default=''))
    connection = op.get_bind()
    incidents = sa.table('accountability_incidents', sa.column('id', sa.Integer()),
                         sa.column('seen_at', sa.DateTime()),
                         sa.column('explanation_due_at', sa.DateTime()))
    undated = connection.execute(sa.select(incidents.c.id, incidents.c.seen_at)
                                 .where(incidents.c.explanation_due_at.is_(None))).all()
    for incident_id, seen_at in undated:
        connection.execute(incidents.update().where(incidents.c.id == incident_id).values(
            explanation_due_at=seen_at + timedelta(days=INCIDENT_EXPLANATION_DAYS)))

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sponsor_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_accounts_sponsor_id'), ['sponsor_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_accounts_sponsor_id_users'), 'users',
                                    ['sponsor_id'], ['id'])

    with op.batch_alter_table('filings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('appeals', sa.JSON(), nullable=True))

    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('confirmation_note', sa.Text(), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('confirmation_stood_in', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('applied_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('cancelled_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('cancelled_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cancel_reason', sa.Text(), nullable=False,
                                      server_default=''))
        batch_op.create_foreign_key(batch_op.f('fk_listings_cancelled_by_id_users'), 'users',
                                    ['cancelled_by_id'], ['id'])

    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('standstill_ends_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('cancelled_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('cancelled_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cancel_reason', sa.Text(), nullable=False,
                                      server_default=''))
        batch_op.create_foreign_key(batch_op.f('fk_rounds_cancelled_by_id_users'), 'users',
                                    ['cancelled_by_id'], ['id'])

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('executive_title', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('executive_title')
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_rounds_cancelled_by_id_users'), type_='foreignkey')
        batch_op.drop_column('cancel_reason')
        batch_op.drop_column('cancelled_by_id')
        batch_op.drop_column('cancelled_at')
        batch_op.drop_column('standstill_ends_at')
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_listings_cancelled_by_id_users'),
                                 type_='foreignkey')
        for column in ('cancel_reason', 'cancelled_by_id', 'cancelled_at', 'applied_at',
                       'confirmation_stood_in', 'confirmation_note'):
            batch_op.drop_column(column)
    with op.batch_alter_table('filings', schema=None) as batch_op:
        batch_op.drop_column('appeals')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_accounts_sponsor_id_users'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_accounts_sponsor_id'))
        batch_op.drop_column('sponsor_id')
    with op.batch_alter_table('accountability_incidents', schema=None) as batch_op:
        for column in ('evidence_file', 'evidence_url', 'page_area'):
            batch_op.drop_column(column)
    with op.batch_alter_table('account_reviews', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_account_reviews_closed_by_id_users'),
                                 type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_account_reviews_status'))
        for column in ('version', 'closed_at', 'closed_by_id', 'manager_comment', 'submitted_at',
                       'do_differently', 'what_happened', 'due_at', 'status', 'filing_seq'):
            batch_op.drop_column(column)
    op.drop_table('transfer_requests')
    op.drop_table('appeals')
