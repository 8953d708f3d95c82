"""postings' references checked per statement instead of by six foreign keys

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26 20:00:00

A posting names its transaction, account, order line, allocation, lot and household. Six foreign keys checked
each of ~15 postings a line one by one (the attribution benchmark measured 2.3 of its 5 minutes of COPY in
them); the same references are now checked once per INSERT statement over all its rows, and a row they name
cannot be deleted while a posting names it.
"""
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

# (posting column, the table it names)
REFERENCES = (("transaction_id", "ledger_transactions"), ("account_id", "ledger_accounts"),
              ("order_line_id", "order_lines"), ("allocation_id", "allocations"), ("lot_id", "lots"),
              ("household_id", "households"))


def _missing(column: str, table: str) -> str:
    """SQL: true when a new posting names a `table` row that does not exist."""
    return (f"EXISTS (SELECT 1 FROM (SELECT DISTINCT {column} AS id FROM new_postings) n WHERE n.id IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {table} r WHERE r.id = n.id))")


PG_UPGRADE = (
    "DROP TRIGGER ledger_postings_to_unlinked_only ON ledger_postings",
    "DROP FUNCTION ledger_refuse_posting_to_linked()",
    # Postings go only to a transaction not yet linked (so the balance check at commit saw them all), and every row
    # they name exists.
    """CREATE FUNCTION ledger_check_new_postings() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM (SELECT DISTINCT transaction_id FROM new_postings) p
                 JOIN ledger_transactions t ON t.id = p.transaction_id WHERE t.seq IS NOT NULL) THEN
        RAISE EXCEPTION 'a linked ledger transaction takes no further postings'
          USING ERRCODE = 'insufficient_privilege';
      END IF;
""" + "".join(f"""      IF {_missing(column, table)} THEN
        RAISE EXCEPTION 'a ledger posting names a row missing from {table}'
          USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_ledger_postings_{column}_{table}';
      END IF;
""" for column, table in REFERENCES) + """      RETURN NULL;
    END $$""",
    """CREATE TRIGGER ledger_postings_checked AFTER INSERT ON ledger_postings
    REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_new_postings()""",
    # A row a posting names is never deleted (TG_ARGV[0] is the posting column that names it).
    """CREATE FUNCTION ledger_refuse_named_row_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE named boolean;
    BEGIN
      EXECUTE format('SELECT EXISTS (SELECT 1 FROM old_rows o JOIN ledger_postings p ON p.%I = o.id)', TG_ARGV[0])
        INTO named;
      IF named THEN
        RAISE EXCEPTION 'ledger postings name the % rows being deleted', TG_TABLE_NAME
          USING ERRCODE = 'foreign_key_violation';
      END IF;
      RETURN NULL;
    END $$""",
    *(f"""CREATE TRIGGER ledger_postings_name_{table} AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_named_row_delete('{column}')""" for column, table in REFERENCES),
    *(f"ALTER TABLE ledger_postings DROP CONSTRAINT fk_ledger_postings_{column}_{table}"
      for column, table in REFERENCES),
)

PG_DOWNGRADE = (
    *(f"""ALTER TABLE ledger_postings ADD CONSTRAINT fk_ledger_postings_{column}_{table}
    FOREIGN KEY ({column}) REFERENCES {table} (id)""" for column, table in REFERENCES),
    *(f"DROP TRIGGER ledger_postings_name_{table} ON {table}" for _, table in REFERENCES),
    "DROP FUNCTION ledger_refuse_named_row_delete()",
    "DROP TRIGGER ledger_postings_checked ON ledger_postings",
    "DROP FUNCTION ledger_check_new_postings()",
    """CREATE FUNCTION ledger_refuse_posting_to_linked() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM new_postings p JOIN ledger_transactions t ON t.id = p.transaction_id
                 WHERE t.seq IS NOT NULL) THEN
        RAISE EXCEPTION 'a linked ledger transaction takes no further postings'
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER ledger_postings_to_unlinked_only AFTER INSERT ON ledger_postings
    REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_posting_to_linked()""",
)

# SQLite (which this schema never asked to enforce foreign keys) gets the same checks row by row.
SQLITE_UPGRADE = (
    """CREATE TRIGGER ledger_postings_checked BEFORE INSERT ON ledger_postings
    WHEN """ + " OR ".join(
        f"(NEW.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {table} WHERE id = NEW.{column}))"
        for column, table in REFERENCES) + """
    BEGIN SELECT RAISE(ABORT, 'a ledger posting names a missing row'); END""",
    *(f"""CREATE TRIGGER ledger_postings_name_{table} BEFORE DELETE ON {table}
    WHEN EXISTS (SELECT 1 FROM ledger_postings WHERE {column} = OLD.id)
    BEGIN SELECT RAISE(ABORT, 'ledger postings name the {table} row being deleted'); END"""
      for column, table in REFERENCES),
)
SQLITE_DOWNGRADE = ("DROP TRIGGER ledger_postings_checked",
                    *(f"DROP TRIGGER ledger_postings_name_{table}" for _, table in REFERENCES))


def _foreign_keys(create: bool) -> None:
    """SQLite: drop (or re-create) the six foreign keys by rebuilding the table."""
    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        for column, table in REFERENCES:
            name = f"fk_ledger_postings_{column}_{table}"
            if create:
                batch_op.create_foreign_key(name, table, [column], ['id'])
            else:
                batch_op.drop_constraint(name, type_='foreignkey')


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_UPGRADE:
            op.execute(statement)
        return
    _foreign_keys(create=False)
    for statement in SQLITE_UPGRADE:
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_DOWNGRADE:
            op.execute(statement)
        return
    for statement in SQLITE_DOWNGRADE:
        op.execute(statement)
    _foreign_keys(create=True)
