"""households: a keyed hash of each bank account beside its ciphertext, to find an account two households share

Revision ID: 0074
Revises: 0073
Create Date: 2026-11-30 03:50:00

Two households registered with one bank account went undetected (payouts would pay both into it). Accounts are stored
encrypted, so each now has its keyed look-up hash (`shop.crypto.lookup_hash`, `FIELD_HASH_KEY`, as ID numbers) beside
it, and a household naming an account another active household holds is refused. The accounts stored before it are
hashed here.
"""
import sqlalchemy as sa
from alembic import op

from shop import crypto

revision = '0074'
down_revision = '0073'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("households", sa.Column("bank_account_hash", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_households_bank_account_hash"), "households", ["bank_account_hash"], unique=False)
    bind = op.get_bind()
    for household_id, token in bind.execute(sa.text(
            "SELECT id, bank_account_enc FROM households WHERE bank_account_enc IS NOT NULL ORDER BY id")).all():
        account = crypto.decrypt(token, field="households.bank_account")
        bind.execute(sa.text("UPDATE households SET bank_account_hash = :hash WHERE id = :id"),
                     {"hash": crypto.lookup_hash(account), "id": household_id})


def downgrade():
    op.drop_index(op.f("ix_households_bank_account_hash"), table_name="households")
    op.drop_column("households", "bank_account_hash")  # SQLite drops a column in place: no rebuild, triggers kept
