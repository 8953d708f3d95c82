"""users: a session version that a page sign-out moves, ending every browser session signed in before

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-27 07:00:00

The pages' sessions are signed cookies: emptying one at sign-out left any copy of it working until it expired.
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("session_version")
