"""refunds: the attempt a payment's return is at, which its idempotency key names

Revision ID: 0050
Revises: 0049
Create Date: 2026-11-29 08:20:00

A return of a payment the provider refused because a refund at its dashboard took part of the payment meanwhile is
asked again for what is left, under a new idempotency key naming its attempt (a key's first request fixes its
amount at Stripe). Refunds made before this were at their first attempt.
"""
import sqlalchemy as sa
from alembic import op

revision = '0050'
down_revision = '0049'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("attempt")
