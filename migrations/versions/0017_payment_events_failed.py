"""payment events tried MAX_ATTEMPTS times are `failed` instead of being retried every minute for ever

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-27 06:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

NEW_EVENT = "status = 'pending' AND attempts = 0"
STATUSES = ("pending", "deferred", "processed", "ignored")


def _statuses(statuses: tuple[str, ...]) -> None:
    """Replace the status check (SQLite rebuilds the table: its partial index is dropped and made again)."""
    op.drop_index("ix_payment_events_new", table_name="payment_events")
    with op.batch_alter_table("payment_events") as batch_op:
        batch_op.drop_constraint(op.f("ck_payment_events_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_payment_events_status"),
                                         "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")")
    op.create_index("ix_payment_events_new", "payment_events", ["id"], postgresql_where=sa.text(NEW_EVENT),
                    sqlite_where=sa.text(NEW_EVENT))


def upgrade():
    _statuses((*STATUSES, "failed"))


def downgrade():
    op.execute("UPDATE payment_events SET status = 'pending' WHERE status = 'failed'")
    _statuses(STATUSES)
