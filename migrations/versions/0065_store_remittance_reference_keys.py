"""store remittances: a deposit's bank reference is one spelling (`RЕF-1` with a Cyrillic Е is no other deposit)

Revision ID: 0065
Revises: 0064
Create Date: 2026-11-29 21:10:00

A remittance's reference was an identifier of any script, so `𝐑EF-1`, `RЕF-1` (Cyrillic Е) and `REF-1` recorded one
deposit three times, and references differing only in their spaces twice. A reference now holds ASCII and Chinese
only (`shop.fields.refused_in_bank_references`), spelled by `shop.fields.bank_reference`; the new `reference_key`
column holds that spelling and is unique per store instead of the recorded reference. The rows already recorded keep
their reference as recorded (remittances are append-only: their trigger is set aside for the key alone). If two of a
store's recorded references already have one spelling, the upgrade stops naming them, for the deposit recorded twice
to be looked into; nothing is changed for them.
"""
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from shop.fields import bank_reference

revision = '0065'
down_revision = '0064'
branch_labels = None
depends_on = None

REMITTANCES = sa.table("store_remittances", sa.column("id", sa.Integer), sa.column("store_id", sa.Integer),
                       sa.column("reference", sa.String), sa.column("reference_key", sa.String))
TRIGGER = "store_remittances_append_only"


def upgrade():
    conn = op.get_bind()
    rows = conn.execute(sa.select(REMITTANCES.c.id, REMITTANCES.c.store_id, REMITTANCES.c.reference)
                        .order_by(REMITTANCES.c.id)).all()
    spelled = defaultdict(list)
    for row in rows:
        spelled[row.store_id, bank_reference(row.reference)].append(row.id)
    alike = {key: ids for key, ids in spelled.items() if len(ids) > 1}
    if alike:
        raise RuntimeError("Store remittances record one deposit twice; look into them, then upgrade again: "
                           + "; ".join(f"store {store_id} {key} (remittances {', '.join(map(str, ids))})"
                                       for (store_id, key), ids in alike.items()))
    with op.batch_alter_table("store_remittances") as batch:
        batch.drop_constraint("uq_store_remittances_store_reference", type_="unique")
        batch.add_column(sa.Column("reference_key", sa.String(length=64), nullable=True))
    postgresql = conn.dialect.name == "postgresql"
    if rows:
        if postgresql:
            op.execute(f"ALTER TABLE store_remittances DISABLE TRIGGER {TRIGGER}")
        conn.execute(sa.update(REMITTANCES).where(REMITTANCES.c.id == sa.bindparam("row_id"))
                     .values(reference_key=sa.bindparam("key")),
                     [{"row_id": row.id, "key": bank_reference(row.reference)} for row in rows])
        if postgresql:
            op.execute(f"ALTER TABLE store_remittances ENABLE TRIGGER {TRIGGER}")
    with op.batch_alter_table("store_remittances") as batch:
        batch.alter_column("reference_key", existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint("uq_store_remittances_store_reference_key", ["store_id", "reference_key"])


def downgrade():
    with op.batch_alter_table("store_remittances") as batch:
        batch.drop_constraint("uq_store_remittances_store_reference_key", type_="unique")
        batch.drop_column("reference_key")
        batch.create_unique_constraint("uq_store_remittances_store_reference", ["store_id", "reference"])
