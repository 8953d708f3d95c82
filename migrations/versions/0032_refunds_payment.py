"""refunds: the payment a return gives back

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-28 00:10:00

A payment that could not be allocated was refunded at the provider inside the event's transaction, under the
order's lock (and the stock rows its failed allocation had locked). Its return is now a pending refund committed
with the event and asked of the provider afterwards, like any other refund; the refund names the payment it gives
back, whose intent the provider is asked to refund. Returns made before this keep NULL (they were settled at once).
"""
import sqlalchemy as sa
from alembic import op

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("payment_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_refunds_payment_id_payments"), "payments", ["payment_id"], ["id"])


def downgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.drop_constraint(op.f("fk_refunds_payment_id_payments"), type_="foreignkey")
        batch.drop_column("payment_id")
