"""suppliers: no two supplier names read alike (大凉山苦荞茶合作社, 大凉山　苦荞茶合作社, 大凉山‍苦荞茶合作社)

Revision ID: 0051
Revises: 0050
Create Date: 2026-11-29 12:00:00

Product and trace pages, statements and payout lists show a supplier by its name; names that differ only in
full-width forms, case, spaces or invisible characters were two suppliers read as one. The new `name_key` column holds
`shop.fields.name_key(name)` (as a store's, 0048) and is unique. If suppliers already have names that read alike, the
upgrade stops naming them, for an admin to rename one; nothing is renamed for them.
"""
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from shop.fields import name_key

revision = '0051'
down_revision = '0050'
branch_labels = None
depends_on = None

SUPPLIERS = sa.table("suppliers", sa.column("id", sa.Integer), sa.column("name", sa.String),
                     sa.column("name_key", sa.Text))


def upgrade():
    conn = op.get_bind()
    rows = conn.execute(sa.select(SUPPLIERS.c.id, SUPPLIERS.c.name).order_by(SUPPLIERS.c.id)).all()
    named = defaultdict(list)
    for row in rows:
        named[name_key(row.name)].append(row.name)
    alike = [names for names in named.values() if len(names) > 1]
    if alike:
        raise RuntimeError("Supplier names read alike; rename all but one of each, then upgrade again: "
                           + "; ".join(" / ".join(names) for names in alike))
    with op.batch_alter_table("suppliers") as batch:
        batch.add_column(sa.Column("name_key", sa.Text(), nullable=True))
    if rows:
        conn.execute(sa.update(SUPPLIERS).where(SUPPLIERS.c.id == sa.bindparam("row_id"))
                     .values(name_key=sa.bindparam("key")),
                     [{"row_id": row.id, "key": name_key(row.name)} for row in rows])
    with op.batch_alter_table("suppliers") as batch:
        batch.alter_column("name_key", existing_type=sa.Text(), nullable=False)
        batch.create_unique_constraint("uq_suppliers_name_key", ["name_key"])


def downgrade():
    with op.batch_alter_table("suppliers") as batch:
        batch.drop_constraint("uq_suppliers_name_key", type_="unique")
        batch.drop_column("name_key")
