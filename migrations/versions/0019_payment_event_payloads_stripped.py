"""payment events: stored payloads keep only what processing reads (no billing details, nothing of ignored types)

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-27 09:00:00

Done in Python, in batches by id, so that SQLite and PostgreSQL run the same projection as the webhook now does
(`orders.payments.service.stored_event`). What was stripped cannot come back: the downgrade changes nothing.
"""
import sqlalchemy as sa
from alembic import op

from orders.payments.service import stored_event

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

BATCH = 500
EVENTS = sa.table("payment_events", sa.column("id", sa.Integer), sa.column("payload", sa.JSON))


def upgrade():
    conn = op.get_bind()
    last = 0
    while rows := conn.execute(sa.select(EVENTS.c.id, EVENTS.c.payload).where(EVENTS.c.id > last)
                               .order_by(EVENTS.c.id).limit(BATCH)).all():
        conn.execute(sa.update(EVENTS).where(EVENTS.c.id == sa.bindparam("row_id"))
                     .values(payload=sa.bindparam("stripped")),
                     [{"row_id": row_id, "stripped": stored_event(payload)} for row_id, payload in rows])
        last = rows[-1].id


def downgrade():
    pass
