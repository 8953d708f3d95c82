"""The few reads only the storefront's pages need (no API route shows them in this shape): the donor districts
and the categories to choose from, the places stock is held, a product's lots on sale with their trace codes, and
whether an order's payment is being confirmed."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import aliased

from catalog.models import Location, Lot, Product, Stock
from catalog.queries import on_sale
from catalog.service import pinyin_keys
from orders.models import Store
from shop.db import db
from shop.regions.models import Pairing, Region
from shop.regions.service import valid_on
from suppliers.models import Supplier


@dataclass
class DonorDistrict:
    """A donor district and the recipient counties it is paired with today."""

    code: str
    name: str
    counties: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Place:
    """Where stock is held: a store (with its id, for pickup) or a warehouse (for delivery)."""

    location_id: int
    name: str
    store_id: int | None


def donor_districts(*, on: date) -> dict[str, list[DonorDistrict]]:
    """City name → its districts with their paired counties on `on`, by district code."""
    city, district, county = aliased(Region), aliased(Region), aliased(Region)
    rows = db.session.execute(
        select(city.name, district.code, district.name, county.name)
        .select_from(Pairing).join(district, district.code == Pairing.donor_code)
        .join(city, city.code == district.parent_code).join(county, county.code == Pairing.recipient_code)
        .where(valid_on(on)).order_by(city.code, district.code, county.code))
    cities: dict[str, dict[str, DonorDistrict]] = {}
    for city_name, code, name, county_name in rows:
        cities.setdefault(city_name, {}).setdefault(code, DonorDistrict(code, name)).counties.append(county_name)
    return {city_name: list(districts.values()) for city_name, districts in cities.items()}


def categories_on_sale() -> list[str]:
    """The categories of the products on sale, in pinyin order (菌菇, 粮油, 肉禽…)."""
    categories = db.session.scalars(select(Product.category).distinct()
                                    .join(Supplier, Supplier.id == Product.supplier_id).where(on_sale()))
    return sorted(categories, key=lambda category: (pinyin_keys(category)[0], category))


def places() -> dict[int, Place]:
    """Location id → the active store selling from it, or the warehouse."""
    rows = db.session.execute(
        select(Location.id, Location.name, Store.id, Store.name, Store.active)
        .outerjoin(Store, Store.location_id == Location.id).order_by(Location.id))
    return {location_id: Place(location_id, store_name or name, store_id)
            for location_id, name, store_id, store_name, active in rows if store_id is None or active}


@dataclass(frozen=True)
class LotOnSale:
    """A lot of a product with units available somewhere, and its public trace code."""

    trace_code: str
    lot_code: str
    harvested_on: date
    village: str
    available: int


def names_off_sale(skus: list[str]) -> dict[str, str]:
    """SKU → name of the products among `skus` once shown (archived, or active of a supplier no longer selling; a draft
    was never shown, so stays a SKU)."""
    if not skus:
        return {}
    return dict(db.session.execute(select(Product.sku, Product.name).where(Product.sku.in_(skus),
                                                                           Product.status != "draft")).all())


def lots_on_sale(*, sku: str, limit: int) -> tuple[list[LotOnSale], int]:
    """The first `limit` of the product's lots with available units (summed over the locations selling, as `places`
    has them: a closed store's shelves sell nothing), oldest harvest first (the order stock is sold in), and how many
    such lots there are in all."""
    available = Stock.on_hand - Stock.reserved
    rows = db.session.execute(
        select(Lot.trace_code, Lot.lot_code, Lot.harvested_on, Lot.village, func.sum(available), func.count().over())
        .join(Stock, Stock.lot_id == Lot.id).join(Product, Product.id == Lot.product_id)
        .outerjoin(Store, Store.location_id == Stock.location_id)
        .where(Product.sku == sku, available > 0, or_(Store.id.is_(None), Store.active.is_(True)))
        .group_by(Lot.id, Lot.trace_code, Lot.lot_code, Lot.harvested_on, Lot.village)
        .order_by(Lot.harvested_on, Lot.id).limit(limit)).all()
    return [LotOnSale(*row[:-1]) for row in rows], rows[0][-1] if rows else 0
