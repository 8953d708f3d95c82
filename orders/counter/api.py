"""Routes: counter sales, sale conflicts, receipts and pickups."""
from __future__ import annotations

from flask import request
from flask.views import MethodView

from catalog.errors import CatalogCode
from orders.checkout.schemas import OrderOut
from orders.counter import service
from orders.counter.limits import pickup_code_limit
from orders.counter.schemas import (
    CounterSaleCreate,
    CounterSaleOut,
    PickupCreate,
    PickupOut,
    ReceiptOut,
    ReceiptPrintOut,
    SaleConflictOut,
    SaleConflictQuery,
    SaleConflictResolve,
)
from orders.errors import OrderCode
from orders.stores.service import store_keys
from shop.auth.security import current_user, require_role
from shop.blueprint import Blueprint
from shop.db import commit, db
from shop.errors import ShopCode
from shop.http import ReadAt
from shop.idempotency import HEADER, REPLAYED, idempotent, request_fingerprint
from shop.pagination import PageQuery, page_schema

blp = Blueprint("counter", __name__, url_prefix="/api/v1", description="Counter sales, receipts and pickups",
                not_found={"order_id": OrderCode.ORDER_NOT_FOUND, "store_id": OrderCode.STORE_NOT_FOUND,
                           "conflict_id": OrderCode.SALE_CONFLICT_NOT_FOUND})


def _store_keys(store_id: int, **_) -> str:
    """Counter-sale and hand-over keys belong to the store (`store_keys`)."""
    return store_keys(actor=current_user(), store_id=store_id)


def _pickup_clerk() -> tuple[int, int]:
    """Wrong pickup codes are counted per store and clerk, and per store."""
    return request.view_args["store_id"], current_user().id


@blp.route("/stores/<int:store_id>/counter-sales", methods=["POST"])
@require_role("store_staff", "admin")
@idempotent(scope=_store_keys)
@blp.arguments(CounterSaleCreate)
@blp.response(201, CounterSaleOut, location=ReadAt("checkout.get_order", order_id="id"))
@blp.errors({404: [OrderCode.SHIFT_NOT_FOUND],
             409: [OrderCode.SHIFT_CLOSED, OrderCode.STORE_INACTIVE, CatalogCode.INSUFFICIENT_STOCK,
                   CatalogCode.LOT_NOT_HELD_HERE, OrderCode.PRICE_MISMATCH, OrderCode.UNKNOWN_ITEM,
                   OrderCode.SALE_TOO_OLD, OrderCode.SALE_IN_FUTURE, OrderCode.SALE_BEFORE_SHIFT,
                   OrderCode.SALE_AFTER_SHIFT],
             422: [ShopCode.VALIDATION_ERROR, OrderCode.UNKNOWN_ITEM, OrderCode.TENDERED_BELOW_TOTAL,
                   OrderCode.TENDERED_TOO_MUCH, OrderCode.ORDER_TOTAL_TOO_LARGE]})
def create_counter_sale(data, store_id):
    """Sell at the counter (paid and fulfilled at once); a refused offline sale is kept as a sale conflict (its 409
    says `details.conflict_id`; an item no longer on sale is then `unknown_item` 409, not 422)."""
    key = request.headers.get(HEADER)
    try:
        sale = service.sell(actor=current_user(), store_id=store_id, idempotency_key=key,
                            fingerprint=request_fingerprint() if key else None, **data)
    except service.SaleRefused as refused:
        db.session.rollback()  # the sale is refused; only its conflict record is kept, in a transaction of its own
        conflict = service.record_conflict(actor=current_user(), store_id=store_id, idempotency_key=key,
                                           refused=refused, sale=data)
        db.session.commit()
        raise service.conflict_error(conflict, sale=data) from refused
    commit()
    return (sale, 201, {REPLAYED: "true"}) if sale.replayed else sale


@blp.route("/stores/<int:store_id>/sale-conflicts")
@require_role("store_staff", "admin", "auditor")
@blp.arguments(SaleConflictQuery, location="query")
@blp.response(200, page_schema(SaleConflictOut))
def list_sale_conflicts(query, store_id):
    """List a store's refused offline sales, oldest first (`resolved=false`: those still to deal with)."""
    return service.list_conflicts(actor=current_user(), store_id=store_id, **query)


@blp.route("/stores/<int:store_id>/sale-conflicts/<int:conflict_id>/resolve", methods=["POST"])
@require_role("store_staff", "admin")
@blp.arguments(SaleConflictResolve)
@blp.response(200, SaleConflictOut)
@blp.errors({409: [OrderCode.SALE_CONFLICT_RESOLVED, OrderCode.STORE_INACTIVE]})
def resolve_sale_conflict(data, store_id, conflict_id):
    """Resolve a refused offline sale with a note of what was done (the store's staff or an admin), once
    (`sale_conflict_resolved`)."""
    conflict = service.resolve_conflict(actor=current_user(), store_id=store_id, conflict_id=conflict_id, **data)
    commit()
    return conflict


@blp.route("/orders/<int:order_id>/receipt")
@require_role("store_staff", "admin", "auditor", "consumer")
@blp.response(200, ReceiptOut)
@blp.errors({409: [OrderCode.ORDER_NOT_PAID]})
def get_receipt(order_id):
    """Read a paid order's receipt with the trace codes of the lots sold and how often it was printed (an unpaid order
    has none: `order_not_paid`); reading it prints nothing: a till prints with `POST .../receipt/prints`."""
    return service.get_receipt(actor=current_user(), order_id=order_id)


@blp.route("/orders/<int:order_id>/receipt/prints", methods=["POST"])
@require_role("store_staff", "admin")
@idempotent
@blp.response(200, ReceiptPrintOut)
@blp.errors({409: [OrderCode.ORDER_NOT_PAID]})
def print_receipt(order_id):
    """Print a paid order's receipt, as the till page does: the print is counted (`prints`), and any after the first is
    a `reprint` (重打印) with its time (`printed_at`); a print resent with its Idempotency-Key is not counted again."""
    receipt = service.print_receipt(actor=current_user(), order_id=order_id)
    commit()
    return receipt


@blp.route("/stores/<int:store_id>/pickups")
class Pickups(MethodView):
    @require_role("store_staff", "admin", "auditor")
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, page_schema(PickupOut))
    def get(self, query, store_id):
        """List the paid pickup orders waiting at a store, oldest first."""
        return service.list_pickups(actor=current_user(), store_id=store_id, **query)

    @require_role("store_staff")
    @pickup_code_limit(_pickup_clerk)
    @idempotent(scope=_store_keys)
    @blp.arguments(PickupCreate)
    @blp.response(200, OrderOut)
    @blp.errors({409: [OrderCode.PICKUP_CODE_INVALID]})
    @blp.errors({429: [ShopCode.RATE_LIMITED]})
    def post(self, data, store_id):
        """Hand a pickup order over to the customer showing its code (a till resending it with its Idempotency-Key
        after a lost answer gets that answer again); `pickup_code_invalid` when no order waiting at this store has
        this code, and `rate_limited` after too many wrong codes from this clerk at this store (10 a minute, 30 an
        hour, 100 a day) or from all clerks at this store together (100 an hour, 300 a day)."""
        order = service.hand_over(actor=current_user(), store_id=store_id, **data)
        commit()
        return order
