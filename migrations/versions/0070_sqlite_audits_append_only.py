"""the append-only audits on SQLite too, as on PostgreSQL (0025, 0034, 0035, 0062)

Revision ID: 0070
Revises: 0069
Create Date: 2026-11-30 00:25:00

On the embedded default (SQLite) a reveal audit, a bank-file download's audit, a bank account change, a user change
or a store remittance could be edited or deleted, where PostgreSQL refuses it. SQLite now refuses them too, with the
same words, letting through the one change PostgreSQL lets through: `commit_seq` set once at commit. (The triggers
name each table's columns as they are now: a migration adding a column, or rebuilding one of these tables, makes
its triggers again.)
"""
import sqlalchemy as sa
from alembic import op

revision = '0070'
down_revision = '0069'
branch_labels = None
depends_on = None

AUDITS = ("reveal_audits", "payout_downloads", "bank_account_changes", "store_account_changes", "user_changes",
          "store_remittances")


def _triggers(table: str) -> dict[str, str]:
    """The table's triggers (name → body): no column but `commit_seq` is ever set, `commit_seq` only once, no row
    deleted."""
    columns = [row[1] for row in op.get_bind().execute(sa.text(f"PRAGMA table_info({table})"))
               if row[1] != "commit_seq"]
    refused = f"SELECT RAISE(ABORT, '{table} is an append-only audit"
    return {f"{table}_no_update": f"BEFORE UPDATE OF {', '.join(columns)} ON {table} "
                                  f"BEGIN {refused} (UPDATE refused)'); END",
            f"{table}_ordered_once": f"BEFORE UPDATE OF commit_seq ON {table} WHEN OLD.commit_seq IS NOT NULL "
                                     f"BEGIN {refused} (UPDATE refused)'); END",
            f"{table}_no_delete": f"BEFORE DELETE ON {table} BEGIN {refused} (DELETE refused)'); END"}


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        for table in AUDITS:
            for name, body in _triggers(table).items():
                op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        for table in AUDITS:
            for name in _triggers(table):
                op.execute(f"DROP TRIGGER {name}")
