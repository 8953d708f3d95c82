"""orders: a pickup code is unique among the orders waiting at a store

Revision ID: 0041
Revises: 0040
Create Date: 2026-11-28 14:20:00

A paid pickup order's code was drawn at random and checked against the store's waiting orders without a lock, so
two payments at one store committing at the same moment could give two orders one code, and the clerk could hand
over the wrong one. A partial unique index refuses the second, which draws another code.
"""
import sqlalchemy as sa
from alembic import op

revision = '0041'
down_revision = '0040'
branch_labels = None
depends_on = None

WAITING = "status = 'paid' AND pickup_code IS NOT NULL"


def upgrade():
    with op.batch_alter_table("orders") as batch:
        batch.create_index("uq_orders_waiting_pickup_code", ["store_id", "pickup_code"], unique=True,
                           postgresql_where=sa.text(WAITING), sqlite_where=sa.text(WAITING))


def downgrade():
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("uq_orders_waiting_pickup_code")
