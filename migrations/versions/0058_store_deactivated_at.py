"""stores.deactivated_at: when a store was closed, so its till's queued offline sales stamped later are conflicts

Revision ID: 0058
Revises: 0057
Create Date: 2026-11-29 15:05:00

A store closed before this has no known moment of closing: it is taken as the moment of this migration, so sales its
till queued before then are still accepted (within the 72 hours any offline sale has).
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0058'
down_revision = '0057'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("stores", sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True))
    stores = sa.table("stores", sa.column("active", sa.Boolean()),
                      sa.column("deactivated_at", sa.DateTime(timezone=True)))
    op.execute(stores.update().where(stores.c.active.is_(False)).values(deactivated_at=datetime.now(UTC)))


def downgrade():
    op.drop_column("stores", "deactivated_at")
