"""households say who registered them: created_by

Revision ID: 0061
Revises: 0060
Create Date: 2026-11-29 18:00:00

A household recorded the supplier that registered it but not the user who did. Households registered before this have
no registering user recorded (null).
"""
import sqlalchemy as sa
from alembic import op

revision = '0061'
down_revision = '0060'
branch_labels = None
depends_on = None


def _rebuilding_households(change) -> None:
    """Apply `change` to the households table. SQLite rebuilds it: the triggers on it (0015's guard against deleting a
    household a posting names) or naming it (0035's check of new postings) are set aside and made again as they were."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    triggers = op.get_bind().execute(sa.text(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND (tbl_name = 'households' "
        "OR sql LIKE '%households%')")).all() if sqlite else []
    for name, _sql in triggers:
        op.execute(f"DROP TRIGGER {name}")
    with op.batch_alter_table("households") as batch:
        change(batch)
    for _name, sql in triggers:
        op.execute(sql)


def _add(batch) -> None:
    """Add the registering user's column."""
    batch.add_column(sa.Column("created_by", sa.Integer(), nullable=True))
    batch.create_foreign_key(op.f("fk_households_created_by_users"), "users", ["created_by"], ["id"])


def _drop(batch) -> None:
    """Drop the registering user's column."""
    batch.drop_constraint(op.f("fk_households_created_by_users"), type_="foreignkey")
    batch.drop_column("created_by")


def upgrade():
    _rebuilding_households(_add)


def downgrade():
    _rebuilding_households(_drop)
