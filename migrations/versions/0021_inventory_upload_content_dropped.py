"""inventory uploads: a file's bytes are kept only until its import finishes (content nullable, cleared when done)

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-27 09:40:00

Every uploaded file stayed in `content` for ever, also one refused for carrying ID or bank card columns; nothing
reads the bytes after the import (a re-sent file is recognised by its SHA-256). The downgrade cannot bring them back:
it leaves the finished uploads' content empty.
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

UPLOADS = sa.table("inventory_uploads", sa.column("status", sa.String), sa.column("content", sa.LargeBinary))


def _content_nullable(nullable: bool) -> None:
    """Let `content` be NULL, or not."""
    with op.batch_alter_table("inventory_uploads") as batch_op:
        batch_op.alter_column("content", existing_type=sa.LargeBinary(), nullable=nullable)


def upgrade():
    _content_nullable(True)
    op.execute(sa.update(UPLOADS).where(UPLOADS.c.status.in_(("succeeded", "failed"))).values(content=None))


def downgrade():
    op.execute(sa.update(UPLOADS).where(UPLOADS.c.content.is_(None)).values(content=b""))
    _content_nullable(False)
