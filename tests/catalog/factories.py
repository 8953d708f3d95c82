"""Factories of the catalog domain: products, locations, and lots made through the inventory service."""
from __future__ import annotations

from datetime import date

import factory

from catalog import inventory
from catalog.models import Location, Lot, Product
from catalog.service import pinyin_keys
from tests.factories import BaseFactory
from tests.suppliers.factories import BenefitLinkFactory, HouseholdFactory, SupplierFactory


class ProductFactory(BaseFactory):
    """An active, certified product of a 昭觉 co-op."""

    class Meta:
        model = Product
        exclude = ("supplier",)

    supplier = factory.SubFactory(SupplierFactory)
    supplier_id = factory.SelfAttribute("supplier.id")
    sku = factory.Sequence(lambda n: f"TEST-{n:05d}")
    name = factory.Sequence(lambda n: f"测试产品{n}")
    name_pinyin = factory.LazyAttribute(lambda o: pinyin_keys(o.name)[0])
    name_initials = factory.LazyAttribute(lambda o: pinyin_keys(o.name)[1])
    description = ""
    category = "粮油"
    unit = "bag"
    net_weight_g = 500
    price_fen = 2000
    county_code = factory.SelfAttribute("supplier.county_code")
    status = "active"
    images = factory.LazyFunction(list)
    platform_fee_bp = 500
    store_commission_bp = 800
    household_premium_bp = 1000
    dividend_bp = 300
    certificate_number = factory.Sequence(lambda n: f"凉扶认测{n:04d}")
    certificate_issuer = "凉山州乡村振兴局"
    certificate_valid_from = date(2026, 1, 1)
    certificate_valid_until = date(2099, 12, 31)


class LocationFactory(BaseFactory):
    """A warehouse in 西昌."""

    class Meta:
        model = Location

    code = factory.Sequence(lambda n: f"WH-{n:03d}")
    name = factory.Sequence(lambda n: f"测试仓{n}")
    kind = "warehouse"
    region_code = "513401"


def make_lot(product: Product, location: Location, *, quantity: int = 10, harvested_on: date = date(2026, 9, 1),
             lot_code: str | None = None) -> Lot:
    """A lot with an explicit quantity, stocked at `location` through the inventory service."""
    make_lot.serial += 1
    return inventory.add_lot(product=product, location=location, lot_code=lot_code or f"L{make_lot.serial:05d}",
                             harvested_on=harvested_on, packed_on=None, village="测试村", quantity=quantity)


make_lot.serial = 0


def linked_households(supplier, count: int, *, village: str = "测试村", valid_from: date = date(2026, 1, 1)) -> list:
    """`count` households of `supplier`, each with a purchase link from `valid_from`."""
    households = []
    for _ in range(count):
        household = HouseholdFactory(supplier=supplier, village=village)
        BenefitLinkFactory(household=household, supplier_id=supplier.id, valid_from=valid_from)
        households.append(household)
    return households


def lot_body(product, location, households, **overrides) -> dict:
    """A valid `POST /lots` body with 10, 11, 12, … units from the households."""
    body = {"product_sku": product.sku, "lot_code": "2026-KQ-01", "harvested_on": "2026-09-03",
            "packed_on": "2026-09-05", "village": "三河村", "location_code": location.code,
            "contributions": [{"household_code": h.code, "quantity": 10 + i} for i, h in enumerate(households)]}
    return {**body, **overrides}
