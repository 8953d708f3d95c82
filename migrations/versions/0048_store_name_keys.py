"""stores: no two store names read alike (大良店A, 大良店Ａ, 大良店 a; 店（顺德）, 店(顺德))

Revision ID: 0048
Revises: 0047
Create Date: 2026-11-29 05:30:00

Names that differ only in full-width forms, case, spaces or invisible characters were different names to the unique
constraint of 0045, so staff and consumers picked the wrong store. The new `name_key` column holds
`shop.fields.name_key(name)` and is unique in its place. If stores already have names that read alike, the upgrade
stops naming them, for an admin to rename one; nothing is renamed for them.
"""
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from shop.fields import name_key

revision = '0048'
down_revision = '0047'
branch_labels = None
depends_on = None

STORES = sa.table("stores", sa.column("id", sa.Integer), sa.column("name", sa.String),
                  sa.column("name_key", sa.Text))


def upgrade():
    conn = op.get_bind()
    rows = conn.execute(sa.select(STORES.c.id, STORES.c.name).order_by(STORES.c.id)).all()
    named = defaultdict(list)
    for row in rows:
        named[name_key(row.name)].append(row.name)
    alike = [names for names in named.values() if len(names) > 1]
    if alike:
        raise RuntimeError("Store names read alike; rename all but one of each, then upgrade again: "
                           + "; ".join(" / ".join(names) for names in alike))
    with op.batch_alter_table("stores") as batch:
        batch.add_column(sa.Column("name_key", sa.Text(), nullable=True))
    if rows:
        conn.execute(sa.update(STORES).where(STORES.c.id == sa.bindparam("row_id"))
                     .values(name_key=sa.bindparam("key")),
                     [{"row_id": row.id, "key": name_key(row.name)} for row in rows])
    with op.batch_alter_table("stores") as batch:
        batch.alter_column("name_key", existing_type=sa.Text(), nullable=False)
        batch.create_unique_constraint("uq_stores_name_key", ["name_key"])
        batch.drop_constraint("uq_stores_name", type_="unique")


def downgrade():
    with op.batch_alter_table("stores") as batch:
        batch.create_unique_constraint("uq_stores_name", ["name"])
        batch.drop_constraint("uq_stores_name_key", type_="unique")
        batch.drop_column("name_key")
