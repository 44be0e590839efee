"""first day: branch names and activity, a user's language, saved import mappings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 01:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('branches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_zh', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('is_active', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=16), nullable=True))
    op.create_table(
        'import_mappings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('headers_key', sa.String(length=64), nullable=False),
        sa.Column('headers', sa.JSON(), nullable=False),
        sa.Column('columns', sa.JSON(), nullable=False),
        sa.Column('acknowledged', sa.JSON(), nullable=False),
        sa.Column('saved_by_id', sa.Integer(), nullable=True),
        sa.Column('saved_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['saved_by_id'], ['users.id'],
                                name=op.f('fk_import_mappings_saved_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_import_mappings')),
        sa.UniqueConstraint('kind', 'headers_key', name=op.f('uq_import_mappings_kind')),
    )


def downgrade() -> None:
    op.drop_table('import_mappings')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('locale')
    with op.batch_alter_table('branches', schema=None) as batch_op:
        batch_op.drop_column('is_active')
        batch_op.drop_column('name_zh')
