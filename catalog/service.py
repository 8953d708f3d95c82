"""Products: creation and edits with their history, cached reads, listing and search."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from pypinyin import Style, lazy_pinyin
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from catalog import queries
from catalog.errors import CatalogCode
from catalog.models import (
    HISTORY_FIELDS,
    MEASURE_FIELDS,
    RATE_FIELDS,
    TEXT_FIELDS,
    Lot,
    Product,
    ProductChange,
)
from catalog.schemas import SKU_PATTERN
from shop.auth.models import User
from shop.caching import CacheKey, cache_key, invalidate_after_commit
from shop.changes import UNSET, Changes
from shop.clock import today
from shop.db import among, db, lock_on_sqlite, violates
from shop.errors import Conflict, Forbidden, NotFound, ValidationError
from shop.fields import name_key, normalise_identifier, search_fold
from shop.pagination import decode_cursor, encode_cursor, paginate_committed, recorded_in
from shop.regions.service import is_recipient_county
from suppliers import service as suppliers
from suppliers.models import Supplier

CACHE_NAMESPACE = "catalog"
MAX_SKU_INPUT = 128  # longer path segments cannot spell a 32-character SKU


def public_cache_key(kind: str, *parts: object) -> CacheKey:
    """A key for a public catalog read: stale with every product write, every change of the reference data
    (donor filters follow the pairings), every supplier change (pages show supplier names); a new key every
    day (certificates lapse at midnight)."""
    return cache_key(CACHE_NAMESPACE, kind, today(), *parts, depends_on=("regions", "suppliers"))


def pinyin_keys(name: str) -> tuple[str, str]:
    """The full pinyin and the initials of a Chinese name, read as `q` is (full-width letters and digits as ASCII):
    lower case, no tones, no spaces nor other separators (`PINYIN_SEPARATORS`: AB-12 is ab12)."""
    name = search_fold(name)
    syllables = PINYIN_SEPARATORS.sub("", "".join(lazy_pinyin(name, errors="default"))).lower()
    initials = PINYIN_SEPARATORS.sub("", "".join(lazy_pinyin(name, style=Style.FIRST_LETTER))).lower()
    return syllables[:400], initials[:100]


# what parts syllables as pinyin is typed or written (ku'qiao, ku-qiao, ku qiao, ku·qiao, ku.qiao, ku_qiao, any dash):
# neither `q`'s pinyin nor a name's stored pinyin keeps it
PINYIN_SEPARATORS = re.compile(r"[\s'\u2019\u00b7\u30fb\u2027._\-\u2010-\u2015\u2212]")


def is_certified(product, on: date) -> bool:
    """Whether the product's (a `Product`'s or a product row's) poverty-alleviation certificate is valid on `on`."""
    return (product.certificate_number is not None and product.certificate_valid_until is not None
            and product.certificate_valid_until >= on
            and (product.certificate_valid_from is None or product.certificate_valid_from <= on))


# --- output -----------------------------------------------------------------------------------------

def _shown(product, *, county_name: str, supplier_name: str, on: date) -> dict:
    """A product (a `Product`, or a row of `queries.products_select`) as the API shows it, stock aside."""
    certified = is_certified(product, on)
    return {
        "sku": product.sku, "name": product.name, "description": product.description,
        "category": product.category, "unit": product.unit, "net_weight_g": product.net_weight_g,
        "price_fen": product.price_fen, "status": product.status,
        "county": {"code": product.county_code, "name": county_name},
        "supplier": {"id": product.supplier_id, "name": supplier_name}, "images": list(product.images or []),
        **{name: getattr(product, name) for name in RATE_FIELDS},
        "certified": certified,
        "certificate": {
            "number": product.certificate_number, "issuer": product.certificate_issuer,
            "valid_from": product.certificate_valid_from, "valid_until": product.certificate_valid_until,
        } if certified else None,
    }


def product_view(product: Product, *, on: date) -> dict:
    """A product as the API shows it, stock aside (after a write)."""
    return _shown(product, county_name=product.county.name,
                  supplier_name=suppliers.get_supplier(product.supplier_id).name, on=on)


