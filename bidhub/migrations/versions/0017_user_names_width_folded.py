"""users' display names as a search reads them (NFKC), as accounts' names are (0016): a rep
whose name is stored in full-width letters (ＷＡＮＧ伟) is found by half-width input (wang)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 17:20:00
"""

import sqlalchemy as sa
from alembic import op

from bidhub.domain.collation import width_folded

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Left nullable, as 0014 and 0016 leave theirs: on SQLite a NOT NULL needs the table
    # copied. Every name written through the app gets its folded form (models.py).
    connection = op.get_bind()
    op.add_column('users', sa.Column('display_name_folded', sa.Text(), nullable=True))
    rows = sa.table('users', sa.column('id'), sa.column('display_name'),
                    sa.column('display_name_folded', sa.Text()))
    found = connection.execute(sa.select(rows.c.id, rows.c.display_name)).all()
    if found:
        connection.execute(
            rows.update().where(rows.c.id == sa.bindparam('row_id'))
            .values(display_name_folded=sa.bindparam('folded')),
            [{'row_id': id_, 'folded': width_folded(name)} for id_, name in found])


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('display_name_folded')
