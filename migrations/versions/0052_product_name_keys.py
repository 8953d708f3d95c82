"""products: no two products of one supplier on its list read alike (大凉山苦荞茶, 大凉山　苦荞茶, 大凉山‍苦荞茶)

Revision ID: 0052
Revises: 0051
Create Date: 2026-11-29 12:15:00

A cart, an order and a receipt show a product by its name alone; a co-op's products whose names differ only in
full-width forms, case, spaces or invisible characters were read as one. The new `name_key` column holds
`shop.fields.name_key(name)` (as a store's and a supplier's, 0048 and 0051), filled in Python in batches by id, and is
unique per supplier among the products not archived (an archived product's name may be taken by its successor, a
product whose unit or net weight differ). If a supplier's products already read alike, the upgrade stops naming them,
for the co-op or an admin to rename or archive one; nothing is renamed for them.
"""
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from shop.fields import name_key

revision = '0052'
down_revision = '0051'
branch_labels = None
depends_on = None

BATCH = 500
LISTED = "status <> 'archived'"
PRODUCTS = sa.table("products", sa.column("id", sa.Integer), sa.column("name", sa.String),
                    sa.column("supplier_id", sa.Integer), sa.column("status", sa.String),
                    sa.column("name_key", sa.Text))


def upgrade():
    conn = op.get_bind()
    named = defaultdict(list)
    for row in conn.execute(sa.select(PRODUCTS.c.supplier_id, PRODUCTS.c.name)
                            .where(PRODUCTS.c.status != "archived").order_by(PRODUCTS.c.id)):
        named[(row.supplier_id, name_key(row.name))].append(row.name)
    alike = [(supplier_id, names) for (supplier_id, _), names in named.items() if len(names) > 1]
    if alike:
        raise RuntimeError("Products of one supplier read alike; rename or archive all but one of each, then upgrade "
                           "again: " + "; ".join(f"supplier {supplier_id}: {' / '.join(names)}"
                                                 for supplier_id, names in alike))
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("name_key", sa.Text(), nullable=True))
    last = 0
    while rows := conn.execute(sa.select(PRODUCTS.c.id, PRODUCTS.c.name).where(PRODUCTS.c.id > last)
                               .order_by(PRODUCTS.c.id).limit(BATCH)).all():
        conn.execute(sa.update(PRODUCTS).where(PRODUCTS.c.id == sa.bindparam("row_id"))
                     .values(name_key=sa.bindparam("key")),
                     [{"row_id": row.id, "key": name_key(row.name)} for row in rows])
        last = rows[-1].id
    with op.batch_alter_table("products") as batch:
        batch.alter_column("name_key", existing_type=sa.Text(), nullable=False)
        batch.create_index("uq_products_supplier_name_key", ["supplier_id", "name_key"], unique=True,
                           postgresql_where=sa.text(LISTED), sqlite_where=sa.text(LISTED))


def downgrade():
    with op.batch_alter_table("products") as batch:
        batch.drop_index("uq_products_supplier_name_key")
        batch.drop_column("name_key")