def row_view(row, *, on: date) -> dict:
    """A row of `queries.products_select` as the API shows the product, stock aside."""
    return _shown(row, county_name=row.county_name, supplier_name=row.supplier_name, on=on)


# --- reads ------------------------------------------------------------------------------------------

def _may_see_unpublished(actor: User | None, product) -> bool:
    """Admins see every product; a co-op also its own drafts and archived products."""
    return actor is not None and actor.role in ("admin", "coop") and actor.acts_for_supplier(product.supplier_id)


def _sku_code(sku: str) -> str | None:
    """The SKU that `sku` spells (full-width, lower case, padded), or None if it cannot be one."""
    code = normalise_identifier(sku) if len(sku) <= MAX_SKU_INPUT else ""
    return code if re.fullmatch(SKU_PATTERN, code) else None


def _find_by_sku(sku: str) -> Product | None:
    """The product with `sku` in any spelling, or None."""
    code = _sku_code(sku)
    return None if code is None else db.session.scalar(select(Product).where(Product.sku == code))


def on_sale(status: str, supplier_active: bool) -> bool:
    """Whether a product is on sale: active, of an active supplier (an inactive supplier's products sell nowhere)."""
    return status == "active" and supplier_active


def get_product(*, sku: str, actor: User | None = None) -> Product:
    """The product with `sku` that `actor` may see (on sale, unless an admin's or its co-op's), or `NotFound`."""
    product = _find_by_sku(sku)
    if product is None or (not on_sale(product.status, suppliers.get_supplier(product.supplier_id).active)
                           and not _may_see_unpublished(actor, product)):
        raise NotFound(f"No product {sku}.", code=CatalogCode.PRODUCT_NOT_FOUND)
    return product


def products_seen_by(*, skus: Sequence[str], actor: User | None = None) -> dict[str, Product]:
    """Of `skus` (any spelling), the products `get_product` finds for `actor`, by the SKU as given, in one statement."""
    codes = {sku: code for sku in skus if (code := _sku_code(sku)) is not None}
    rows = db.session.execute(select(Product, Supplier.active).join(Supplier, Supplier.id == Product.supplier_id)
                              .where(among(Product.sku, set(codes.values())))).all() if codes else []
    seen = {product.sku: product for product, supplier_active in rows
            if on_sale(product.status, supplier_active) or _may_see_unpublished(actor, product)}
    return {sku: seen[code] for sku, code in codes.items() if code in seen}


def _editable_product(*, sku: str, actor: User) -> Product:
    """The product `actor` may edit: admins any, co-ops their own supplier's (404 otherwise)."""
    product = _find_by_sku(sku)
    if product is None or not actor.acts_for_supplier(product.supplier_id):
        raise NotFound(f"No product {sku}.", code=CatalogCode.PRODUCT_NOT_FOUND)
    return product


def show_product(*, sku: str, actor: User | None) -> dict:
    """A product with its live stock per location (never cached), in one statement."""
    code = _sku_code(sku)
    rows = queries.product_with_stock(code) if code else []
    if not rows or (not on_sale(rows[0].status, rows[0].supplier_active) and not _may_see_unpublished(actor, rows[0])):
        raise NotFound(f"No product {sku}.", code=CatalogCode.PRODUCT_NOT_FOUND)
    stock = [{"location_id": row.location_id, "available": int(row.available)}
             for row in rows if row.location_id is not None]
    return {**row_view(rows[0], on=today()), "stock": stock}


def _typed_pinyin(letters: str) -> str:
    """Pinyin as a name's is stored, from pinyin typed with tone marks or syllables parted (kǔ'qiáo and ku-qiao are
    kuqiao, lǜ is lv: `PINYIN_SEPARATORS`); other text as it is."""
    decomposed = unicodedata.normalize("NFD", PINYIN_SEPARATORS.sub("", letters)).replace("u\u0308", "v")
    plain = "".join(char for char in decomposed if unicodedata.category(char) != "Mn")
    return plain if plain.isascii() else letters


