"""On PostgreSQL, the migrated schema has exactly the CHECK, exclusion and unique constraints of the models, and
every unique constraint a client's duplicate can break answers that duplicate with the route's own code.

Alembic's autogenerate comparison (tests/shop/test_migrations.py) ignores CHECK and exclusion constraints,
so a migration can silently lack one the models declare (or keep one they dropped). Here the database
migrated to head is compared with a second database built by `db.metadata.create_all()`, per table, on
(constraint name, `pg_get_constraintdef`). Identical creates sent at once all pass the route's duplicate check
before any commits: the losers must still get its code (`username_taken`, `sku_taken`, …), not the generic
`conflict` (tests/shop/test_unique_conflicts.py runs the same races on SQLite).
"""
from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory
from tests.catalog.test_products import product_body
from tests.conftest import make_app
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.parallel import post_together
from tests.suppliers.factories import SupplierFactory, household_payload, make_id_number, make_uscc

pytestmark = pytest.mark.postgres

CONSTRAINTS = text("""
    SELECT rel.relname, con.conname, con.contype, pg_get_constraintdef(con.oid)
    FROM pg_constraint con
    JOIN pg_class rel ON rel.oid = con.conrelid
    JOIN pg_namespace nsp ON nsp.oid = rel.relnamespace
    WHERE nsp.nspname = 'public' AND con.contype IN ('c', 'x', 'u') AND rel.relname <> 'alembic_version'
""")
KINDS = {"c": "CHECK", "x": "EXCLUDE", "u": "UNIQUE"}


