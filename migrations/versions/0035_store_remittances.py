"""store remittances: a store's counter cash handed over to the platform's bank account, a ledger transaction kind

Revision ID: 0035
Revises: 0034
Create Date: 2026-11-28 01:30:00

A cash sale's money is held by the store (`store_cash:<id>`), but nothing recorded that the store handed it over, so
its cash held and "to remit" grew for ever and a store payout batch netted its commission against all of it. An admin
now records a remittance: a row here and a `store_remittance` ledger transaction (the cash into `payments:bank`, the
commission the store kept out of it off its commission account). Remittances are append-only on PostgreSQL, as the
audits are (0034's function).
"""
import sqlalchemy as sa
from alembic import op

revision = '0035'
down_revision = '0034'
branch_labels = None
depends_on = None

KINDS = ("line_paid", "line_refunded", "refund_remainder", "payment_unallocated", "payment_returned", "payout",
         "payout_failed", "processor_fee")


# 0015's SQLite triggers naming ledger_transactions: dropped while SQLite rebuilds the table, then made again
POSTING_REFERENCES = (("transaction_id", "ledger_transactions"), ("account_id", "ledger_accounts"),
                      ("order_line_id", "order_lines"), ("allocation_id", "allocations"), ("lot_id", "lots"),
                      ("household_id", "households"))
SQLITE_TRIGGERS = (
    """CREATE TRIGGER ledger_postings_checked BEFORE INSERT ON ledger_postings
    WHEN """ + " OR ".join(
        f"(NEW.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {table} WHERE id = NEW.{column}))"
        for column, table in POSTING_REFERENCES) + """
    BEGIN SELECT RAISE(ABORT, 'a ledger posting names a missing row'); END""",
    """CREATE TRIGGER ledger_postings_name_ledger_transactions BEFORE DELETE ON ledger_transactions
    WHEN EXISTS (SELECT 1 FROM ledger_postings WHERE transaction_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, 'ledger postings name the ledger_transactions row being deleted'); END""",
)


def _kinds(kinds: tuple[str, ...]) -> None:
    """Replace the ledger transactions' kind check (SQLite rebuilds the table, its postings' triggers set aside)."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("DROP TRIGGER ledger_postings_checked")
        op.execute("DROP TRIGGER ledger_postings_name_ledger_transactions")
    with op.batch_alter_table("ledger_transactions") as batch:
        batch.drop_constraint(op.f("ck_ledger_transactions_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_ledger_transactions_kind"),
                                      "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")")
    if sqlite:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def upgrade():
    _kinds((*KINDS, "store_remittance"))
    op.create_table(
        "store_remittances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("commission_kept_fen", sa.BigInteger(), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_fen > 0 AND commission_kept_fen >= 0", name=op.f("ck_store_remittances_amounts")),
        sa.ForeignKeyConstraint(["recorded_by"], ["users.id"], name=op.f("fk_store_remittances_recorded_by_users")),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name=op.f("fk_store_remittances_store_id_stores")),
        sa.ForeignKeyConstraint(["transaction_id"], ["ledger_transactions.id"],
                                name=op.f("fk_store_remittances_transaction_id_ledger_transactions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_remittances")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_store_remittances_transaction_id")),
        sa.UniqueConstraint("store_id", "reference", name="uq_store_remittances_store_reference"),
    )
    op.create_index(op.f("ix_store_remittances_store_id"), "store_remittances", ["store_id"], unique=False)
    op.create_index(op.f("ix_store_remittances_created_at"), "store_remittances", ["created_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""CREATE TRIGGER store_remittances_append_only BEFORE UPDATE OR DELETE ON store_remittances
        FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()""")


def downgrade():
    op.drop_index(op.f("ix_store_remittances_created_at"), table_name="store_remittances")
    op.drop_index(op.f("ix_store_remittances_store_id"), table_name="store_remittances")
    op.drop_table("store_remittances")
    _kinds(KINDS)  # refused while the ledger holds a remittance: its transactions are append-only
