"""inventory uploads: stored row errors no longer quote what may be a phone, ID or bank card number

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-27 09:20:00

The errors' messages and column names are masked as the reader now masks the values it quotes
(`catalog.upload_messages.hide_personal_numbers`; no message template holds such a run of digits itself), in
Python and in batches by id, the same on SQLite and PostgreSQL. What was masked cannot come back: the downgrade
changes nothing.
"""
import sqlalchemy as sa
from alembic import op

from catalog.upload_messages import hide_personal_numbers

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

BATCH = 500
UPLOADS = sa.table("inventory_uploads", sa.column("id", sa.Integer), sa.column("status", sa.String),
                   sa.column("errors", sa.JSON))


def _masked(error: dict) -> dict:
    """A stored error with its column and messages masked."""
    return {key: hide_personal_numbers(value) if key in ("column", "message", "message_zh") and value else value
            for key, value in error.items()}


def upgrade():
    conn = op.get_bind()
    last = 0
    while rows := conn.execute(sa.select(UPLOADS.c.id, UPLOADS.c.errors)
                               .where(UPLOADS.c.id > last, UPLOADS.c.status == "failed")
                               .order_by(UPLOADS.c.id).limit(BATCH)).all():
        conn.execute(sa.update(UPLOADS).where(UPLOADS.c.id == sa.bindparam("row_id"))
                     .values(errors=sa.bindparam("masked")),
                     [{"row_id": row_id, "masked": [_masked(error) for error in errors]} for row_id, errors in rows])
        last = rows[-1].id


def downgrade():
    pass
