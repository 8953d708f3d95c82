"""stock transfers may be cancelled (by whom, when, why); after-sales requests withdrawn; sign-outs audited

Revision ID: 0039
Revises: 0038
Create Date: 2026-11-28 11:00:00

A dispatched transfer that would never arrive (the wrong store, the truck turned back) kept its units in transit for
ever: an admin now cancels it, its units going back on their lots at the source, and the transfer keeps who cancelled
it, when and why. A consumer withdraws an open after-sales request (`withdrawn`). A sign-out is a user change
(`signed_out`), as a password change is.
"""
import sqlalchemy as sa
from alembic import op

revision = '0039'
down_revision = '0038'
branch_labels = None
depends_on = None

USER_ACTIONS = ("created", "disabled", "enabled", "password_reset", "password_changed", "role_changed",
                "scope_changed")


def _in(column: str, values: tuple[str, ...]) -> str:
    """The check that `column` is one of `values`."""
    return f"{column} IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def upgrade():
    with op.batch_alter_table("stock_transfers") as batch:
        batch.add_column(sa.Column("cancelled_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("cancel_reason", sa.String(length=200), nullable=True))
        batch.create_foreign_key(op.f("fk_stock_transfers_cancelled_by_users"), "users", ["cancelled_by"], ["id"])
        batch.drop_constraint(op.f("ck_stock_transfers_status"), type_="check")
        batch.create_check_constraint(op.f("ck_stock_transfers_status"),
                                      _in("status", ("dispatched", "received", "cancelled")))
    with op.batch_alter_table("after_sales_requests") as batch:
        batch.drop_constraint(op.f("ck_after_sales_requests_status"), type_="check")
        batch.create_check_constraint(op.f("ck_after_sales_requests_status"),
                                      _in("status", ("open", "approved", "rejected", "withdrawn")))
    with op.batch_alter_table("user_changes") as batch:
        batch.drop_constraint(op.f("ck_user_changes_action"), type_="check")
        batch.create_check_constraint(op.f("ck_user_changes_action"), _in("action", (*USER_ACTIONS, "signed_out")))


def downgrade():
    """Refused while a transfer is cancelled, a request withdrawn or a sign-out recorded (the checks would not hold)."""
    with op.batch_alter_table("user_changes") as batch:
        batch.drop_constraint(op.f("ck_user_changes_action"), type_="check")
        batch.create_check_constraint(op.f("ck_user_changes_action"), _in("action", USER_ACTIONS))
    with op.batch_alter_table("after_sales_requests") as batch:
        batch.drop_constraint(op.f("ck_after_sales_requests_status"), type_="check")
        batch.create_check_constraint(op.f("ck_after_sales_requests_status"),
                                      _in("status", ("open", "approved", "rejected")))
    with op.batch_alter_table("stock_transfers") as batch:
        batch.drop_constraint(op.f("ck_stock_transfers_status"), type_="check")
        batch.create_check_constraint(op.f("ck_stock_transfers_status"), _in("status", ("dispatched", "received")))
        batch.drop_constraint(op.f("fk_stock_transfers_cancelled_by_users"), type_="foreignkey")
        batch.drop_column("cancel_reason")
        batch.drop_column("cancelled_at")
        batch.drop_column("cancelled_by")
