"""pairing report rollups

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 15:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

KEYS = ('donor_code', 'county_code', 'paired')


def _keys():
    """The (donor, county, paired) columns every rollup shares."""
    return [sa.Column('donor_code', sa.String(length=20), nullable=False),
            sa.Column('county_code', sa.String(length=20), nullable=False),
            sa.Column('paired', sa.Boolean(), nullable=False)]


def upgrade():
    op.create_table('pairing_rollup_sales',
                    sa.Column('sale_date', sa.Date(), nullable=False), *_keys(),
                    sa.Column('orders', sa.Integer(), nullable=False),
                    sa.Column('units', sa.BigInteger(), nullable=False),
                    sa.Column('sales_fen', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('sale_date', *KEYS, name=op.f('pk_pairing_rollup_sales')))
    op.create_table('pairing_rollup_households',
                    sa.Column('sale_date', sa.Date(), nullable=False), *_keys(),
                    sa.Column('household_id', sa.Integer(), nullable=False),
                    sa.Column('net_fen', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('sale_date', *KEYS, 'household_id',
                                            name=op.f('pk_pairing_rollup_households')))
    op.create_table('pairing_rollup_months',
                    sa.Column('month', sa.Date(), nullable=False), *_keys(),
                    sa.Column('household_id', sa.Integer(), nullable=False),
                    sa.Column('net_fen', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('month', *KEYS, 'household_id', name=op.f('pk_pairing_rollup_months')))
    op.create_table('pairing_rollup_state',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('ledger_seq', sa.BigInteger(), nullable=False),
                    sa.Column('pairings_digest', sa.String(length=64), nullable=False),
                    sa.Column('fresh_as_of', sa.DateTime(timezone=True), nullable=True),
                    sa.CheckConstraint('id = 1', name=op.f('ck_pairing_rollup_state_single_row')),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_pairing_rollup_state')))


def downgrade():
    for table in ('pairing_rollup_state', 'pairing_rollup_months', 'pairing_rollup_households',
                  'pairing_rollup_sales'):
        op.drop_table(table)