def _contains_in_order(words: list[str]) -> str:
    """A LIKE pattern for "contains each of `words`, in this order" ('/' escapes the wildcards)."""
    return "%" + "%".join(word.replace("/", "//").replace("%", "/%").replace("_", "/_") for word in words) + "%"


def list_products(*, actor: User | None = None, county: str | None = None, donor: str | None = None,
                  category: str | None = None, q: str | None = None, min_price_fen: int | None = None,
                  max_price_fen: int | None = None, certified: bool | None = None,
                  in_stock_at: int | None = None, status: str | None = None, supplier_id: int | None = None,
                  sort: str = "id", limit: int = 20, cursor: str | None = None) -> dict:
    """A page of products by the API's filters, in the order `sort` names (`queries.LIST_ORDERS`; its cursors are
    signed for that order's keys and direction), in one statement (the caller may cache public pages).
    `q`: the name holds its words in order (雷波 脐橙 finds 雷波脐橙, 苦荞abc finds 苦荞ＡＢＣ), or its pinyin or
    initials hold it (spaces, case and width ignored: `ｋｑ` is `kq`, a full-width space is a space). Anyone but an
    admin or a co-op sees products on sale only (active, of an active supplier), so another `status`
    finds nothing for them."""
    on = today()
    public = (status in (None, "active") and supplier_id is None) or actor is None
    if status not in (None, "active") and (public or actor.role not in ("admin", "coop")):
        return {"items": [], "next_cursor": None}
    params = {"on": on, "county": county, "donor": donor, "category": category, "min_price_fen": min_price_fen,
              "max_price_fen": max_price_fen, "in_stock_at": in_stock_at, "status": status,
              "supplier_id": supplier_id}
    filters = []
    if public or actor.role not in ("admin", "coop"):
        filters.append("active")
    elif actor.role == "coop":
        filters.append("coop_scope")
        params["coop_supplier_id"] = actor.supplier_id
    if status and not public and actor.role in ("admin", "coop"):
        filters.append("status")
    filters += [name for name in ("supplier_id", "county", "donor", "category", "min_price_fen", "max_price_fen",
                                  "in_stock_at") if params[name] not in (None, "")]
    if q:
        q = search_fold(q)
        letters = _typed_pinyin("".join(q.split()))
        params |= {"q_name": _contains_in_order(q.split()), "q_letters": _contains_in_order([letters])}
        filters.append("q_letters" if letters.isascii() and letters.isalnum() else "q_name")
    if certified is not None:
        filters.append("certified" if certified else "uncertified")
    keys, descending = queries.LIST_ORDERS[sort]
    if cursor:
        params |= queries.after_params(sort, decode_cursor(cursor, keys, newest_first=descending))
    rows = queries.product_page(tuple(filters), params, sort=sort, after=bool(cursor), limit=limit + 1)
    next_cursor = encode_cursor([getattr(rows[limit - 1], key.key) for key in keys], keys,
                                newest_first=descending) if len(rows) > limit else None
    return {"items": [row_view(row, on=on) for row in rows[:limit]], "next_cursor": next_cursor}


# --- writes -----------------------------------------------------------------------------------------

def _check_rates(values: dict) -> None:
    """The four agreement rates may not exceed 10000 bp together."""
    total = sum(values[name] for name in RATE_FIELDS)
    if total > 10000:
        message = f"The rates add up to {total} bp; at most 10000."
        raise ValidationError("The agreement rates exceed 100%.", code=CatalogCode.INVALID_RATES,
                              details={name: [message] for name in RATE_FIELDS})


def _check_county(county_code: str) -> None:
    """Products come from recipient counties only."""
    if not is_recipient_county(county_code):
        raise ValidationError("The origin must be a recipient county.",
                              details={"county_code": [f"{county_code} is not a recipient county."]})


def _check_certificate(values: dict) -> None:
    """A certificate's validity may not end before it starts."""
    start, end = values.get("certificate_valid_from"), values.get("certificate_valid_until")
    if start and end and end < start:
        raise ValidationError("The certificate period is not valid.",
                              details={"certificate": {"valid_until": ["Must not be before valid_from."]}})


