"""product history records starting values (old_value NULL on creation)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 11:40:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('product_changes', schema=None) as batch_op:
        batch_op.alter_column('old_value', existing_type=sa.BigInteger(), nullable=True)


def downgrade():
    op.execute("DELETE FROM product_changes WHERE old_value IS NULL")
    with op.batch_alter_table('product_changes', schema=None) as batch_op:
        batch_op.alter_column('old_value', existing_type=sa.BigInteger(), nullable=False)
