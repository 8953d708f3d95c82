"""after-sales requests: the order's last refund when each was made, so the refunds since are told by id, not clocks

Revision ID: 0064
Revises: 0063
Create Date: 2026-11-29 21:40:00

An approval refunds what a request asked less what was refunded since it was made. "Since" was read from the two
rows' timestamps, taken on possibly different hosts: a refund made after the request on a host whose clock is behind
counted as before it, and the approval refunded those units again. Both rows are written under the order's lock, so
the order's last refund id when the request was made (`refunds_before`) tells it. Existing requests get the last
refund their timestamps put before them.
"""
import sqlalchemy as sa
from alembic import op

revision = '0064'
down_revision = '0063'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("after_sales_requests") as batch:
        batch.add_column(sa.Column("refunds_before", sa.Integer(), server_default="0", nullable=False))
    op.execute("UPDATE after_sales_requests SET refunds_before = COALESCE((SELECT max(refunds.id) FROM refunds "
               "WHERE refunds.order_id = after_sales_requests.order_id "
               "AND refunds.created_at < after_sales_requests.created_at), 0)")


def downgrade():
    with op.batch_alter_table("after_sales_requests") as batch:
        batch.drop_column("refunds_before")