def _certificate_columns(certificate: dict | None) -> dict:
    """Map a certificate input to the product's certificate columns (None clears it)."""
    certificate = certificate or {}
    return {"certificate_number": certificate.get("number"), "certificate_issuer": certificate.get("issuer"),
            "certificate_valid_from": certificate.get("valid_from"),
            "certificate_valid_until": certificate.get("valid_until"), "certificate_lapsed_on": None}


def _check_coop_may(actor: User, changes: dict, *, product: Product | None = None) -> None:
    """Agreement rates, activation, and the origin and certificate of a product on sale are the platform's: a co-op
    sending a rate, putting a product on sale, moving an active product to another county (which decides the pairing
    its sales count for) or setting, replacing or extending its 扶贫产品 certificate (the badge buyers trust, checked
    by an admin when the product went on sale) is refused (403); it may keep drafts, withdraw a certificate and
    archive its own products."""
    if actor.role == "admin":
        return
    sent = sorted(name for name in RATE_FIELDS if name in changes)
    if sent:
        raise Forbidden("Agreement rates are set by the platform's admins only.", code=CatalogCode.RATES_ADMIN_ONLY,
                        details={name: ["Only an admin may set agreement rates."] for name in sent})
    if changes.get("status") == "active" and (product is None or product.status != "active"):
        raise Forbidden("Only an admin may put a product on sale.", code=CatalogCode.ACTIVATION_ADMIN_ONLY,
                        details={"status": ["Only an admin may set status active."]})
    if (product is not None and product.status == "active" and "county_code" in changes
            and changes["county_code"] != product.county_code):
        raise Forbidden("Only an admin may change where a product on sale comes from.",
                        code=CatalogCode.ORIGIN_ADMIN_ONLY,
                        details={"county_code": ["Only an admin may move a product on sale to another county."]})
    sent = _certificate_columns(changes["certificate"]) if changes.get("certificate") is not None else {}
    if (product is not None and product.status == "active"
            and any(getattr(product, column) != value for column, value in sent.items()
                    if column != "certificate_lapsed_on")):
        raise Forbidden("Only an admin may certify a product on sale.", code=CatalogCode.CERTIFICATE_ADMIN_ONLY,
                        details={"certificate": ["Only an admin may set or change the certificate of a product on "
                                                 "sale; a co-op may remove it."]})


def _record_changes(product: Product, actor: User, new_values: dict, *, created: bool = False) -> None:
    """Write the price, rate, unit and net weight changes to the product's history (on creation: the starting
    values)."""
    for name in (*HISTORY_FIELDS, *MEASURE_FIELDS):
        old = None if created else getattr(product, name)
        if name in new_values and (created or new_values[name] != old):
            kind = "text" if name in TEXT_FIELDS else "value"
            db.session.add(ProductChange(product_id=product.id, field=name, changed_by=actor.id,
                                         **{f"old_{kind}": old, f"new_{kind}": new_values[name]}))


def _check_fixed_once_lots(product: Product, values: dict) -> None:
    """What the product's lots were counted in and grown at is fixed once it has a lot: its unit and net weight
    (`measure_fixed`, naming the fields: its lots, stock and sales were counted in them) and its origin county
    (`origin_fixed`: every lot's trace page and disclosure link name it)."""
    changed = sorted(name for name in (*MEASURE_FIELDS, "county_code")
                     if name in values and values[name] != getattr(product, name))
    if not changed or db.session.scalar(select(Lot.id).where(Lot.product_id == product.id).limit(1)) is None:
        return
    measures = [name for name in changed if name in MEASURE_FIELDS]
    if measures:
        raise Conflict("The unit and net weight are fixed once the product has lots.", code=CatalogCode.MEASURE_FIXED,
                       details={name: ["Fixed: the product has lots counted in it."] for name in measures})
    raise Conflict("The origin county is fixed once the product has lots: they were grown there.",
                   code=CatalogCode.ORIGIN_FIXED,
                   details={"county_code": ["Fixed: the product has lots grown in its county."]})


