"""idempotency keys: stored responses encrypted (an order's delivery address was kept in clear), swept by age

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-27 10:00:00

The responses already stored are encrypted in Python, in batches by id, with the app's field key
(`shop.idempotency.RESPONSE_FIELD`), as new ones now are; `created_at` gets the index the sweeper's delete uses.
The downgrade decrypts them again.
"""
import sqlalchemy as sa
from alembic import op

from shop import crypto
from shop.idempotency import RESPONSE_FIELD

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

BATCH = 500
KEYS = sa.table("idempotency_keys", sa.column("id", sa.Integer), sa.column("response_body", sa.Text))


def _rewrite(change) -> None:
    """Apply `change` to every stored response, in batches by id."""
    conn = op.get_bind()
    last = 0
    while rows := conn.execute(sa.select(KEYS.c.id, KEYS.c.response_body).where(KEYS.c.id > last)
                               .order_by(KEYS.c.id).limit(BATCH)).all():
        changed = [{"row_id": row_id, "body": change(body)} for row_id, body in rows if body is not None]
        if changed:
            conn.execute(sa.update(KEYS).where(KEYS.c.id == sa.bindparam("row_id"))
                         .values(response_body=sa.bindparam("body")), changed)
        last = rows[-1].id


def upgrade():
    _rewrite(lambda body: crypto.encrypt(body, field=RESPONSE_FIELD))
    op.create_index(op.f('ix_idempotency_keys_created_at'), 'idempotency_keys', ['created_at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_idempotency_keys_created_at'), table_name='idempotency_keys')
    _rewrite(lambda body: crypto.decrypt(body, field=RESPONSE_FIELD))
