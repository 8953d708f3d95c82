"""audit tables and ledger accounts append-only on PostgreSQL; verifications check the accounts' owners

Revision ID: 0034
Revises: 0033
Create Date: 2026-11-28 01:00:00

The reveal, payout-download and bank-account-change audits could be edited or deleted by any client of the
database, unlike the user changes and the ledger itself. A ledger account's owner (its store, supplier or household
column) could be changed without breaking the hash chain, which hashes the account's code while statements and
payouts read those columns: an account moved to another household was paid to that household. On PostgreSQL the four
audit tables now refuse UPDATE and DELETE, and ledger accounts refuse DELETE and any change of their code, kind or
owners; a full verification also checks every account's columns against its code (on SQLite too), and keeps that
result with the others.
"""
import sqlalchemy as sa
from alembic import op

revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None

AUDITS = ("reveal_audits", "payout_downloads", "bank_account_changes", "store_account_changes")
PG_TRIGGERS = (
    """CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '% is an append-only audit (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
    END $$""",
    *(f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()""" for table in AUDITS),
    """CREATE FUNCTION ledger_accounts_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'UPDATE' AND (NEW.code, NEW.kind, NEW.store_id, NEW.supplier_id, NEW.household_id)
                              IS NOT DISTINCT FROM
                              (OLD.code, OLD.kind, OLD.store_id, OLD.supplier_id, OLD.household_id) THEN
        RETURN NEW;
      END IF;
      RAISE EXCEPTION 'ledger account % is append-only: its code and owners never change (% refused)', OLD.code, TG_OP
        USING ERRCODE = 'insufficient_privilege';
    END $$""",
    """CREATE TRIGGER ledger_accounts_append_only BEFORE UPDATE OR DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_refuse_change()""",
)


def upgrade():
    with op.batch_alter_table("ledger_verifications") as batch:
        batch.add_column(sa.Column("accounts_intact", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("first_bad_account", sa.String(length=64), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_TRIGGERS:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_accounts_append_only ON ledger_accounts")
        op.execute("DROP FUNCTION IF EXISTS ledger_accounts_refuse_change()")
        for table in AUDITS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
    with op.batch_alter_table("ledger_verifications") as batch:
        batch.drop_column("first_bad_account")
        batch.drop_column("accounts_intact")
