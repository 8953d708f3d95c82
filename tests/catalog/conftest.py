"""Fixtures of the catalog tests: a co-op with its user, and a second, foreign co-op."""
from __future__ import annotations

import pytest

from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, linked_households
from tests.suppliers.factories import SupplierFactory


@pytest.fixture
def coop(login):
    """A 昭觉 co-op and the Authorization headers of its user."""
    supplier = SupplierFactory()
    db.session.commit()
    return supplier, login("coop", supplier_id=supplier.id)


@pytest.fixture
def other_coop(login):
    """Another co-op (in 雷波) and its user's headers."""
    supplier = SupplierFactory(county_code="513437")
    db.session.commit()
    return supplier, login("coop", supplier_id=supplier.id)


@pytest.fixture
def coop_world(coop):
    """The co-op's product, a warehouse and three linked households, committed."""
    supplier, headers = coop
    world = {"product": ProductFactory(supplier=supplier), "location": LocationFactory(),
             "households": linked_households(supplier, 3), "headers": headers, "supplier": supplier}
    db.session.commit()
    return world
