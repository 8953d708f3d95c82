"""identifiers re-normalised and re-hashed, hash-key fingerprint, supplier agreements, account audit, no overlaps

Every identifier column is brought to its one spelling (`shop.fields.normalise_identifier`):
usernames lower case; USCCs, ID numbers and bank accounts upper case without separators;
household, product, lot, trace and location codes upper case. ID numbers are re-hashed with
`FIELD_HASH_KEY`, whose fingerprint is stored. If normalising would make two rows one (same
unique key or same person), the upgrade stops before writing anything and lists them, masked,
for an operator to resolve; nothing is merged.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00

"""
import sqlalchemy as sa
from alembic import op

from shop.fields import normalise_identifier
from shop import crypto

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

AGREEMENT = {"platform_fee_bp": 500, "store_commission_bp": 800, "household_premium_bp": 300, "dividend_bp": 200}
AGREEMENT_CHECK = ("platform_fee_bp BETWEEN 0 AND 10000 AND store_commission_bp BETWEEN 0 AND 10000 "
                   "AND household_premium_bp BETWEEN 0 AND 10000 AND dividend_bp BETWEEN 0 AND 10000 "
                   "AND platform_fee_bp + store_commission_bp + household_premium_bp + dividend_bp <= 10000")

# table, key column, columns normalised with their rule, columns that together must stay unique
PLAIN_COLUMNS = [
    ("users", "id", {"username": dict(case="lower")}, [("username",)]),
    ("suppliers", "id", {"uscc": dict(case="upper", drop_separators=True)}, [("uscc",)]),
    ("households", "id", {"code": dict(case="upper")}, [("county_code", "code")]),
    ("products", "id", {"sku": dict(case="upper")}, [("sku",)]),
    ("lots", "id", {"lot_code": dict(case="upper"), "trace_code": dict(case="upper")},
     [("supplier_id", "lot_code"), ("trace_code",)]),
    ("locations", "id", {"code": dict(case="upper")}, [("code",)]),
]
ACCOUNT_TABLES = ("suppliers", "households")


def _mask(value) -> str:
    """A value shown to the operator: an identifier keeps at most its first 6 and last 4 characters."""
    text = str(value)
    if len(text) >= 12:
        return text[:6] + "*" * (len(text) - 10) + text[-4:]
    return text[:2] + "*" * max(len(text) - 2, 0)


