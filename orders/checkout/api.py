"""Routes: place, list and read online orders; cancel, ship and deliver them."""
from __future__ import annotations

from flask import Response
from flask.views import MethodView

from catalog.errors import CatalogCode
from orders.checkout import service
from orders.checkout.schemas import OrderCreate, OrderOut, OrderQuery, ShipIn
from orders.errors import OrderCode
from shop.auth.security import current_user, require_role
from shop.blueprint import Blueprint
from shop.db import commit, commit_now
from shop.errors import ShopCode
from shop.http import ReadAt
from shop.idempotency import idempotent
from shop.pagination import page_schema
from shop.qr import svg_qr

blp = Blueprint("checkout", __name__, url_prefix="/api/v1", description="Online orders",
                not_found={"order_id": OrderCode.ORDER_NOT_FOUND})


def _order_keys(order_id: int, **_) -> str:
    """A change's keys belong to the order, or to its buyer (`service.order_keys`)."""
    return service.order_keys(actor=current_user(), order_id=order_id)


@blp.route("/orders")
class Orders(MethodView):
    @blp.errors({404: [OrderCode.STORE_NOT_FOUND]})
    @require_role("consumer", "store_staff", "admin", "auditor")
    @blp.arguments(OrderQuery, location="query")
    @blp.response(200, page_schema(OrderOut))
    def get(self, query):
        """List orders: a consumer's own, a store's (staff: `store_id` of their store), or any (admins)."""
        return service.list_orders(actor=current_user(), **query)

    @require_role("consumer")
    @idempotent
    @blp.arguments(OrderCreate)
    @blp.response(201, OrderOut, location=ReadAt("checkout.get_order", order_id="id"))
    @blp.errors({409: [CatalogCode.INSUFFICIENT_STOCK, OrderCode.TOO_MANY_UNPAID_ORDERS],
                 422: [ShopCode.VALIDATION_ERROR, OrderCode.ORDER_TOTAL_TOO_LARGE, OrderCode.PRODUCT_UNAVAILABLE,
                       OrderCode.STORE_UNAVAILABLE, OrderCode.WAREHOUSE_UNAVAILABLE, OrderCode.NOT_A_DONOR_DISTRICT,
                       OrderCode.ORDER_TOTAL_TOO_SMALL],
                 503: [OrderCode.PAYMENT_PROVIDER_UNAVAILABLE]})
    def post(self, data):
        """Place an order: stock reserved until `expires_at`, then a PaymentIntent whose client secret is returned.

        Nothing is reserved on `insufficient_stock` (its details name the short lines), `too_many_unpaid_orders` (the
        buyer has 5 orders awaiting payment) or `order_total_too_large` (a total above 99999999 fen, the most one
        payment can carry); on `payment_provider_unavailable` and on `order_total_too_small` (a total below the
        payment provider's minimum charge) the order was cancelled and its stock released."""
        view = service.place_order(actor=current_user(), **data)
        # the reservation is durable before the provider is called (no stock lock is held); what the answer
        # reads (the store of a pickup) stays loaded
        commit_now(keep_loaded=True)
        try:
            view.payment = service.start_payment(order=view.order)
        except service.PaymentNotStarted as exc:
            service.abandon_order(order_id=view.id, reason=exc.reason)
            commit_now()
            raise
        commit(keep_loaded=True)
        return view


@blp.route("/orders/<int:order_id>")
@require_role("consumer", "store_staff", "admin", "auditor")
@blp.response(200, OrderOut)
def get_order(order_id):
    """An order: status, lines with refunds, pickup code (owner only), tracking and its history."""
    return service.read_order(actor=current_user(), order_id=order_id)


@blp.route("/orders/<int:order_id>/pickup-qr.svg")
@blp.errors({404: [OrderCode.PICKUP_CODE_NOT_FOUND]})
@require_role("consumer")
@blp.response(200, {"format": "binary", "type": "string"}, content_type="image/svg+xml")
def pickup_qr(order_id):
    """The pickup code as a QR code, for the buyer to show at the store (the till's scanner types the code)."""
    return Response(svg_qr(service.pickup_code(actor=current_user(), order_id=order_id)),
                    mimetype="image/svg+xml", headers={"Cache-Control": "private, no-store"})


@blp.route("/orders/<int:order_id>/cancel", methods=["POST"])
@require_role("consumer", "admin")
@idempotent(scope=_order_keys)
@blp.response(200, OrderOut)
@blp.errors({409: [OrderCode.INVALID_TRANSITION, OrderCode.PAYMENT_BEING_CONFIRMED]})
def cancel_order(order_id):
    """Cancel an unpaid order (its buyer or an admin); its reservation is released and its PaymentIntent cancelled
    at the provider. An order not unpaid is `invalid_transition`; one whose payment the provider reported made is
    `payment_being_confirmed`: that payment is being processed, so the order is about to be paid."""
    view = service.cancel_order(actor=current_user(), order_id=order_id)
    commit()
    return view


@blp.route("/orders/<int:order_id>/ship", methods=["POST"])
@blp.errors({409: [OrderCode.INVALID_TRANSITION, OrderCode.NOT_A_DELIVERY_ORDER, OrderCode.NOTHING_TO_SHIP]})
@require_role("admin")
@idempotent(scope=_order_keys)
@blp.arguments(ShipIn)
@blp.response(200, OrderOut)
def ship_order(data, order_id):
    """Ship a paid delivery order with its carrier and tracking number."""
    view = service.ship_order(actor=current_user(), order_id=order_id, **data)
    commit()
    return view


@blp.route("/orders/<int:order_id>/deliver", methods=["POST"])
@blp.errors({409: [OrderCode.INVALID_TRANSITION]})
@require_role("admin")
@idempotent(scope=_order_keys)
@blp.response(200, OrderOut)
def deliver_order(order_id):
    """Mark a shipped order delivered."""
    view = service.deliver_order(actor=current_user(), order_id=order_id)
    commit()
    return view
