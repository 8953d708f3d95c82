"""outbox events: `processor_fee`, what the payment processor kept of an order's money

Revision ID: 0038
Revises: 0037
Create Date: 2026-11-28 11:00:00

Stripe's fees (a charge's, a dispute's) never reached the ledger. A charge's event now fetches its balance
transaction and records its fee, and a dispute's lists its own, as one `processor_fee` event each, which the ledger
posts to `platform_costs`.
"""
from alembic import op

revision = '0038'
down_revision = '0037'
branch_labels = None
depends_on = None

KINDS = ("line_paid", "line_refunded", "refund_remainder", "payment_unallocated", "payment_returned")


def _kinds(kinds: tuple[str, ...]) -> str:
    """The kind check over `kinds`."""
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def upgrade():
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_constraint(op.f("ck_outbox_events_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_events_kind"), _kinds((*KINDS, "processor_fee")))


def downgrade():
    """Refused while a `processor_fee` event is kept (the kind check would not hold)."""
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_constraint(op.f("ck_outbox_events_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_events_kind"), _kinds(KINDS))