def _plan(conn) -> tuple[dict, list[str]]:
    """The updates to make, {(table, id): {column: value}}, and every duplicate they would create."""
    updates: dict[tuple[str, int], dict] = {}
    problems: list[str] = []
    for table, key, rules, uniques in PLAIN_COLUMNS:
        columns = sorted({key, *rules, *(c for unique in uniques for c in unique)})
        rows = conn.execute(sa.text(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {key}")).mappings().all()
        normalised = []
        for row in rows:
            new = dict(row)
            for column, rule in rules.items():
                if row[column] is not None:
                    new[column] = normalise_identifier(row[column], **rule)
                    if new[column] != row[column]:
                        updates.setdefault((table, row[key]), {})[column] = new[column]
            normalised.append(new)
        for unique in uniques:
            problems += _duplicates(table, key, unique, normalised)
    households = conn.execute(sa.text(
        "SELECT id, id_number_enc, id_number_hash FROM households ORDER BY id")).mappings().all()
    people = []
    for row in households:
        stored = crypto.decrypt(row["id_number_enc"], field="households.id_number")
        number = normalise_identifier(stored, case="upper", drop_separators=True)
        people.append({"id": row["id"], "id_number_hash": crypto.lookup_hash(number), "number": _mask(number)})
        change = updates.setdefault(("households", row["id"]), {})
        change["id_number_hash"] = people[-1]["id_number_hash"]
        if stored != number:
            change["id_number_enc"] = crypto.encrypt(number, field="households.id_number")
    problems += _duplicates("households", "id", ("id_number_hash",), people, shown="number")
    for table in ACCOUNT_TABLES:
        field = f"{table}.bank_account"
        for row_id, token in conn.execute(sa.text(
                f"SELECT id, bank_account_enc FROM {table} WHERE bank_account_enc IS NOT NULL")):
            value = crypto.decrypt(token, field=field)
            account = normalise_identifier(value, case="upper", drop_separators=True)
            if account != value:
                updates.setdefault((table, row_id), {})["bank_account_enc"] = crypto.encrypt(account, field=field)
    return updates, problems


def _duplicates(table: str, key: str, unique: tuple[str, ...], rows: list[dict], shown: str | None = None) -> list:
    """One line per group of rows that share the values of `unique` after normalisation."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        values = tuple(row[column] for column in unique)
        if None not in values:
            groups.setdefault(values, []).append(row)
    lines = []
    for values, members in groups.items():
        if len(members) > 1:
            ids = ", ".join(str(member[key]) for member in members)
            label = members[0][shown] if shown else "/".join(_mask(value) for value in values)
            lines.append(f"{table}.{'+'.join(unique)} {label}: ids {ids}")
    return lines


def upgrade():
    conn = op.get_bind()
    updates, problems = _plan(conn)
    if problems:
        raise RuntimeError("Normalising identifiers would make these rows duplicates; resolve them (merge or "
                           "correct by hand) and run the upgrade again: " + "; ".join(problems))

    with op.batch_alter_table('suppliers', schema=None) as batch_op:
        for column, default in AGREEMENT.items():
            batch_op.add_column(sa.Column(column, sa.Integer(), nullable=False, server_default=str(default)))
        batch_op.create_check_constraint(op.f('ck_suppliers_agreement'), AGREEMENT_CHECK)

    op.create_table('bank_account_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=True),
    sa.Column('supplier_id', sa.Integer(), nullable=True),
    sa.Column('old_masked', sa.String(length=40), nullable=True),
    sa.Column('new_masked', sa.String(length=40), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(household_id IS NULL) != (supplier_id IS NULL)',
                       name=op.f('ck_bank_account_changes_one_subject')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'],
                            name=op.f('fk_bank_account_changes_household_id_households')),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'],
                            name=op.f('fk_bank_account_changes_supplier_id_suppliers')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_bank_account_changes_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_account_changes'))
    )
    with op.batch_alter_table('bank_account_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bank_account_changes_household_id'), ['household_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bank_account_changes_supplier_id'), ['supplier_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bank_account_changes_user_id'), ['user_id'], unique=False)

    op.create_table('key_fingerprints',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_key_fingerprints'))
    )

    for (table, row_id), values in updates.items():
        assignments = ", ".join(f"{column} = :{column}" for column in values)
        conn.execute(sa.text(f"UPDATE {table} SET {assignments} WHERE id = :row_id"), {**values, "row_id": row_id})
    conn.execute(sa.text("INSERT INTO key_fingerprints (name, fingerprint, updated_at) "
                         "VALUES ('lookup_hash', :fingerprint, CURRENT_TIMESTAMP)"),
                 {"fingerprint": crypto.hash_key_fingerprint()})

    if conn.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute("ALTER TABLE benefit_links ADD CONSTRAINT ex_benefit_links_no_overlap EXCLUDE USING gist "
                   "(supplier_id WITH =, household_id WITH =, kind WITH =, "
                   "daterange(valid_from, valid_until, '[]') WITH &&) WHERE (kind <> 'dividend')")
        op.execute("ALTER TABLE pairings ADD CONSTRAINT ex_pairings_no_overlap EXCLUDE USING gist "
                   "(donor_code WITH =, recipient_code WITH =, program WITH =, "
                   "daterange(valid_from, valid_until, '[]') WITH &&)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE pairings DROP CONSTRAINT ex_pairings_no_overlap")
        op.execute("ALTER TABLE benefit_links DROP CONSTRAINT ex_benefit_links_no_overlap")
    op.drop_table('key_fingerprints')
    with op.batch_alter_table('bank_account_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bank_account_changes_user_id'))
        batch_op.drop_index(batch_op.f('ix_bank_account_changes_supplier_id'))
        batch_op.drop_index(batch_op.f('ix_bank_account_changes_household_id'))
    op.drop_table('bank_account_changes')
    with op.batch_alter_table('suppliers', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_suppliers_agreement'), type_='check')
        for column in reversed(list(AGREEMENT)):
            batch_op.drop_column(column)
