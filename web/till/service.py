"""What the till pages read beside the domain services: the clerk's store and open shift, the price list the
till sells from offline, a shift's counter sales and the refused sales' products. Reads only; every change goes
through the domain services."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from catalog.errors import CatalogCode
from catalog.models import Lot, Product, Stock
from orders.checkout.service import get_order_for
from orders.counter.service import sold_here
from orders.errors import OrderCode
from orders.models import Order, OrderTransition, SaleConflict, Shift, Store
from orders.stores.service import get_store_for
from shop.auth.models import User
from shop.db import db
from shop.errors import NotFound
from shop.pagination import paginate, scope_of

SHIFT_SALES_SHOWN = 100
REFUSAL_REASONS = {  # why the server refused a counter sale, by its code (the API's message is English)
    "insufficient_stock": "库存不足（商品已售完）",
    "lot_not_held_here": "扫描的批次不在本店库存中（请核对商品标签）",
    "price_mismatch": "售价已变动，与当时显示的价格不符",
    "shift_closed": "班次已交班，请刷新页面开新班次",
    "sale_after_shift": "销售时间在交班之后",
    "sale_before_shift": "销售时间在开班之前",
    "sale_in_future": "收银机时间不正确（晚于服务器时间）",
    "sale_too_old": "离线时间超过 72 小时",
    "unknown_item": "商品不存在或已下架",
    "tendered_below_total": "实收现金少于合计",
    "tendered_too_much": "找零达到 ¥100 以上：多收了不需要的纸币",
    "store_inactive": "门店已停用",
    "shift_not_found": "班次不存在",
    "validation_error": "销售数据不完整",
    "order_total_too_large": "合计超过单笔销售的上限，请分几笔收款",
    "forbidden": "此账号不能在本店收银，请重新登录",
    "store_not_found": "门店不存在，请重新登录",
    "not_found": "门店或班次不存在，请刷新页面",
    "bad_request": "销售数据无效，请刷新页面后重试",
    "payload_too_large": "本单商品太多，请分几笔收款",
    "unsupported_media_type": "销售数据无效，请刷新页面后重试",
    "idempotency_key_in_progress": "这笔销售正在提交，请稍候查看本班销售记录",
    "idempotency_key_reused": "这笔销售的单号已用于另一笔销售，请重新开单",
    "invalid_idempotency_key": "销售单号无效，请刷新页面后重试",
}


def refusal_reason(code: str) -> str:
    """Why a counter sale was refused, in Chinese; a code without a reason is named, never the English message."""
    return REFUSAL_REASONS.get(code, f"服务器拒绝了这笔销售（{code}）")


def store_of(user: User) -> Store:
    """The clerk's own store (the till never takes the store from the URL or a form); 404 without one."""
    return get_store_for(actor=user, store_id=user.store_id or 0)


def current_shift(store: Store) -> Shift | None:
    """The store's open cash shift, if any."""
    return db.session.scalar(select(Shift).where(Shift.store_id == store.id, Shift.closed_at.is_(None)))


def price_list(store: Store) -> list[dict]:
    """The products the counter sells (`sold_here`) with units at the store: SKU, name, today's price, units free
    and the trace codes of the lots there (what the till needs to take sales while offline)."""
    rows = db.session.execute(
        sold_here(select(Product.sku, Product.name, Product.price_fen, Lot.trace_code,
                         Stock.on_hand - Stock.reserved))
        .join(Stock, Stock.product_id == Product.id).join(Lot, Lot.id == Stock.lot_id)
        .where(Stock.location_id == store.location_id, Stock.on_hand > Stock.reserved)
        .order_by(Product.sku, Lot.id)).all()
    products: dict[str, dict] = {}
    for sku, name, price_fen, trace_code, free in rows:
        product = products.setdefault(sku, {"sku": sku, "name": name, "price_fen": price_fen, "available": 0,
                                            "trace_codes": []})
        product["available"] += free
        product["trace_codes"].append(trace_code)
    return list(products.values())


