"""refunds: a status (pending while the provider is asked), the provider's word, the events held; outbox by refund;
payments: their dispute

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-27 15:30:00

A refund at the payment provider is committed `pending` (its units held, its events held) before the provider is
called with the key `refund-<id>`, so a lost answer is asked again with the same key instead of refunding twice;
`provider_status` keeps what the provider last said (a refund it later failed is shown). Listing an order's refunds
reads their outbox events by refund id, now through an index. A payment keeps Stripe's latest word on a dispute of it
(id, status, reason, amount) for admins to see.
"""
import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("status", sa.String(length=10), server_default="succeeded", nullable=False))
        batch.add_column(sa.Column("provider_status", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("held_events", sa.JSON(), nullable=True))
        batch.create_check_constraint(op.f("ck_refunds_status"), "status IN ('pending', 'succeeded', 'failed')")
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("dispute_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("dispute_status", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("dispute_reason", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("dispute_amount_fen", sa.BigInteger(), nullable=True))
    op.create_index("ix_refunds_pending", "refunds", ["id"], postgresql_where=sa.text("status = 'pending'"),
                    sqlite_where=sa.text("status = 'pending'"))
    op.create_index("ix_outbox_events_refund_id", "outbox_events", ["refund_id"],
                    postgresql_where=sa.text("refund_id IS NOT NULL"), sqlite_where=sa.text("refund_id IS NOT NULL"))


def downgrade():
    op.drop_index("ix_outbox_events_refund_id", table_name="outbox_events")
    op.drop_index("ix_refunds_pending", table_name="refunds")
    with op.batch_alter_table("payments") as batch:
        for column in ("dispute_amount_fen", "dispute_reason", "dispute_status", "dispute_id"):
            batch.drop_column(column)
    with op.batch_alter_table("refunds") as batch:
        batch.drop_constraint(op.f("ck_refunds_status"), type_="check")
        batch.drop_column("held_events")
        batch.drop_column("provider_status")
        batch.drop_column("status")
