"""lots: no two of a supplier's lot codes read alike (`L-1`, `L_1`, `L.1`)

Revision ID: 0066
Revises: 0065
Create Date: 2026-11-29 22:00:00

A lot sent again with its code's separators typed otherwise was a second lot of the same produce, with its own
trace code and stock. Each lot keeps its code's skeleton (`.` and `_` as `-`), unique per supplier. If a supplier's
lots already read alike, the upgrade stops naming them; nothing is renamed for them.
"""
import sqlalchemy as sa
from alembic import op

revision = '0066'
down_revision = '0065'
branch_labels = None
depends_on = None

SKELETON = "replace(replace(lot_code, '.', '-'), '_', '-')"


def _rebuilding_lots(change) -> None:
    """Apply `change` to the lots table. SQLite rebuilds it: the triggers on it or naming it (0035's check of new
    postings) are set aside and made again as they were."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    triggers = op.get_bind().execute(sa.text(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND (tbl_name = 'lots' "
        "OR sql LIKE '%lots%')")).all() if sqlite else []
    for name, _sql in triggers:
        op.execute(f"DROP TRIGGER {name}")
    change()
    for _name, sql in triggers:
        op.execute(sql)


def _add() -> None:
    """Add each lot's skeleton, unique per supplier."""
    with op.batch_alter_table("lots") as batch:
        batch.add_column(sa.Column("skeleton", sa.String(length=64), nullable=True))
    op.execute(f"UPDATE lots SET skeleton = {SKELETON}")
    with op.batch_alter_table("lots") as batch:
        batch.alter_column("skeleton", existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint("uq_lots_supplier_skeleton", ["supplier_id", "skeleton"])


def _drop() -> None:
    """Drop the skeletons."""
    with op.batch_alter_table("lots") as batch:
        batch.drop_constraint("uq_lots_supplier_skeleton", type_="unique")
        batch.drop_column("skeleton")


def upgrade():
    alike = op.get_bind().execute(sa.text(
        f"SELECT supplier_id, {SKELETON}, COUNT(*) FROM lots GROUP BY supplier_id, {SKELETON} HAVING COUNT(*) > 1 "
        "ORDER BY 1, 2")).all()
    if alike:
        raise RuntimeError("Lot codes of one supplier read alike; tell them apart, then upgrade again: "
                           + "; ".join(f"supplier {supplier} {skeleton} ({count} lots)"
                                       for supplier, skeleton, count in alike))
    _rebuilding_lots(_add)


def downgrade():
    _rebuilding_lots(_drop)
