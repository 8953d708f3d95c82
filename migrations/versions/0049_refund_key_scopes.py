"""refunds: the scope of the Idempotency-Key each was asked with

Revision ID: 0049
Revises: 0048
Create Date: 2026-11-29 05:30:00

A refund's key belongs to a scope (a store's sale's: the store, so a till's queued refund resent by another clerk is
made once; an online order's: the user). A refund keeps that scope with its key, indexed, so that a key of a refund
answered 202 sent again for another order is found and refused as the key reused. Refunds asked with a key before
this were asked in their author's scope.
"""
import sqlalchemy as sa
from alembic import op

revision = '0049'
down_revision = '0048'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("request_scope", sa.String(length=64), nullable=True))
    op.execute("UPDATE refunds SET request_scope = 'user:' || created_by "
               "WHERE request_key IS NOT NULL AND created_by IS NOT NULL")
    op.create_index("ix_refunds_request_key", "refunds", ["request_scope", "request_key"])


def downgrade():
    op.drop_index("ix_refunds_request_key", table_name="refunds")
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("request_scope")
