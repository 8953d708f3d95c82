"""products: the search keys of a name leave out the marks that show nothing (variation selectors, grapheme joiner)

Revision ID: 0055
Revises: 0054
Create Date: 2026-11-29 14:45:00

`q` and a name's stored search keys (`name_folded`, `name_pinyin`, `name_initials`) are now folded without the marks
that show nothing of their own (`shop.fields._UNREAD_MARKS`), as a name's identity (`name_key`) already was: a name
pasted with a variation selector between its characters was not found by the name as it reads. The keys of the
names that hold such a mark are computed again, in Python, in batches by id; the others do not change.
"""
import sqlalchemy as sa
from alembic import op

from catalog.service import pinyin_keys
from shop.fields import name_search_key

revision = '0055'
down_revision = '0054'
branch_labels = None
depends_on = None

BATCH = 500
PRODUCTS = sa.table("products", sa.column("id", sa.Integer), sa.column("name", sa.String),
                    sa.column("name_folded", sa.Text), sa.column("name_pinyin", sa.String),
                    sa.column("name_initials", sa.String))


def upgrade():
    conn = op.get_bind()
    last = 0
    while rows := conn.execute(sa.select(PRODUCTS.c.id, PRODUCTS.c.name, PRODUCTS.c.name_folded)
                               .where(PRODUCTS.c.id > last).order_by(PRODUCTS.c.id).limit(BATCH)).all():
        changed = []
        for row in rows:
            if name_search_key(row.name) != row.name_folded:
                pinyin, initials = pinyin_keys(row.name)
                changed.append({"row_id": row.id, "folded": name_search_key(row.name), "pinyin": pinyin,
                                "initials": initials})
        if changed:
            conn.execute(sa.update(PRODUCTS).where(PRODUCTS.c.id == sa.bindparam("row_id"))
                         .values(name_folded=sa.bindparam("folded"), name_pinyin=sa.bindparam("pinyin"),
                                 name_initials=sa.bindparam("initials")), changed)
        last = rows[-1].id


def downgrade():
    pass  # the keys without the marks find what the old ones found, and more
