"""the drain claims the oldest new payment event through a partial index

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 23:30:00

The drain's claim (`status = 'pending' AND attempts = 0`, oldest id first) either sorted every pending event
(through the status index) or walked the primary key past every processed one; with a backlog behind a long
history, each claim cost in proportion to one or the other. A partial index of the new events' ids makes it one
index entry.
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

NEW_EVENT = "status = 'pending' AND attempts = 0"


def upgrade():
    op.create_index("ix_payment_events_new", "payment_events", ["id"], postgresql_where=sa.text(NEW_EVENT),
                    sqlite_where=sa.text(NEW_EVENT))


def downgrade():
    op.drop_index("ix_payment_events_new", table_name="payment_events")
