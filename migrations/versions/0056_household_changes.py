"""household changes: each change of a household's field, who made it and when

Revision ID: 0056
Revises: 0055
Create Date: 2026-11-29 15:00:00

A household's head, village, members, consent and active flag changed with no record of who, when or from what (only
its bank account's changes were audited): household_changes records each. Changes made before this left no trace.
"""
import sqlalchemy as sa
from alembic import op

revision = '0056'
down_revision = '0055'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "household_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("old_value", sa.String(length=200), nullable=False),
        sa.Column("new_value", sa.String(length=200), nullable=False),
        sa.Column("changed_by", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("field IN ('head_name', 'village', 'members', 'consent_on', 'consent_basis', 'active')",
                           name=op.f("ck_household_changes_field")),
        sa.ForeignKeyConstraint(["changed_by"], ["users.id"], name=op.f("fk_household_changes_changed_by_users")),
        sa.ForeignKeyConstraint(["household_id"], ["households.id"],
                                name=op.f("fk_household_changes_household_id_households")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household_changes")),
    )
    op.create_index(op.f("ix_household_changes_household_id"), "household_changes", ["household_id"])


def downgrade():
    op.drop_table("household_changes")
