"""refunds: a pending refund whose API key the provider refused is asked again after a growing pause

Revision ID: 0063
Revises: 0062
Create Date: 2026-11-29 21:00:00

A refund the provider refused because of the shop's API key was asked again every minute until an operator fixed the
key. It now counts the refusals in a row (`key_refusals`) and is not asked again before `retry_at`: one minute after
the first, doubling up to an hour, kept on the row so a restart does not start the pauses over.
"""
import sqlalchemy as sa
from alembic import op

revision = '0063'
down_revision = '0062'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("key_refusals", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("retry_at")
        batch.drop_column("key_refusals")
