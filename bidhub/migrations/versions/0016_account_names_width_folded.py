"""account names as a search reads them (NFKC): a name stored in full-width letters or digits
(ＡＢＣ科技) is found by half-width input (ABC), as a half-width name already was by full-width
input

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 16:40:00
"""

import sqlalchemy as sa
from alembic import op

from bidhub.domain.collation import width_folded

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Left nullable, as the sort keys of 0014: on SQLite a NOT NULL needs the table copied,
    # which loses the index on lower(external_id). Every name written through the app gets
    # its folded form (models.py).
    connection = op.get_bind()
    op.add_column('accounts', sa.Column('name_folded', sa.Text(), nullable=True))
    rows = sa.table('accounts', sa.column('id'), sa.column('name'),
                    sa.column('name_folded', sa.Text()))
    found = connection.execute(sa.select(rows.c.id, rows.c.name)).all()
    if found:
        connection.execute(
            rows.update().where(rows.c.id == sa.bindparam('row_id'))
            .values(name_folded=sa.bindparam('folded')),
            [{'row_id': id_, 'folded': width_folded(name)} for id_, name in found])


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('name_folded')