def duplicate_sku(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a product whose SKU is taken."""
    return Conflict(f"SKU {row['sku']} is taken.", code=CatalogCode.SKU_TAKEN, details={"sku": row["sku"]})


def duplicate_product_name(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a product named like another of its supplier's not archived (`name_key`): a cart, an order and
    a receipt show a product by its name alone. It names the product that has the name; a new product whose SKU is
    taken too (it raced its duplicate) is `sku_taken`, as its check, which comes first, says."""
    if row.get("sku") and db.session.scalar(select(Product.id).where(Product.sku == row["sku"])) is not None:
        return duplicate_sku(row)
    taken = db.session.scalar(select(Product.name).where(
        Product.supplier_id == row["supplier_id"], Product.name_key == name_key(row["name"]),
        Product.status != "archived")) or row["name"]
    return Conflict(f"The supplier has a product named {taken}.", code=CatalogCode.PRODUCT_NAME_TAKEN,
                    details={"name": [f"Another of the supplier's products is named {taken}, which reads alike; "
                                      "name what tells them apart (a weight, a grade), or archive it first."]})


def _refuse_taken_name(*, supplier_id: int, name: str, status: str, product_id: int | None = None) -> None:
    """Refuse a product's name, unless it is archived, that reads like another of its supplier's not archived
    (`product_name_taken` 409)."""
    if status == "archived":
        return
    key = name_key(name)
    lock_on_sqlite("UPDATE products SET id = id WHERE supplier_id = :supplier_id AND name_key = :key",
                   supplier_id=supplier_id, key=key)
    if db.session.scalar(select(Product.id).where(Product.supplier_id == supplier_id, Product.name_key == key,
                                                  Product.status != "archived", Product.id != product_id)) is not None:
        raise duplicate_product_name({"supplier_id": supplier_id, "name": name})


def create_product(*, actor: User, sku: str, name: str, category: str, unit: str, net_weight_g: int, price_fen: int,
                   county_code: str, description: str = "", status: str = "draft", images: Sequence[str] = (),
                   platform_fee_bp: int | None = None, store_commission_bp: int | None = None,
                   household_premium_bp: int | None = None, dividend_bp: int | None = None,
                   supplier_id: int | None = None, certificate: dict | None = None) -> Product:
    """Create a product: a co-op for its own supplier, as a draft with the supplier's default agreement
    (supplier_id, rates and activation are not theirs to send); an admin for any supplier, with any rates
    (else the supplier's default) and status."""
    rates = {"platform_fee_bp": platform_fee_bp, "store_commission_bp": store_commission_bp,
             "household_premium_bp": household_premium_bp, "dividend_bp": dividend_bp}
    fields = {"sku": sku, "name": name, "description": description, "category": category, "unit": unit,
              "net_weight_g": net_weight_g, "price_fen": price_fen, "county_code": county_code, "status": status,
              "images": list(images), **{rate: value for rate, value in rates.items() if value is not None}}
    _check_coop_may(actor, fields)
    if actor.role == "coop":
        if supplier_id is not None:
            raise ValidationError("The request did not pass validation.",
                                  details={"supplier_id": ["Unknown field."]})
        supplier_id = actor.supplier_id
    elif supplier_id is None:
        raise ValidationError("The request did not pass validation.",
                              details={"supplier_id": ["Missing data for required field."]})
    suppliers.held_active_supplier(supplier_id)
    values = suppliers.default_agreement(supplier_id=supplier_id) | fields | _certificate_columns(certificate)
    _check_rates(values)
    _check_county(values["county_code"])
    _check_certificate(values)
    if db.session.scalar(select(Product.id).where(Product.sku == values["sku"])) is not None:
        raise duplicate_sku(values)
    _refuse_taken_name(supplier_id=supplier_id, name=values["name"], status=values["status"])
    full, initials = pinyin_keys(values["name"])
    product = Product(supplier_id=supplier_id, name_pinyin=full, name_initials=initials, **values)
    db.session.add(product)
    db.session.flush()
    _record_changes(product, actor, values, created=True)
    invalidate_after_commit(CACHE_NAMESPACE)
    return product


@dataclass(frozen=True, kw_only=True)
class ProductChanges(Changes):
    """What a co-op or an admin may change on a product (rates and activation: admins only; the SKU stays)."""

    name: str = UNSET
    description: str = UNSET
    category: str = UNSET
    unit: str = UNSET
    net_weight_g: int = UNSET
    price_fen: int = UNSET
    county_code: str = UNSET
    status: str = UNSET
    images: list[str] = UNSET
    platform_fee_bp: int = UNSET
    store_commission_bp: int = UNSET
    household_premium_bp: int = UNSET
    dividend_bp: int = UNSET
    certificate: dict | None = UNSET


def update_product(*, actor: User, sku: str, changes: ProductChanges) -> Product:
    """Edit a product (rates and activation by admins only; of an inactive supplier, only taken off sale, by an admin:
    its co-op changes nothing; its unit, net weight and county only until it has a lot); price, rate, unit and net
    weight changes are written to its history."""
    product = _held_for_change(_editable_product(sku=sku, actor=actor))
    suppliers.changes_scope(actor)
    values = changes.given()
    _check_coop_may(actor, values, product=product)
    if not (values.keys() == {"status"} and values["status"] in ("draft", "archived")):
        suppliers.active_supplier(product.supplier_id)  # an inactive supplier's products may only go off sale
    if "certificate" in values:
        values |= _certificate_columns(values.pop("certificate"))
    merged = {name: getattr(product, name) for name in (*RATE_FIELDS, "certificate_valid_from",
                                                         "certificate_valid_until")} | values
    _check_rates(merged)
    _check_certificate(merged)
    _check_fixed_once_lots(product, values)
    if "county_code" in values:
        _check_county(values["county_code"])
    if "name" in values or (product.status == "archived" and values.get("status", "archived") != "archived"):
        _refuse_taken_name(supplier_id=product.supplier_id, name=values.get("name", product.name),
                           status=values.get("status", product.status), product_id=product.id)
    _record_changes(product, actor, values)
    named = {"supplier_id": product.supplier_id, "name": values.get("name", product.name)}
    try:  # a look-alike name another change gave at once, which the check above could not see, is refused alike
        with db.session.begin_nested():
            if "name" in values:
                product.name_pinyin, product.name_initials = pinyin_keys(values["name"])
            for name, value in values.items():
                setattr(product, name, value)
    except IntegrityError as error:
        if not violates(error, "uq_products_supplier_name_key"):
            raise
        raise duplicate_product_name(named) from None
    invalidate_after_commit(CACHE_NAMESPACE)
    return product


def _held_for_change(product: Product) -> Product:
    """`product` locked and read afresh before it changes, so its history's `changed_at` is taken once the change
    holds the row: a sale holding the product's price (FOR SHARE) is dated either before the change or after it. Only
    the product's row (`of=Product`), not the county the product joins: that would wait for every write naming the
    county, and hold up every checkout from it."""
    lock_on_sqlite("UPDATE products SET id = id WHERE id = :id", id=product.id)
    db.session.execute(select(Product).where(Product.id == product.id).with_for_update(of=Product)
                       .execution_options(populate_existing=True))
    return product


def product_history(*, actor: User, sku: str, from_date: date | None, to_date: date | None, limit: int,
                    cursor: str | None) -> dict:
    """A page of a product's price, rate, unit and net weight changes made in [from_date, to_date), oldest first."""
    product = _editable_product(sku=sku, actor=actor)
    query = select(ProductChange).where(ProductChange.product_id == product.id,
                                        *recorded_in(ProductChange.changed_at, from_date=from_date, to_date=to_date))
    return paginate_committed(query, model=ProductChange, limit=limit, cursor=cursor,
                    filters={"product_id": product.id, "from": from_date, "to": to_date})


def flag_lapsed_certificates(*, on: date) -> int:
    """Record the day each certificate was first seen lapsed; how many were newly flagged."""
    result = db.session.execute(
        update(Product).where(Product.certificate_valid_until < on, Product.certificate_lapsed_on.is_(None))
        .values(certificate_lapsed_on=on).execution_options(synchronize_session=False))
    if result.rowcount:
        invalidate_after_commit(CACHE_NAMESPACE)
    return result.rowcount