@dataclass(frozen=True)
class RefusedSale:
    """A sale conflict as the manager reads it: the conflict, its lines with the names of their products (where still
    known) and the sale's total at the prices the till showed (None if a line has no price)."""

    conflict: SaleConflict
    lines: list[dict]
    total_fen: int | None


def open_conflict_count(store: Store) -> int:
    """How many of the store's sale conflicts are still to be resolved."""
    return db.session.scalar(select(func.count(SaleConflict.id)).where(SaleConflict.store_id == store.id,
                                                                        SaleConflict.resolved_at.is_(None)))


def _found(conflict: SaleConflict, index: int, sku: str | None) -> dict:
    """What the server found wrong with line `index` (of product `sku`) of a refused sale: the price in force at the
    sale's time (`price_then_fen`, None if the product had none) for a line priced otherwise, the units the store had
    of its product (`available`) for a line short of stock; nothing for a line the refusal does not name."""
    named = conflict.details.get("lines") if isinstance(conflict.details, dict) else None
    for entry in named if isinstance(named, list) else []:
        if conflict.code == OrderCode.PRICE_MISMATCH and entry.get("line") == index:
            return {"price_then_fen": entry.get("price_fen")}
        if conflict.code == CatalogCode.INSUFFICIENT_STOCK and sku is not None and entry.get("sku") == sku:
            return {"available": entry.get("available")}
    return {}


def refused_sales(conflicts: list[SaleConflict]) -> list[RefusedSale]:
    """The conflicts with their sales' lines named (by SKU or by the scanned lot's trace code), each with what the
    server found wrong with it (`_found`), and totalled."""
    lines = [line for conflict in conflicts for line in conflict.sale.get("lines", [])]
    skus = {line["sku"] for line in lines if "sku" in line}
    codes = {line["trace_code"] for line in lines if "trace_code" in line}
    products = {sku: (sku, name) for sku, name in db.session.execute(
        select(Product.sku, Product.name).where(Product.sku.in_(skus)))}
    products |= {code: (sku, name) for code, sku, name in db.session.execute(
        select(Lot.trace_code, Product.sku, Product.name).join(Product, Product.id == Lot.product_id)
        .where(Lot.trace_code.in_(codes)))}
    sales = []
    for conflict in conflicts:
        named = []
        for index, line in enumerate(conflict.sale.get("lines", [])):
            code = line.get("sku") or line.get("trace_code")
            sku, name = products.get(code, (None, None))
            named.append({**line, "code": code, "name": name, **_found(conflict, index, sku)})
        priced = all(line.get("unit_price_fen") is not None for line in named)
        total = sum(line["quantity"] * line["unit_price_fen"] for line in named) if priced else None
        sales.append(RefusedSale(conflict, named, total))
    return sales


def shift_sales(shift: Shift, *, cursor: str | None = None) -> dict:
    """A page of the shift's counter sales, newest first (its cursor continues on the shift's page, whichever page of
    the shift issued it)."""
    return paginate(select(Order).where(Order.shift_id == shift.id), keys=[Order.id], limit=SHIFT_SALES_SHOWN,
                    cursor=cursor, newest_first=True, next_on=scope_of("till.shift", shift_id=shift.id))


def handed_over_at(store: Store, pickup_code: str) -> tuple[int, datetime] | None:
    """The pickup order at `store` with `pickup_code` that was already handed over (the latest), and when."""
    row = db.session.execute(
        select(Order.id, OrderTransition.created_at).join(OrderTransition, OrderTransition.order_id == Order.id)
        .where(Order.store_id == store.id, Order.channel == "pickup", Order.pickup_code == pickup_code,
               Order.status == "fulfilled", OrderTransition.to_status == "fulfilled")
        .order_by(OrderTransition.id.desc()).limit(1)).first()
    return None if row is None else (row[0], row[1])


def handed_order(user: User, order_id: int) -> Order | None:
    """The clerk's store's pickup order `order_id` if it has been handed over (what the page shows after one)."""
    try:
        order = get_order_for(actor=user, order_id=order_id)
    except NotFound:
        return None
    return order if order.channel == "pickup" and order.status == "fulfilled" else None
