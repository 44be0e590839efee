"""the application counts: blind review of bid applications (reviewers named on a round,
their scores and notes, the review's early close), an opaque review code per bid, and a
rep's ranked preference among their bids in a round

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 10:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_closed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('review_closed_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('review_close_reason', sa.Text(), nullable=False,
                                      server_default=''))
        batch_op.create_foreign_key(batch_op.f('fk_rounds_review_closed_by_id_users'), 'users',
                                    ['review_closed_by_id'], ['id'])
    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_code', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('preference_rank', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_bids_review_code'), ['review_code'])
        batch_op.create_check_constraint(batch_op.f('ck_bids_preference_rank_positive'),
                                         'preference_rank IS NULL OR preference_rank >= 1')
    op.create_table(
        'round_reviewers',
        sa.Column('round_id', sa.Integer(), nullable=False),
        sa.Column('reviewer_id', sa.Integer(), nullable=False),
        sa.Column('named_by_id', sa.Integer(), nullable=False),
        sa.Column('named_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['round_id'], ['rounds.id'],
                                name=op.f('fk_round_reviewers_round_id_rounds')),
        sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'],
                                name=op.f('fk_round_reviewers_reviewer_id_users')),
        sa.ForeignKeyConstraint(['named_by_id'], ['users.id'],
                                name=op.f('fk_round_reviewers_named_by_id_users')),
        sa.PrimaryKeyConstraint('round_id', 'reviewer_id', name=op.f('pk_round_reviewers')),
    )
    op.create_table(
        'application_reviews',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('bid_id', sa.Integer(), nullable=False),
        sa.Column('reviewer_id', sa.Integer(), nullable=False),
        sa.Column('scores', sa.JSON(), nullable=False),
        sa.Column('note', sa.Text(), nullable=False, server_default=''),
        sa.Column('submitted_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['bid_id'], ['bids.id'],
                                name=op.f('fk_application_reviews_bid_id_bids')),
        sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'],
                                name=op.f('fk_application_reviews_reviewer_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_application_reviews')),
        sa.UniqueConstraint('bid_id', 'reviewer_id',
                            name=op.f('uq_application_reviews_bid_id')),
    )
    with op.batch_alter_table('application_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_application_reviews_bid_id'), ['bid_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('application_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_application_reviews_bid_id'))
    op.drop_table('application_reviews')
    op.drop_table('round_reviewers')
    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_bids_preference_rank_positive'), type_='check')
        batch_op.drop_constraint(batch_op.f('uq_bids_review_code'), type_='unique')
        batch_op.drop_column('preference_rank')
        batch_op.drop_column('review_code')
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_rounds_review_closed_by_id_users'),
                                 type_='foreignkey')
        batch_op.drop_column('review_close_reason')
        batch_op.drop_column('review_closed_by_id')
        batch_op.drop_column('review_closed_at')
