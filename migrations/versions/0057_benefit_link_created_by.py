"""benefit links say who made them: created_by

Revision ID: 0057
Revises: 0056
Create Date: 2026-11-29 15:10:00

A link recorded who ended it but not who made it, though a dividend link grants shares of a supplier's dividends.
Links made before this have no maker recorded (null).
"""
import sqlalchemy as sa
from alembic import op

revision = '0057'
down_revision = '0056'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("benefit_links") as batch:
        batch.add_column(sa.Column("created_by", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_benefit_links_created_by_users"), "users", ["created_by"], ["id"])


def downgrade():
    with op.batch_alter_table("benefit_links") as batch:
        batch.drop_constraint(op.f("fk_benefit_links_created_by_users"), type_="foreignkey")
        batch.drop_column("created_by")
