"""stock adjustments: the units a transfer's receipt says did not arrive (`lost_in_transit`, with the transfer)

Revision ID: 0037
Revises: 0036
Create Date: 2026-11-28 04:00:00

A receipt with a discrepancy took the missing units off their lots without an adjustment, so a lot's adjustments
were not its whole write-off history (units found outnumbered units written off). The receipt now writes one
adjustment per lot short, reason `lost_in_transit`, at the destination, naming its transfer. Receipts made before
this keep their discrepancy on the transfer line only.
"""
import sqlalchemy as sa
from alembic import op

revision = '0037'
down_revision = '0036'
branch_labels = None
depends_on = None

REASONS = ("stocktake", "spoiled", "damaged", "found")


def _reasons(reasons: tuple[str, ...]) -> str:
    """The reason check over `reasons`."""
    return "reason IN (" + ", ".join(f"'{reason}'" for reason in reasons) + ")"


def upgrade():
    with op.batch_alter_table("stock_adjustments") as batch:
        batch.drop_constraint(op.f("ck_stock_adjustments_reason"), type_="check")
        batch.alter_column("reason", existing_type=sa.String(length=10), type_=sa.String(length=16),
                           existing_nullable=False)
        batch.create_check_constraint(op.f("ck_stock_adjustments_reason"), _reasons((*REASONS, "lost_in_transit")))
        batch.add_column(sa.Column("transfer_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_stock_adjustments_transfer_id_stock_transfers"), "stock_transfers",
                                 ["transfer_id"], ["id"])


def downgrade():
    """Refused while an adjustment records a transit loss (the reason check would not hold)."""
    with op.batch_alter_table("stock_adjustments") as batch:
        batch.drop_constraint(op.f("fk_stock_adjustments_transfer_id_stock_transfers"), type_="foreignkey")
        batch.drop_column("transfer_id")
        batch.drop_constraint(op.f("ck_stock_adjustments_reason"), type_="check")
        batch.alter_column("reason", existing_type=sa.String(length=16), type_=sa.String(length=10),
                           existing_nullable=False)
        batch.create_check_constraint(op.f("ck_stock_adjustments_reason"), _reasons(REASONS))
