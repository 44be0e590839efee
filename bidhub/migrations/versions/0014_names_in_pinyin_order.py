"""names' sort keys on accounts and users: the type-ahead pickers take their first matches in
pinyin order from the database, rather than sorting whichever matches came first

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 14:00:00
"""

import sqlalchemy as sa
from alembic import op

from bidhub.domain.collation import name_sort_bytes

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

# (table, name column, its sort key's column)
COLUMNS = (('accounts', 'name', 'name_sort_key'),
           ('users', 'display_name', 'display_name_sort_key'))


def upgrade() -> None:
    # Left nullable: on SQLite a NOT NULL needs the table copied, which loses the index on
    # lower(external_id). Every name written through the app gets its key (models.py).
    connection = op.get_bind()
    for table, name, key in COLUMNS:
        op.add_column(table, sa.Column(key, sa.LargeBinary(), nullable=True))
        rows = sa.table(table, sa.column('id'), sa.column(name), sa.column(key, sa.LargeBinary()))
        found = connection.execute(sa.select(rows.c.id, rows.c[name])).all()
        if found:
            connection.execute(
                rows.update().where(rows.c.id == sa.bindparam('row_id'))
                .values({key: sa.bindparam('sort_key')}),
                [{'row_id': id_, 'sort_key': name_sort_bytes(value)} for id_, value in found])


def downgrade() -> None:
    for table, _name, key in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column(key)
