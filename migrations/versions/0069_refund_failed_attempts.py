"""refunds: every failed attempt of a pending refund backs off, not only a refused key

Revision ID: 0069
Revises: 0068
Create Date: 2026-11-30 00:10:00

A refund whose provider call kept failing for another reason than the shop's key (Stripe down, a 5xx) was asked again
every minute for ever. Every failed attempt now counts (`key_refusals` becomes `failed_attempts`, its values kept) and
pauses the refund as a refused key did: one minute after the first, doubling up to an hour.
"""
from alembic import op

revision = '0069'
down_revision = '0068'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.alter_column("key_refusals", new_column_name="failed_attempts")


def downgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.alter_column("failed_attempts", new_column_name="key_refusals")
