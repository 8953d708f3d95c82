"""products: a name's stored pinyin leaves out the separators `q`'s pinyin leaves out

Revision ID: 0071
Revises: 0070
Create Date: 2026-11-30 00:30:00

`q` typed as ku-qiao, ku·qiao or ku.qiao found nothing where kuqiao found 苦荞: pinyin typed with its syllables parted
now loses the separators (`catalog.service.PINYIN_SEPARATORS`), and so does a name's stored pinyin and initials (a name
with a separator of its own, AB-12号, is ab12hao). The keys of the names whose keys change are computed again, in
Python, in batches by id; the others do not change.
"""
import sqlalchemy as sa
from alembic import op

from catalog.service import pinyin_keys

revision = '0071'
down_revision = '0070'
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
        changed = [{"row_id": row.id, "pinyin": keys[0], "initials": keys[1]} for row in rows
                   if (keys := pinyin_keys(row.name)) != (row.name_pinyin, row.name_initials)]
        if changed:
            conn.execute(sa.update(PRODUCTS).where(PRODUCTS.c.id == sa.bindparam("row_id"))
                         .values(name_pinyin=sa.bindparam("pinyin"), name_initials=sa.bindparam("initials")), changed)
        last = rows[-1].id


def downgrade():
    pass  # the keys without separators find what the old ones found, and more
