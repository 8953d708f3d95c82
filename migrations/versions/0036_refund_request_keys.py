"""refunds: the Idempotency-Key of the request that asked for each

Revision ID: 0036
Revises: 0035
Create Date: 2026-11-28 03:00:00

A pending refund was handed back to any request of the same lines, reason and author, as the retry of one whose
provider answer was lost: two requests sent at once with their own keys were both answered 201 with one refund.
A refund now keeps the key it was asked with, and only a request with that key (or, without one, another keyless
request) is its retry. Refunds made before this keep NULL.
"""
import sqlalchemy as sa
from alembic import op

revision = '0036'
down_revision = '0035'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("request_key", sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("request_key")
