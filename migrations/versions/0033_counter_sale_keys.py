"""orders: a counter sale keeps the till's Idempotency-Key, one sale per store and key for good

Revision ID: 0033
Revises: 0032
Create Date: 2026-11-28 00:40:00

The idempotency layer keeps a key 24 hours, but a till's queued offline sale is accepted up to 72 hours after it
was made: a queue resent after a weekend made the same sale twice. The counter sale's order now keeps its key, unique
per store, with the fingerprint of the request that made it (as the idempotency layer keeps it): a resend of a key
whose sale exists answers that sale, and another request under that key is refused. Counter sales made before this
keep NULL.
"""
import sqlalchemy as sa
from alembic import op

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("idempotency_hash", sa.String(length=64), nullable=True))
        batch.create_unique_constraint("uq_orders_store_key", ["store_id", "idempotency_key"])


def downgrade():
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint("uq_orders_store_key", type_="unique")
        batch.drop_column("idempotency_hash")
        batch.drop_column("idempotency_key")
