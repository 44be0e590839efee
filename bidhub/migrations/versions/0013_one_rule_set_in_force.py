"""at most one rule set in force: two admins adopting at the same moment on PostgreSQL could
both mark their version active, and new rounds then took either

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database that went through such a race keeps the version adopted last (by the
    # audit trail; the newest version where none was audited) and the others step down.
    connection = op.get_bind()
    active = connection.execute(sa.text(
        "SELECT id FROM rule_set_versions WHERE is_active")).scalars().all()
    if len(active) > 1:
        adopted = dict(connection.execute(sa.text(
            "SELECT target, max(id) FROM audit_events WHERE action = 'rules.adopted' "
            "GROUP BY target")).all())
        keep = max(active, key=lambda id_: (adopted.get(f"rule_set:{id_}", 0), id_))
        connection.execute(sa.text(
            "UPDATE rule_set_versions SET is_active = :off WHERE is_active AND id <> :keep"),
            {"off": False, "keep": keep})
    op.create_index('uq_rule_set_versions_active', 'rule_set_versions', ['is_active'],
                    unique=True, sqlite_where=sa.text('is_active'),
                    postgresql_where=sa.text('is_active'))


def downgrade() -> None:
    op.drop_index('uq_rule_set_versions_active', table_name='rule_set_versions')
