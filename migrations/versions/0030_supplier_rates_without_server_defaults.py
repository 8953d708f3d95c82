"""suppliers: the agreement rates lose the server defaults 0006 added to fill existing rows

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-27 19:00:00

Existing suppliers were given the standard rates when the columns came; since then every supplier is created with
its rates by the service, as the models say. A server default would fill a row written without them silently.
"""
import sqlalchemy as sa
from alembic import op

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None

AGREEMENT = {"platform_fee_bp": 500, "store_commission_bp": 800, "household_premium_bp": 300, "dividend_bp": 200}


def upgrade():
    with op.batch_alter_table('suppliers', schema=None) as batch_op:
        for column in AGREEMENT:
            batch_op.alter_column(column, existing_type=sa.Integer(), existing_nullable=False, server_default=None)


def downgrade():
    with op.batch_alter_table('suppliers', schema=None) as batch_op:
        for column, default in AGREEMENT.items():
            batch_op.alter_column(column, existing_type=sa.Integer(), existing_nullable=False,
                                  server_default=str(default))
