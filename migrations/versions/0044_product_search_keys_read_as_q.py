"""products: the pinyin and initials search keys of a name with full-width letters or digits read them as ASCII

Revision ID: 0044
Revises: 0043
Create Date: 2026-11-29 02:40:00

`q` is read in NFKC (ＡＢＣ is ABC) but the keys were built from the name as typed, so a name written with a
Chinese keyboard's full-width letters was found by none of its spellings. The keys are rebuilt with
`catalog.service.pinyin_keys`, in Python and in batches by id; only rows whose keys change are written. The old
keys were unsearchable: the downgrade changes nothing.
"""
import sqlalchemy as sa
from alembic import op

from catalog.service import pinyin_keys

revision = '0044'
down_revision = '0043'
branch_labels = None
depends_on = None

BATCH = 500
PRODUCTS = sa.table("products", sa.column("id", sa.Integer), sa.column("name", sa.String),
                    sa.column("name_pinyin", sa.String), sa.column("name_initials", sa.String))


def upgrade():
    conn = op.get_bind()
    last = 0
    while rows := conn.execute(sa.select(PRODUCTS.c.id, PRODUCTS.c.name, PRODUCTS.c.name_pinyin,
                                         PRODUCTS.c.name_initials)
                               .where(PRODUCTS.c.id > last).order_by(PRODUCTS.c.id).limit(BATCH)).all():
        rebuilt = [{"row_id": row.id, "full": full, "initials": initials} for row in rows
                   for full, initials in [pinyin_keys(row.name)]
                   if (full, initials) != (row.name_pinyin, row.name_initials)]
        if rebuilt:
            conn.execute(sa.update(PRODUCTS).where(PRODUCTS.c.id == sa.bindparam("row_id"))
                         .values(name_pinyin=sa.bindparam("full"), name_initials=sa.bindparam("initials")), rebuilt)
        last = rows[-1].id


def downgrade():
    pass
