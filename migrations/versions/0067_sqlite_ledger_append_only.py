"""the ledger append-only on SQLite too, as on PostgreSQL (0010, 0034)

Revision ID: 0067
Revises: 0066
Create Date: 2026-11-30 00:10:00

On the embedded default (SQLite) a posting could be edited or deleted, a linked transaction edited or deleted, a
posting added to a linked transaction, and a ledger account renamed, moved to another owner or deleted: only a later
verification noticed, where PostgreSQL refuses each of them. SQLite now refuses them too, with the same words. (A
migration that rebuilds one of these tables on SQLite must set these triggers aside and make them again, as 0035 does
with its own.)
"""
from alembic import op

revision = '0067'
down_revision = '0066'
branch_labels = None
depends_on = None

LINKED = "OLD.seq IS NOT NULL OR OLD.prev_hash IS NOT NULL OR OLD.hash IS NOT NULL"
OWNERS = " OR ".join(f"NEW.{column} IS NOT OLD.{column}"
                     for column in ("code", "kind", "store_id", "supplier_id", "household_id"))
SQLITE_TRIGGERS = {
    "ledger_postings_no_update": """BEFORE UPDATE ON ledger_postings
    BEGIN SELECT RAISE(ABORT, 'ledger postings are append-only (UPDATE refused)'); END""",
    "ledger_postings_no_delete": """BEFORE DELETE ON ledger_postings
    BEGIN SELECT RAISE(ABORT, 'ledger postings are append-only (DELETE refused)'); END""",
    "ledger_postings_to_unlinked_only": """BEFORE INSERT ON ledger_postings
    WHEN (SELECT seq FROM ledger_transactions WHERE id = NEW.transaction_id) IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'a linked ledger transaction takes no further postings'); END""",
    "ledger_transactions_no_update": f"""BEFORE UPDATE ON ledger_transactions WHEN {LINKED}
    BEGIN SELECT RAISE(ABORT, 'a linked ledger transaction is append-only (UPDATE refused)'); END""",
    "ledger_transactions_no_delete": f"""BEFORE DELETE ON ledger_transactions WHEN {LINKED}
    BEGIN SELECT RAISE(ABORT, 'a linked ledger transaction is append-only (DELETE refused)'); END""",
    "ledger_accounts_no_update": f"""BEFORE UPDATE ON ledger_accounts WHEN {OWNERS}
    BEGIN SELECT RAISE(ABORT, 'a ledger account is append-only: its code and owners never change'); END""",
    "ledger_accounts_no_delete": """BEFORE DELETE ON ledger_accounts
    BEGIN SELECT RAISE(ABORT, 'a ledger account is append-only (DELETE refused)'); END""",
}


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
