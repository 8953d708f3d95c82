"""Fixtures of the stores tests: a store with a stocked warehouse, and headers of each store's staff."""
from __future__ import annotations

from datetime import date

import pytest

from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.orders.factories import StoreFactory


@pytest.fixture
def store(app):
    """A store in 顺德区 with its own store location."""
    store = StoreFactory()
    db.session.commit()
    return store


@pytest.fixture
def staff_of(login):
    """Authorization headers of a clerk of `store`."""
    return lambda store: login("store_staff", store_id=store.id)


@pytest.fixture
def stocked_warehouse(app):
    """A warehouse holding one product in two lots: 5 units harvested first, then 8 (FIFO order)."""
    warehouse, product = LocationFactory(), ProductFactory()
    old = make_lot(product, warehouse, quantity=5, harvested_on=date(2026, 8, 1))
    new = make_lot(product, warehouse, quantity=8, harvested_on=date(2026, 9, 1))
    db.session.commit()
    return warehouse, product, old, new
