"""notifications: a notification about an order is kept until it is sent, and retried while the mail server refuses

Revision ID: 0053
Revises: 0052
Create Date: 2026-11-29 11:40:00

A notification was a task's arguments only: in the embedded default (tasks run in the request) a mail the server
refused was lost. Notifications queued before this were sent or lost already.
"""
import sqlalchemy as sa
from alembic import op

revision = '0053'
down_revision = '0052'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f("ck_notifications_status")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_notifications_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(op.f("ix_notifications_order_id"), "notifications", ["order_id"])
    op.create_index("ix_notifications_status_queued_at", "notifications", ["status", "queued_at"])


def downgrade():
    op.drop_table("notifications")
