"""disclosure revisions: the revisions of a county's published month are kept as they were shown

Revision ID: 0054
Revises: 0053
Create Date: 2026-11-29 14:40:00

A revision was computed afresh on every reading, so two readings a while apart differed by a change that concerned
1 or 2 households (a 4th household corrected after a revision of 3 had been shown). Each revision shown is now kept,
and a new one is shown only when it differs from every one shown before by at least 3 households in each row.
Notices published before this have shown no revision kept: their next one is compared with the notice alone.
"""
import sqlalchemy as sa
from alembic import op

revision = '0054'
down_revision = '0053'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("disclosure_notices") as batch:
        batch.add_column(sa.Column("revisions", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("disclosure_notices") as batch:
        batch.drop_column("revisions")
