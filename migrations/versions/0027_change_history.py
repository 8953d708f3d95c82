"""product history keeps unit and net weight changes

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-27 15:20:00

A product's unit and net weight changed without a trace; its history now records them (the unit as text).
"""
import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('product_changes', schema=None) as batch_op:
        batch_op.alter_column('new_value', existing_type=sa.BigInteger(), nullable=True)
        batch_op.add_column(sa.Column('old_text', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('new_text', sa.String(length=16), nullable=True))
        batch_op.create_check_constraint(op.f('ck_product_changes_one_new_value'),
                                         '(new_value IS NULL) != (new_text IS NULL)')


def downgrade():
    op.execute("DELETE FROM product_changes WHERE new_value IS NULL")
    with op.batch_alter_table('product_changes', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_product_changes_one_new_value'), type_='check')
        batch_op.drop_column('new_text')
        batch_op.drop_column('old_text')
        batch_op.alter_column('new_value', existing_type=sa.BigInteger(), nullable=False)
