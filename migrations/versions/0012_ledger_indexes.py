"""ledger read and attribution indexes

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 14:10:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

HOUSEHOLD_POSTINGS = "household_id IS NOT NULL AND component IN ('premium', 'dividend')"
REFUND_EVENTS = "kind = 'line_refunded'"


def upgrade():
    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        # the pairing report and the disclosure: a line's household postings, read from the index alone
        batch_op.create_index('ix_ledger_postings_household_lines', ['order_line_id', 'household_id'], unique=False,
                              postgresql_include=['amount_fen'], postgresql_where=sa.text(HOUSEHOLD_POSTINGS),
                              sqlite_where=sa.text(HOUSEHOLD_POSTINGS))
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        # attributing a refund reads the line's earlier refund events
        batch_op.create_index('ix_outbox_events_refunded_line', ['order_line_id'], unique=False,
                              postgresql_where=sa.text(REFUND_EVENTS), sqlite_where=sa.text(REFUND_EVENTS))


def downgrade():
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_events_refunded_line')
    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_postings_household_lines')