def constraints(url: str) -> dict[str, set[tuple[str, str, str]]]:
    """Per table: (kind, name, definition) of its CHECK, exclusion and unique constraints."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = defaultdict(set)
            for table, name, kind, definition in conn.execute(CONSTRAINTS):
                found[table].add((KINDS[kind], name, definition))
            return dict(found)
    finally:
        engine.dispose()


def diff(migrated: dict, modelled: dict) -> list[str]:
    """Readable lines for every constraint that only one of the two schemas has."""
    lines = []
    for table in sorted(set(migrated) | set(modelled)):
        for kind, name, definition in sorted(migrated.get(table, set()) - modelled.get(table, set())):
            lines.append(f"{table}: only in the migrations: {kind} {name} {definition}")
        for kind, name, definition in sorted(modelled.get(table, set()) - migrated.get(table, set())):
            lines.append(f"{table}: only in the models:     {kind} {name} {definition}")
    return lines


@pytest.fixture
def modelled_url(_pg_migrated, tmp_path):
    """A second database on the same server (`<name>_models`), built by `create_all()` from the models."""
    url = make_url(_pg_migrated)
    url = url.set(database=f"{url.database}_models")
    rendered = url.render_as_string(hide_password=False)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    # the extensions the migrations install (exclusion constraints, trigram search); create_all() installs none
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    engine.dispose()
    app = make_app(tmp_path, DATABASE_URL=rendered)
    with app.app_context():
        db.metadata.create_all(db.engine)
        db.engine.dispose()
    yield rendered
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def test_the_diff_sees_a_missing_check_constraint():
    """The comparison itself reports a constraint that one side lacks, by table, kind, name and definition."""
    migrated = {"users": {("CHECK", "ck_users_role", "CHECK (role <> '')")}}
    assert diff(migrated, {}) == ["users: only in the migrations: CHECK ck_users_role CHECK (role <> '')"]
    assert diff({}, migrated) == ["users: only in the models:     CHECK ck_users_role CHECK (role <> '')"]


def test_migrations_create_the_models_check_exclusion_and_unique_constraints(_pg_migrated, modelled_url):
    """Head of the migrations and the models agree on every CHECK, EXCLUDE and UNIQUE constraint."""
    migrated, modelled = constraints(_pg_migrated), constraints(modelled_url)
    assert any(kind == "CHECK" for rows in migrated.values() for kind, _, _ in rows), "no CHECK found: bad query"
    lines = diff(migrated, modelled)
    assert not lines, "the migrated schema and the models differ:\n" + "\n".join(lines)


# --- racing duplicates ---------------------------------------------------------------------------------------

RACERS = 10


def _admin(client) -> dict:
    """Authorization headers of a new admin."""
    user = UserFactory(role="admin")
    db.session.commit()
    token = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
    return {"Authorization": f"Bearer {token.json['access_token']}"}




def _same(headers: dict, body: dict) -> list[tuple[dict, dict]]:
    """RACERS identical requests."""
    return [(headers, body)] * RACERS


def _users(headers):
    return "/api/v1/users", _same(headers, {"username": "racer.one", "password": "racing-pass-1", "role": "auditor"})


def _products(headers):
    supplier = SupplierFactory()
    db.session.commit()
    body = product_body(sku="RACE-SKU-1", supplier_id=supplier.id)  # names differ: test_products races a name
    return "/api/v1/products", [(headers, {**body, "name": f"竞速苦荞茶{i}"}) for i in range(RACERS)]


def _lots(headers):
    product, location = ProductFactory(), LocationFactory()
    db.session.commit()
    body = {"product_sku": product.sku, "lot_code": "RACE-LOT-1", "harvested_on": "2026-09-03", "village": "三河村",
            "location_code": location.code, "quantity": 10}
    return "/api/v1/lots", [({**headers, "Idempotency-Key": f"lot-race-{i}"}, body) for i in range(RACERS)]


def _locations(headers):
    body = {"code": "RACE-WH", "name": "竞速仓", "kind": "warehouse", "region_code": "440604"}
    return "/api/v1/locations", _same(headers, body)


def _location_look_alikes(headers):
    codes = ["RACE-WH", "RACE_WH", "RACE.WH", "race-wh", "ＲＡＣＥ－ＷＨ", "ＲＡＣＥ＿ＷＨ", "Race_Wh", "RACE\u200b.WH",
             "race.wh", "RACE\u2010WH"]
    return "/api/v1/locations", [(headers, {"code": code, "name": "竞速仓", "kind": "warehouse",
                                            "region_code": "440604"}) for code in codes[:RACERS]]


def _lot_look_alikes(headers):
    product, location = ProductFactory(), LocationFactory()
    db.session.commit()
    body = {"product_sku": product.sku, "harvested_on": "2026-09-03", "village": "三河村",
            "location_code": location.code, "quantity": 10}
    codes = ["RACE-LOT-2", "RACE_LOT_2", "RACE.LOT.2", "race-lot_2", "ＲＡＣＥ－ＬＯＴ－２", "RACE_LOT.2", "Race.Lot-2",
             "RACE-LOT.2", "race_lot_2", "RACE\u2010LOT\u20102"]
    return "/api/v1/lots", [({**headers, "Idempotency-Key": f"lot-look-alike-{i}"}, {**body, "lot_code": code})
                            for i, code in enumerate(codes[:RACERS])]


def _suppliers(headers):
    body = {"kind": "cooperative", "uscc": make_uscc(9101), "county_code": "513431"}  # names differ, as for stores
    return "/api/v1/suppliers", [(headers, {**body, "name": f"昭觉县竞速合作社{i}"}) for i in range(RACERS)]


def _stores(headers):
    LocationFactory(code="RACE-ST", kind="store", region_code="440604")
    db.session.commit()
    body = {"district_code": "440604", "location_code": "RACE-ST"}  # names differ: tests/orders/stores races a name
    return "/api/v1/stores", [(headers, {**body, "name": f"竞速店{i}"}) for i in range(RACERS)]


def _household_codes(headers):
    supplier = SupplierFactory()
    db.session.commit()
    return (f"/api/v1/suppliers/{supplier.id}/households",
            [(headers, household_payload(code="RACE-R1")) for _ in range(RACERS)])


def _household_people(headers):
    supplier = SupplierFactory()
    db.session.commit()
    id_number = make_id_number()
    return (f"/api/v1/suppliers/{supplier.id}/households",
            [(headers, household_payload(id_number=id_number)) for _ in range(RACERS)])


def _regions(headers):
    body = {"code": "440699", "name": "竞速区", "level": "county", "parent_code": "440600", "side": "donor"}
    return "/api/v1/regions", _same(headers, body)


def _pairings(headers):
    body = {"donor_code": "440604", "recipient_code": "513432", "valid_from": "2031-01-01",
            "program": "竞速合作"}
    return "/api/v1/pairings", [(headers, {**body, "program": f"竞速合作{i}"}) for i in range(RACERS)]


# a household's code is unique in its county and among its supplier's households: a racer may break either first,
# and each answers household_code_taken with its own message
TWO_CONSTRAINTS = {"household_codes"}
DUPLICATES = {  # route: (its requests, the code every loser gets)
    "users": (_users, "username_taken"),
    "products": (_products, "sku_taken"),
    "lots": (_lots, "lot_code_taken"),
    "lot_look_alikes": (_lot_look_alikes, "lot_code_taken"),
    "locations": (_locations, "location_code_taken"),
    "location_look_alikes": (_location_look_alikes, "location_code_taken"),
    "suppliers": (_suppliers, "uscc_taken"),
    "stores": (_stores, "location_taken"),
    "household_codes": (_household_codes, "household_code_taken"),
    "household_people": (_household_people, "household_exists"),
    "regions": (_regions, "region_exists"),
    "pairings": (_pairings, "pairing_overlaps"),
}


def race_duplicates(app, route: str) -> None:
    """RACERS duplicates sent at once: one is created, every other gets the code its sequential duplicate gets, with
    the same message and details."""
    make_requests, code = DUPLICATES[route]
    client = app.test_client()
    url, requests = make_requests(_admin(client))

    results = post_together(app, url, requests)

    assert Counter(status for status, _ in results) == Counter({201: 1, 409: RACERS - 1}), results
    losers = [body["error"] for status, body in results if status == 409]
    assert {error["code"] for error in losers} == {code}, losers
    headers, body = requests[next(i for i, (status, _) in enumerate(results) if status == 409)]
    sequential = client.post(url, json=body, headers={**headers, "Idempotency-Key": "sequential"})
    assert sequential.status_code == 409 and sequential.json["error"]["code"] == code
    unlike = [error for error in losers if error != sequential.json["error"]]
    assert not unlike or route in TWO_CONSTRAINTS, (unlike[:1], sequential.json)


@pytest.mark.parametrize("route", sorted(DUPLICATES))
def test_every_racing_duplicate_gets_the_routes_own_code(pg_app, route):
    race_duplicates(pg_app, route)


def test_every_unique_constraint_of_the_schema_says_what_its_duplicate_is(pg_app):
    """Each UNIQUE constraint (and unique index) of the migrated schema is mapped to its client-facing conflict, or
    listed as one no client request can break."""
    rows = db.session.execute(text(
        "SELECT con.conname FROM pg_constraint con JOIN pg_namespace nsp ON nsp.oid = con.connamespace "
        "WHERE nsp.nspname = 'public' AND con.contype = 'u' "
        "UNION SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexdef LIKE 'CREATE UNIQUE%' "
        "AND indexname NOT LIKE 'pk\\_%' AND indexname <> 'alembic_version_pkc'")).scalars().all()
    assert rows, "no unique constraint found: bad query"
    assert sorted(set(rows) - set(pg_app.extensions["unique_conflicts"])) == []
