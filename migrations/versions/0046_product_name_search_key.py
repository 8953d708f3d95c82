"""products: a search key of the name read as `q` is (NFKC, lower case), so mixed queries find full-width names

Revision ID: 0046
Revises: 0045
Create Date: 2026-11-29 04:45:00

`q` is read in NFKC, but a query mixing Chinese with letters or digits (苦荞ABC, 盐源苹果5kg) was matched against the
name as typed, so a name written with a Chinese keyboard's full-width forms (苦荞ＡＢＣ) was missed. The new
`name_folded` column holds `shop.fields.name_search_key(name)` (folded, no spaces, as `q`'s words are), filled
in Python in batches by id, and replaces the name in the trigram search index.
"""
import sqlalchemy as sa
from alembic import op

from shop.fields import name_search_key

revision = '0046'
down_revision = '0045'
branch_labels = None
depends_on = None

BATCH = 500
PRODUCTS = sa.table("products", sa.column("id", sa.Integer), sa.column("name", sa.String),
                    sa.column("name_folded", sa.Text))


def _search_index(columns: list[str]) -> None:
    """The `q` search index over `columns`: trigram GIN on PostgreSQL, a plain index on SQLite (as in 0013)."""
    op.create_index("ix_products_name_search", "products", columns, unique=False, postgresql_using="gin",
                    postgresql_ops={column: "gin_trgm_ops" for column in columns},
                    postgresql_with={"fastupdate": "off"})


def upgrade():
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("name_folded", sa.Text(), nullable=True))
    conn = op.get_bind()
    last = 0
    while rows := conn.execute(sa.select(PRODUCTS.c.id, PRODUCTS.c.name).where(PRODUCTS.c.id > last)
                               .order_by(PRODUCTS.c.id).limit(BATCH)).all():
        conn.execute(sa.update(PRODUCTS).where(PRODUCTS.c.id == sa.bindparam("row_id"))
                     .values(name_folded=sa.bindparam("folded")),
                     [{"row_id": row.id, "folded": name_search_key(row.name)} for row in rows])
        last = rows[-1].id
    with op.batch_alter_table("products") as batch:
        batch.alter_column("name_folded", existing_type=sa.Text(), nullable=False)
    op.drop_index("ix_products_name_search", table_name="products")
    _search_index(["name_folded", "name_pinyin", "name_initials"])


def downgrade():
    op.drop_index("ix_products_name_search", table_name="products")
    _search_index(["name", "name_pinyin", "name_initials"])
    with op.batch_alter_table("products") as batch:
        batch.drop_column("name_folded")
