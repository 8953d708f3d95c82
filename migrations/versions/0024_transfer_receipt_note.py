"""stock transfers: the receipt's note, saying what happened to the units that did not arrive

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-27 12:50:00

A receipt short of what was sent wrote the missing units off their lots with no reason, the only stock loss
without one; a short receipt now needs its note.
"""
import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("stock_transfers") as batch:
        batch.add_column(sa.Column("receipt_note", sa.String(length=200), nullable=True))


def downgrade():
    with op.batch_alter_table("stock_transfers") as batch:
        batch.drop_column("receipt_note")
