"""Factories of the orders tests: stores with their stock location, shifts (extend, never fork)."""
from __future__ import annotations

import factory

from orders.models import Shift, Store
from shop.db import db
from tests.catalog.factories import LocationFactory
from tests.factories import BaseFactory


class StoreFactory(BaseFactory):
    """A 大凉山 experience store in 顺德区 with its own store location."""

    class Meta:
        model = Store

    name = factory.Sequence(lambda n: f"大凉山体验店 {n}")
    district_code = "440606"
    location = factory.SubFactory(LocationFactory, kind="store", region_code="440606")
    location_id = factory.SelfAttribute("location.id")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        kwargs.pop("location", None)
        return super()._create(model_class, *args, **kwargs)


class ShiftFactory(BaseFactory):
    """An open shift with a ¥200 float."""

    class Meta:
        model = Shift

    store_id = factory.SelfAttribute("store.id")
    store = factory.SubFactory(StoreFactory)
    opened_by = factory.SelfAttribute("opener.id")
    opener = factory.SubFactory("tests.factories.UserFactory", role="admin")
    float_fen = 20000

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        kwargs.pop("store", None)
        kwargs.pop("opener", None)
        return super()._create(model_class, *args, **kwargs)


def flushed(row):
    """`row` once the session has written it (its id assigned)."""
    db.session.flush()
    return row
