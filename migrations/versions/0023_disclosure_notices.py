"""disclosure notices: a county's public disclosure of a month, computed once the month is closed and kept as published

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-27 12:30:00

A live disclosure over any period let anyone read, from the difference of two answers (before and after a purchase,
or of overlapping periods), an amount that concerned fewer than 3 households. Each month is now published once,
72 hours after it ends, and shown unchanged.
"""
import sqlalchemy as sa
from alembic import op

from shop.db import UTCDateTime

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "disclosure_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("county_code", sa.String(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["county_code"], ["regions.code"], name=op.f("fk_disclosure_notices_county_code_regions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure_notices")),
        sa.UniqueConstraint("county_code", "month", name="uq_disclosure_notices_county_month"),
    )


def downgrade():
    op.drop_table("disclosure_notices")
