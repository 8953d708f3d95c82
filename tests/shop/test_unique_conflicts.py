"""On SQLite (the embedded default): duplicates racing each other get the route's own code, as on PostgreSQL
(tests/integration/test_schema_constraints.py); every unique constraint of the models says what its duplicate is."""
from __future__ import annotations

import pytest
from sqlalchemy import PrimaryKeyConstraint, UniqueConstraint

from shop.db import db
from tests.integration.test_schema_constraints import DUPLICATES, race_duplicates


@pytest.mark.parametrize("route", sorted(DUPLICATES))
def test_every_racing_duplicate_gets_the_routes_own_code(app, route):
    race_duplicates(app, route)


def test_every_unique_constraint_of_the_models_says_what_its_duplicate_is(app):
    """Each unique constraint and unique index is mapped to its client-facing conflict, or listed (as None) as one no
    client request can break; so is a primary key a client names (regions' code)."""
    names = {c.name for table in db.metadata.tables.values() for c in table.constraints
             if isinstance(c, UniqueConstraint) and not isinstance(c, PrimaryKeyConstraint)}
    names |= {index.name for table in db.metadata.tables.values() for index in table.indexes if index.unique}
    registered = app.extensions["unique_conflicts"]
    assert sorted(names - set(registered)) == []
    assert registered["pk_regions"] is not None
