"""change history: products' unit and net weight, suppliers' default agreement rates

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-27 15:20:00

A product's unit and net weight changed without a trace; its history now records them (the unit as text). A
supplier's default agreement rates (which seed every new co-op product) changed with no record of who, when or from
what; supplier_agreement_changes records each.
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

    op.create_table('supplier_agreement_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supplier_id', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(length=32), nullable=False),
    sa.Column('old_value', sa.Integer(), nullable=False),
    sa.Column('new_value', sa.Integer(), nullable=False),
    sa.Column('changed_by', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['changed_by'], ['users.id'],
                            name=op.f('fk_supplier_agreement_changes_changed_by_users')),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'],
                            name=op.f('fk_supplier_agreement_changes_supplier_id_suppliers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_supplier_agreement_changes'))
    )
    with op.batch_alter_table('supplier_agreement_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_supplier_agreement_changes_supplier_id'), ['supplier_id'], unique=False)


def downgrade():
    with op.batch_alter_table('supplier_agreement_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_supplier_agreement_changes_supplier_id'))
    op.drop_table('supplier_agreement_changes')

    op.execute("DELETE FROM product_changes WHERE new_value IS NULL")
    with op.batch_alter_table('product_changes', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_product_changes_one_new_value'), type_='check')
        batch_op.drop_column('new_text')
        batch_op.drop_column('old_text')
        batch_op.alter_column('new_value', existing_type=sa.BigInteger(), nullable=False)
