"""households, lots: a village is stored in one spelling, its full-width digits and Latin letters as ASCII

Revision ID: 0073
Revises: 0072
Create Date: 2026-11-30 03:50:00

A village typed by an IME (三岔河村１组) and one from a spreadsheet (三岔河村1组) were stored apart, so the co-op's
lists, searches and the trace pages read two villages. The villages stored before registration, edits, lots and uploads
wrote one spelling are written in it (the rule `shop.fields.name_spelling` applies, as it was then).
"""
import re

import sqlalchemy as sa
from alembic import op

revision = '0073'
down_revision = '0072'
branch_labels = None
depends_on = None

WIDE_LETTERS_AND_DIGITS = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")
TABLES = ("households", "lots", "lot_contributions")


BATCH = 10_000  # rows read at once: a table of millions of contributions is never held whole


def upgrade():
    bind = op.get_bind()
    for table in TABLES:
        after = 0
        while rows := bind.execute(sa.text(f"SELECT id, village FROM {table} WHERE id > :after ORDER BY id "
                                           f"LIMIT {BATCH}"), {"after": after}).all():
            after = rows[-1][0]
            for row_id, village in rows:
                written = WIDE_LETTERS_AND_DIGITS.sub(lambda wide: chr(ord(wide.group()) - 0xFEE0), village)
                if written != village:
                    bind.execute(sa.text(f"UPDATE {table} SET village = :village WHERE id = :id"),
                                 {"village": written, "id": row_id})


def downgrade():
    pass  # the villages keep their one spelling: how each was typed before is not kept
