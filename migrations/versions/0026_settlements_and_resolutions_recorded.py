"""payout lines: who settled each line and when it was paid and returned (a bank return no longer overwrites the paid
time); sale conflicts: who resolved each one, and how

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-27 15:10:00

A line kept one `settled_at`, which a bank return overwrote, and no one who settled it. Lines settled before this
get their paid and returned times from their ledger transactions; who settled them was never recorded (NULL).
A sale conflict (an offline sale the server refused) could not be resolved: it gets who resolved it and a note.
"""
import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

LINES = sa.table("payout_lines", sa.column("paid_transaction_id", sa.Integer), sa.column("paid_at"),
                 sa.column("failed_transaction_id", sa.Integer), sa.column("failed_at"))
TRANSACTIONS = sa.table("ledger_transactions", sa.column("id", sa.Integer), sa.column("posted_at"))


def _posted(column):
    """The posting time of the ledger transaction a line's `column` names."""
    return sa.select(TRANSACTIONS.c.posted_at).where(TRANSACTIONS.c.id == column).scalar_subquery()


def upgrade():
    with op.batch_alter_table("payout_lines") as batch:
        batch.add_column(sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("paid_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("failed_by", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_payout_lines_paid_by_users"), "users", ["paid_by"], ["id"])
        batch.create_foreign_key(op.f("fk_payout_lines_failed_by_users"), "users", ["failed_by"], ["id"])
    op.execute(LINES.update().where(LINES.c.paid_transaction_id.isnot(None))
               .values(paid_at=_posted(LINES.c.paid_transaction_id)))
    op.execute(LINES.update().where(LINES.c.failed_transaction_id.isnot(None))
               .values(failed_at=_posted(LINES.c.failed_transaction_id)))
    with op.batch_alter_table("sale_conflicts") as batch:
        batch.add_column(sa.Column("resolved_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("resolution_note", sa.String(length=500), nullable=True))
        batch.create_foreign_key(op.f("fk_sale_conflicts_resolved_by_users"), "users", ["resolved_by"], ["id"])


def downgrade():
    with op.batch_alter_table("sale_conflicts") as batch:
        batch.drop_constraint(op.f("fk_sale_conflicts_resolved_by_users"), type_="foreignkey")
        batch.drop_column("resolution_note")
        batch.drop_column("resolved_by")
    with op.batch_alter_table("payout_lines") as batch:
        batch.drop_constraint(op.f("fk_payout_lines_failed_by_users"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_payout_lines_paid_by_users"), type_="foreignkey")
        batch.drop_column("failed_by")
        batch.drop_column("failed_at")
        batch.drop_column("paid_by")
        batch.drop_column("paid_at")
