"""refunds: when the sweeper last queued a pending refund's settling

Revision ID: 0040
Revises: 0039
Create Date: 2026-11-28 14:00:00

The pending-refunds sweeper asked about the 50 oldest pending refunds every minute, so with more than 50 pending the
newer ones were never asked about. It now takes those that waited longest since they were made or last queued.
"""
import sqlalchemy as sa
from alembic import op

revision = '0040'
down_revision = '0039'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("asked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("asked_at")
