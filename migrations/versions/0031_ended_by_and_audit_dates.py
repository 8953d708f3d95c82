"""pairings and benefit links: who ended each one and when; the audit lists' creation times indexed

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-28 10:00:00

Ending a pairing or a benefit link kept only its new end date, not who ended it nor when; links and pairings ended
before this keep NULL (it was never recorded). The audit lists (user changes, reveals, bank account changes, bank
file downloads, stock adjustments) are read by date (`from`, `until`): their `created_at` gets an index.
"""
import sqlalchemy as sa
from alembic import op

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None

ENDED = ("pairings", "benefit_links")
AUDITED = ("user_changes", "reveal_audits", "bank_account_changes", "payout_downloads", "stock_adjustments")


def upgrade():
    for table in ENDED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
            batch.add_column(sa.Column("ended_by", sa.Integer(), nullable=True))
            batch.create_foreign_key(op.f(f"fk_{table}_ended_by_users"), "users", ["ended_by"], ["id"])
    for table in AUDITED:
        op.create_index(op.f(f"ix_{table}_created_at"), table, ["created_at"], unique=False)


def downgrade():
    for table in reversed(AUDITED):
        op.drop_index(op.f(f"ix_{table}_created_at"), table_name=table)
    for table in reversed(ENDED):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"fk_{table}_ended_by_users"), type_="foreignkey")
            batch.drop_column("ended_by")
            batch.drop_column("ended_at")
