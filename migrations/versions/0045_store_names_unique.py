"""stores: no two stores share a name

Revision ID: 0045
Revises: 0044
Create Date: 2026-11-29 02:00:00

Consumers choose a pickup store, and read their receipts, by the store's name; two stores of one name could not be
told apart. If stores already share a name, the upgrade stops naming them, for an admin to rename one; nothing is
renamed for them.
"""
import sqlalchemy as sa
from alembic import op

revision = '0045'
down_revision = '0044'
branch_labels = None
depends_on = None


def upgrade():
    shared = op.get_bind().execute(sa.text(
        "SELECT name, COUNT(*) FROM stores GROUP BY name HAVING COUNT(*) > 1 ORDER BY name")).all()
    if shared:
        raise RuntimeError("Stores share a name; rename all but one of each, then upgrade again: "
                           + "; ".join(f"{name} ({count} stores)" for name, count in shared))
    with op.batch_alter_table("stores") as batch:
        batch.create_unique_constraint("uq_stores_name", ["name"])


def downgrade():
    with op.batch_alter_table("stores") as batch:
        batch.drop_constraint("uq_stores_name", type_="unique")
