"""The public catalog read path: each read is one SQL statement returning rows shaped as the API shows them.

A product row carries its county's and supplier's names (joined, not fetched one by one), so a product
page with its live stock, a page of products and a lot's trace with its households each cost one statement,
run outside a transaction on PostgreSQL: a single statement is consistent on its own, and a public read
then costs no BEGIN and ROLLBACK round trips.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from sqlalchemy import ColumnElement, Select, and_, bindparam, exists, func, or_, select, true, tuple_
from sqlalchemy.orm import aliased

from catalog.models import RATE_FIELDS, Lot, LotContribution, Product, Stock
from shop.db import db
from shop.regions.models import Pairing, Region
from shop.regions.service import valid_on
from suppliers.models import Supplier

PRODUCT_COLUMNS = (
    Product.id, Product.sku, Product.name, Product.description, Product.category, Product.unit,
    Product.net_weight_g, Product.price_fen, Product.status, Product.county_code, Product.supplier_id,
    Product.images, *(getattr(Product, name) for name in RATE_FIELDS), Product.certificate_number,
    Product.certificate_issuer, Product.certificate_valid_from, Product.certificate_valid_until,
    Region.name.label("county_name"), Supplier.name.label("supplier_name"), Supplier.active.label("supplier_active"),
)


def _run(statement, params: dict[str, Any]) -> list[Any]:
    """Run one read statement: outside a transaction on PostgreSQL when nothing has used the session yet (no
    BEGIN/ROLLBACK round trips; a single statement is consistent on its own), and then hand the connection back
    at once, so anything the request does next runs in a transaction as usual."""
    session = db.session()
    if session.in_transaction() or session.get_bind().dialect.name != "postgresql":
        return session.connection().execute(statement, params).all()
    try:
        return session.connection(execution_options={"isolation_level": "AUTOCOMMIT"}).execute(statement, params).all()
    finally:
        session.close()  # back to the pool with its isolation level reset


def products_select(*extra) -> Select:
    """Products with their county's and supplier's names, and `extra` columns."""
    return (select(*PRODUCT_COLUMNS, *extra).join(Region, Region.code == Product.county_code)
            .join(Supplier, Supplier.id == Product.supplier_id))


def register_closed_locations(app: Flask, locations: Select) -> None:
    """Let the orders domain name the locations that sell nothing (a deactivated store's back room): a select of
    their ids. Their stock is offered nowhere: not on a product's page, nor by `in_stock_at`."""
    app.extensions["catalog_closed_locations"] = locations


def selling(location_id: ColumnElement[int]) -> ColumnElement[bool]:
    """The SQL condition: stock at `location_id` is offered (its location is not a closed one)."""
    closed = current_app.extensions.get("catalog_closed_locations")
    return true() if closed is None else location_id.not_in(closed)


# Built once: a statement's construction costs as much CPU as its execution.
PRODUCTS = products_select()
_AVAILABLE = func.sum(Stock.on_hand - Stock.reserved).label("available")


def _product_with_stock() -> Select:
    """The product with SKU `sku` and its available units per location offered (`selling`), built once per app."""
    statement = current_app.extensions.get("catalog_product_with_stock")
    if statement is None:
        statement = current_app.extensions["catalog_product_with_stock"] = (
            products_select(Stock.location_id, _AVAILABLE)
            .outerjoin(Stock, and_(Stock.product_id == Product.id, selling(Stock.location_id)))
            .where(Product.sku == bindparam("sku"))
            .group_by(Product.id, Region.name, Supplier.name, Supplier.active, Stock.location_id)
            .order_by(Stock.location_id))
    return statement


_PREFECTURE = aliased(Region, name="prefecture")
LOT_TRACE = (
    products_select(Lot.id.label("lot_id"), Lot.trace_code, Lot.lot_code, Lot.harvested_on, Lot.packed_on,
                    Lot.village, Lot.attributed_fen, _PREFECTURE.code.label("prefecture_code"),
                    _PREFECTURE.name.label("prefecture_name"), LotContribution.village.label("household_village"),
                    func.count(LotContribution.id).label("households"))
    .outerjoin(_PREFECTURE, _PREFECTURE.code == Region.parent_code)
    .join(Lot, Lot.product_id == Product.id).outerjoin(LotContribution, LotContribution.lot_id == Lot.id)
    .where(Lot.trace_code == bindparam("code"))
    .group_by(Lot.id, Product.id, Region.name, _PREFECTURE.code, _PREFECTURE.name, Supplier.name, Supplier.active,
              LotContribution.village))


def product_with_stock(code: str) -> list[Any]:
    """The product with SKU `code` and its live available units per location that sells: one row per location
    (a single row with location None when it has no stock there), or no rows."""
    return _run(_product_with_stock(), {"sku": code})


def certified_on(on) -> ColumnElement[bool]:
    """The SQL condition: the product's certificate is valid on `on`."""
    return ((Product.certificate_number.is_not(None)) & (Product.certificate_valid_until >= on)
            & or_(Product.certificate_valid_from.is_(None), Product.certificate_valid_from <= on))


def _name_like(name: ColumnElement[bool]) -> ColumnElement[bool]:
    """`q` in the name, or in the pinyin or initials when it is letters and digits (LIKE patterns, '/' escapes)."""
    return or_(name, Product.name_pinyin.like(bindparam("q_letters"), escape="/"),
               Product.name_initials.like(bindparam("q_letters"), escape="/"))


def on_sale() -> ColumnElement[bool]:
    """The SQL condition: the product is on sale (active, and its supplier too)."""
    return (Product.status == "active") & Supplier.active.is_(True)


# The product list's filters, each a condition on bound parameters (named after the filter; "on": today).
LIST_FILTERS = {
    "active": on_sale,
    "coop_scope": lambda: or_(on_sale(), Product.supplier_id == bindparam("coop_supplier_id")),
    "status": lambda: Product.status == bindparam("status"),
    "supplier_id": lambda: Product.supplier_id == bindparam("supplier_id"),
    "county": lambda: Product.county_code == bindparam("county"),
    "donor": lambda: Product.county_code.in_(select(Pairing.recipient_code).where(
        Pairing.donor_code == bindparam("donor"), valid_on(bindparam("on")))),
    "category": lambda: Product.category == bindparam("category"),
    "q_name": lambda: Product.name_folded.like(bindparam("q_name"), escape="/"),
    "q_letters": lambda: _name_like(Product.name_folded.like(bindparam("q_name"), escape="/")),
    "min_price_fen": lambda: Product.price_fen >= bindparam("min_price_fen"),
    "max_price_fen": lambda: Product.price_fen <= bindparam("max_price_fen"),
    "certified": lambda: certified_on(bindparam("on")),
    "uncertified": lambda: ~certified_on(bindparam("on")),
    "in_stock_at": lambda: exists().where(Stock.product_id == Product.id, Stock.location_id == bindparam("in_stock_at"),
                                          Stock.on_hand > Stock.reserved, selling(Stock.location_id)),
}
# The product list's orders (`sort`): the key columns, unique with the id last, and whether they run descending.
LIST_ORDERS = {
    "id": ((Product.id,), False),
    "newest": ((Product.id,), True),
    "price_asc": ((Product.price_fen, Product.id), False),
    "price_desc": ((Product.price_fen, Product.id), True),
}
_LIST_SHAPES: dict[tuple[tuple[str, ...], str, bool], Select] = {}


def after_params(sort: str, values: list[Any]) -> dict[str, Any]:
    """The bound parameters of `product_page`'s `after`: the key values (`LIST_ORDERS[sort]`) of the last row seen."""
    return {f"after_{key.key}": value for key, value in zip(LIST_ORDERS[sort][0], values, strict=True)}


def product_page(filters: tuple[str, ...], params: dict[str, Any], *, sort: str, after: bool,
                 limit: int) -> list[Any]:
    """Up to `limit` products by the named `LIST_FILTERS` with their `params`, in the order `sort` names, `after`
    the row whose key values `after_params` binds. Each combination of filters and order is built once: a new
    statement per request would cost as much CPU as running it."""
    shape = _LIST_SHAPES.get((filters, sort, after))
    if shape is None:
        keys, descending = LIST_ORDERS[sort]
        query = PRODUCTS.where(*(LIST_FILTERS[name]() for name in filters))
        if after:
            row, last = tuple_(*keys), tuple_(*(bindparam(f"after_{key.key}") for key in keys))
            query = query.where(row < last if descending else row > last)
        shape = _LIST_SHAPES[filters, sort, after] = (
            query.order_by(*(key.desc() if descending else key for key in keys)).limit(bindparam("limit")))
    return _run(shape, {**params, "limit": limit})


def lot_trace(code: str) -> list[Any]:
    """The lot with trace code `code` with its product's row, its county's prefecture and its households per
    village: one row per village (a single row with village None and 0 households when none contributed), or no
    rows."""
    return _run(LOT_TRACE, {"code": code})


def register_lot_reach(app: Flask, statement: Select) -> None:
    """Let the ledger give the statement of what reached households through a lot (`lot_id` bound): one row of the
    households with a non-zero net amount and the sum of those amounts."""
    app.extensions["lot_households_reached"] = statement


def lot_reach(lot_id: int) -> tuple[int, int]:
    """The households that received money through lot `lot_id` and the fen they received, read together in one
    statement (so the amount is never one that reached fewer households than the count says)."""
    households, fen = _run(current_app.extensions["lot_households_reached"], {"lot_id": lot_id})[0]
    return int(households), int(fen)
