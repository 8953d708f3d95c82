"""On PostgreSQL, the migrated schema has exactly the CHECK, exclusion and unique constraints of the models.

Alembic's autogenerate comparison (tests/shop/test_migrations.py) ignores CHECK and exclusion constraints,
so a migration can silently lack one the models declare (or keep one they dropped). Here the database
migrated to head is compared with a second database built by `db.metadata.create_all()`, per table, on
(constraint name, `pg_get_constraintdef`).
"""
from __future__ import annotations

from collections import defaultdict

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shop.db import db
from tests.conftest import make_app

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
