"""locations: no two codes read alike (`FS_WH`, `FS.WH`, `FS-WH`)

Revision ID: 0047
Revises: 0046
Create Date: 2026-11-29 05:00:00

Staff pick a location by its code; codes that differ only by their separators `.` `_` `-` read as one and were
picked wrongly. Each location keeps its code's skeleton (those separators as `-`), unique. If locations already
read alike, the upgrade stops naming them, for an admin to retire one; nothing is renamed for them.
"""
import sqlalchemy as sa
from alembic import op

revision = '0047'
down_revision = '0046'
branch_labels = None
depends_on = None

SKELETON = "replace(replace(code, '.', '-'), '_', '-')"


def upgrade():
    alike = op.get_bind().execute(sa.text(
        f"SELECT {SKELETON}, COUNT(*) FROM locations GROUP BY {SKELETON} HAVING COUNT(*) > 1 ORDER BY 1")).all()
    if alike:
        raise RuntimeError("Location codes read alike; keep one of each, then upgrade again: "
                           + "; ".join(f"{skeleton} ({count} locations)" for skeleton, count in alike))
    with op.batch_alter_table("locations") as batch:
        batch.add_column(sa.Column("skeleton", sa.String(length=32), nullable=True))
    op.execute(f"UPDATE locations SET skeleton = {SKELETON}")
    with op.batch_alter_table("locations") as batch:
        batch.alter_column("skeleton", existing_type=sa.String(length=32), nullable=False)
        batch.create_unique_constraint("uq_locations_skeleton", ["skeleton"])


def downgrade():
    with op.batch_alter_table("locations") as batch:
        batch.drop_constraint("uq_locations_skeleton", type_="unique")
        batch.drop_column("skeleton")
