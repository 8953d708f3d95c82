"""households: a head's name has the ID card's middle dot (吉克·阿依), however it was typed

Revision ID: 0068
Revises: 0067
Create Date: 2026-11-30 00:10:00

A Yi or Tibetan head's name typed with a bullet, a Japanese input method's dot, a full-width stop or spaces around the
dot was kept so, and a bank file paid a name unlike the card's. The names stored before registration and edits wrote
the card's dot are written with it (the rule `shop.fields.PersonName` applies, as it was then).
"""
import re

import sqlalchemy as sa
from alembic import op

revision = '0068'
down_revision = '0067'
branch_labels = None
depends_on = None

NAME_DOT = re.compile(r"\s*[\u00b7\u0387\u2022\u2027\u2219\u22c5\u30fb\uff65\uff0e]\s*"
                      r"|(?<=[^\x00-\x7f])\s*\.\s*(?=[^\x00-\x7f])")


def upgrade():
    bind = op.get_bind()
    for household_id, name in bind.execute(sa.text("SELECT id, head_name FROM households ORDER BY id")).all():
        written = NAME_DOT.sub("\u00b7", name)
        if written != name:
            bind.execute(sa.text("UPDATE households SET head_name = :name WHERE id = :id"),
                         {"name": written, "id": household_id})


def downgrade():
    pass  # the names keep the card's dot: how each was typed before is not kept
