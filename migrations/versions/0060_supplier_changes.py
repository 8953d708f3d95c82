"""supplier changes: each change of a supplier's name, kind, contact or active flag, beside its rate changes

Revision ID: 0060
Revises: 0059
Create Date: 2026-11-29 17:40:00

A supplier's name, kind, contact and active flag (its deactivation and reactivation) changed with no record of who,
when or from what (only its agreement rates' and bank account's changes were recorded): supplier_agreement_changes
now records each too, its value as text. Changes made before this left no trace.
"""
import sqlalchemy as sa
from alembic import op

revision = '0060'
down_revision = '0059'
branch_labels = None
depends_on = None

RATES = "('platform_fee_bp', 'store_commission_bp', 'household_premium_bp', 'dividend_bp')"


def upgrade():
    with op.batch_alter_table("supplier_agreement_changes") as batch:
        batch.alter_column("old_value", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("new_value", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("old_text", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("new_text", sa.String(length=200), nullable=True))
        batch.create_check_constraint(
            op.f("ck_supplier_agreement_changes_field"),
            "field IN ('platform_fee_bp', 'store_commission_bp', 'household_premium_bp', 'dividend_bp', 'name', "
            "'kind', 'contact', 'active')")
        batch.create_check_constraint(
            op.f("ck_supplier_agreement_changes_values"),
            f"CASE WHEN field IN {RATES} THEN old_value IS NOT NULL AND new_value IS NOT NULL AND old_text IS NULL "
            "AND new_text IS NULL ELSE old_value IS NULL AND new_value IS NULL END")


def downgrade():
    op.execute(f"DELETE FROM supplier_agreement_changes WHERE field NOT IN {RATES}")
    with op.batch_alter_table("supplier_agreement_changes") as batch:
        batch.drop_constraint(op.f("ck_supplier_agreement_changes_values"), type_="check")
        batch.drop_constraint(op.f("ck_supplier_agreement_changes_field"), type_="check")
        batch.drop_column("new_text")
        batch.drop_column("old_text")
        batch.alter_column("new_value", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("old_value", existing_type=sa.Integer(), nullable=False)
