"""commit_seq: audit and change lists page in commit order, so a row committed late is never behind a page read

Revision ID: 0062
Revises: 0061
Create Date: 2026-11-29 17:50:00

Rows are written by parallel transactions, so one could commit after a row with a larger id that a reader had already
paged past (oldest first), or land below the top a reader had read (newest first). Each of these tables' rows now
gets `commit_seq`, its table's commit order, at commit; the rows written before this keep their id order. The
append-only audits (PostgreSQL triggers) let that one change through: `commit_seq` set once, nothing else changed.
A partial index finds a transaction's rows still to be numbered without reading the table.
"""
import sqlalchemy as sa
from alembic import op

revision = '0062'
down_revision = '0061'
branch_labels = None
depends_on = None

TABLES = ("user_changes", "product_changes", "supplier_agreement_changes", "household_changes", "reveal_audits",
          "bank_account_changes", "store_account_changes", "stock_adjustments", "sale_conflicts", "payout_batches",
          "payout_downloads", "store_remittances")

_ORDERED_ONCE = ("IF TG_OP = 'UPDATE' AND to_jsonb(OLD) ->> 'commit_seq' IS NULL "
                 "AND to_jsonb(NEW) - 'commit_seq' = to_jsonb(OLD) - 'commit_seq' THEN RETURN NEW; END IF;")
REFUSALS = {  # function: (what it raises, as 0025 and 0034 wrote it)
    "audit_refuse_change": "'% is an append-only audit (% refused)', TG_TABLE_NAME, TG_OP",
    "user_changes_refuse_change": "'user changes are append-only (% refused)', TG_OP",
}


def _refusals(ordered_once: str) -> None:
    """(Re)write the append-only audits' trigger functions, letting `ordered_once` through first."""
    for function, message in REFUSALS.items():
        op.execute(f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          {ordered_once}
          RAISE EXCEPTION {message} USING ERRCODE = 'insufficient_privilege';
        END $$""")


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        _refusals(_ORDERED_ONCE)
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("commit_seq", sa.BigInteger(), nullable=True))
        op.execute(f"UPDATE {table} SET commit_seq = id")
        with op.batch_alter_table(table) as batch:
            batch.create_unique_constraint(f"uq_{table}_commit_seq", ["commit_seq"])
        op.create_index(f"ix_{table}_uncommitted", table, ["id"], postgresql_where=sa.text("commit_seq IS NULL"),
                        sqlite_where=sa.text("commit_seq IS NULL"))


def downgrade():
    for table in TABLES:
        op.drop_index(f"ix_{table}_uncommitted", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_commit_seq", type_="unique")
            batch.drop_column("commit_seq")
    if op.get_bind().dialect.name == "postgresql":
        _refusals("")
