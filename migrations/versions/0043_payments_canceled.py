"""payments: a payment whose PaymentIntent the provider cancelled (its order cancelled) is `canceled`

Revision ID: 0043
Revises: 0042
Create Date: 2026-11-28 22:15:00

A cancelled order's payment still read `created` after the provider had cancelled its intent, as if it were still
to be made; it now reads `canceled` once the provider has confirmed the cancellation.
"""
from alembic import op

revision = '0043'
down_revision = '0042'
branch_labels = None
depends_on = None


def _statuses(statuses: tuple[str, ...]) -> None:
    """Replace the status check (SQLite rebuilds the table)."""
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_constraint(op.f("ck_payments_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_payments_status"),
                                         "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")")


STATUSES = ("created", "failed", "succeeded", "returned")


def upgrade():
    _statuses((*STATUSES, "canceled"))


def downgrade():
    op.execute("UPDATE payments SET status = 'created' WHERE status = 'canceled'")
    _statuses(STATUSES)
