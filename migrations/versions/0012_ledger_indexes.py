"""ledger read and attribution indexes

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 14:10:00

"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
