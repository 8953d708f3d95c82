"""orders: how many times the till printed an order's receipt, so a reprint says it is one

Revision ID: 0072
Revises: 0071
Create Date: 2026-11-30 01:00:00

A reprinted receipt read as an original (it could be passed off as a second one, e.g. for a second refund claim).
Each print at the till is now counted on its order; every print after the first says 重打印 with its number and time.
Orders before this have no print counted: their next print is the original.
"""
import sqlalchemy as sa
from alembic import op

revision = '0072'
down_revision = '0071'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("receipt_prints", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("receipt_prints")
