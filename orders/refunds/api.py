"""Routes: refunds of paid orders, and after-sales requests (asked, listed, approved, rejected)."""
from __future__ import annotations

from flask.views import MethodView

from orders.errors import OrderCode
from orders.models import Refund
from orders.refunds import service
from orders.refunds.schemas import (
    AfterSalesApprove,
    AfterSalesCreate,
    AfterSalesOut,
    AfterSalesReject,
    RefundCreate,
    RefundOut,
)
from shop.auth.security import current_user, require_role
from shop.blueprint import Blueprint
from shop.db import commit, commit_now
from shop.http import ReadAt
from shop.idempotency import answer_not_final, idempotent, request_key, request_scope
from shop.pagination import PageQuery, page_schema

blp = Blueprint("refunds", __name__, url_prefix="/api/v1", description="Refunds and after-sales requests",
                not_found={"order_id": OrderCode.ORDER_NOT_FOUND, "refund_id": OrderCode.REFUND_NOT_FOUND,
                           "request_id": OrderCode.AFTER_SALES_NOT_FOUND})
READ_REFUND = ReadAt("refunds.show_refund", refund_id="id")


def _settled(refund: Refund) -> tuple[Refund, int]:
    """Commit a refund; one pending at the provider is then asked for outside any lock and its outcome committed:
    201, 202 while it stays pending (no answer, or not finished at the provider: asked again later),
    `refund_refused` 409 if refused."""
    if refund.status == "pending":
        refund_id = refund.id
        commit_now()
        refund = service.settle_refund(refund_id=refund_id)
        if refund.status == "failed":
            provider_status = refund.provider_status
            commit_now()
            raise service.ProviderRefused(f"The payment provider refused refund {refund_id} ({provider_status}); "
                                          "nothing was refunded.", details={"refund_id": refund_id})
    commit()
    return refund, 202 if refund.status == "pending" else 201


def _refund_keys(order_id: int, **_) -> str:
    """A refund's keys belong to its order's store, or its user (`service.refund_keys`)."""
    return service.refund_keys(actor=current_user(), order_id=order_id)


def _after_sales_keys(request_id: int, **_) -> str:
    """A decision's keys belong to its order's store, or its user (`service.after_sales_keys`)."""
    return service.after_sales_keys(actor=current_user(), request_id=request_id)


def _key() -> tuple[str, str] | None:
    """The Idempotency-Key of this request and its scope, if it carries one."""
    key = request_key()
    return None if key is None else (request_scope(), key)


@blp.route("/orders/<int:order_id>/refunds")
class OrderRefunds(MethodView):
    @require_role("admin", "auditor", "store_staff", "consumer")
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, page_schema(RefundOut))
    def get(self, query, order_id):
        """List an order's refunds."""
        return service.list_refunds(actor=current_user(), order_id=order_id, **query)

    @blp.errors({403: [OrderCode.REFUND_OUTSIDE_SHIFT], 404: [OrderCode.ORDER_LINE_NOT_FOUND],
                 409: [OrderCode.ORDER_NOT_REFUNDABLE, OrderCode.REFUND_PENDING, OrderCode.REFUND_EXCEEDS_SOLD,
                       OrderCode.REFUND_EXCEEDS_PAID, OrderCode.PAYMENT_NOT_FOUND, OrderCode.NO_OPEN_SHIFT,
                       OrderCode.TILL_CASH_SHORT, OrderCode.REFUND_REFUSED, OrderCode.STORE_INACTIVE]})
    @require_role("admin", "store_staff")
    @idempotent(scope=_refund_keys)
    @blp.arguments(RefundCreate)
    @blp.response(201, RefundOut, location=READ_REFUND)
    @blp.alt_response(202, schema=RefundOut, location=READ_REFUND,
                      description="Pending: the payment provider's answer was not had, or it has not finished the "
                                  "refund; it is asked again (never refunded twice) and listed with its status")
    def post(self, data, order_id):
        """Refund units of a paid order (admin; store staff: their store's sales of a shift still open)."""
        refund, status = _settled(service.create_refund(actor=current_user(), order_id=order_id,
                                                        request_key=_key(), **data))
        if status == 202:
            answer_not_final()  # a retry with its key asks the provider again
        return refund, status


@blp.route("/refunds/<int:refund_id>")
@require_role("admin", "auditor", "store_staff", "consumer")
@blp.response(200, RefundOut)
def show_refund(refund_id):
    """Show a refund of an order the caller may see, with its status at the payment provider."""
    return service.read_refund(actor=current_user(), refund_id=refund_id)


@blp.route("/orders/<int:order_id>/after-sales")
class OrderAfterSales(MethodView):
    @require_role("admin", "auditor", "store_staff", "consumer")
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, page_schema(AfterSalesOut))
    def get(self, query, order_id):
        """List an order's after-sales requests and their outcomes."""
        return service.list_after_sales(actor=current_user(), order_id=order_id, **query)

    @blp.errors({404: [OrderCode.ORDER_LINE_NOT_FOUND],
                 409: [OrderCode.AFTER_SALES_NOT_ALLOWED, OrderCode.AFTER_SALES_WINDOW_CLOSED,
                       OrderCode.AFTER_SALES_OPEN, OrderCode.REFUND_EXCEEDS_SOLD, OrderCode.REFUND_EXCEEDS_PAID]})
    @require_role("consumer")
    @idempotent
    @blp.arguments(AfterSalesCreate)
    @blp.response(201, AfterSalesOut, location=ReadAt("refunds.show_after_sales", request_id="id"))
    def post(self, data, order_id):
        """Ask for a refund of delivered or collected units, within 7 days."""
        request = service.request_after_sales(actor=current_user(), order_id=order_id, **data)
        commit()
        return request


@blp.route("/after-sales/<int:request_id>")
@require_role("admin", "auditor", "store_staff", "consumer")
@blp.response(200, AfterSalesOut)
def show_after_sales(request_id):
    """Show an after-sales request of an order the caller may see, and its outcome."""
    return service.read_after_sales(actor=current_user(), request_id=request_id)


@blp.route("/after-sales/<int:request_id>/approve")
class ApproveAfterSales(MethodView):
    @blp.errors({409: [OrderCode.AFTER_SALES_DECIDED, OrderCode.REFUND_PENDING, OrderCode.REFUND_EXCEEDS_SOLD,
                       OrderCode.REFUND_EXCEEDS_PAID, OrderCode.PAYMENT_NOT_FOUND, OrderCode.REFUND_REFUSED,
                       OrderCode.STORE_INACTIVE]})
    @require_role("admin", "store_staff")
    @idempotent(scope=_after_sales_keys)
    @blp.arguments(AfterSalesApprove)
    @blp.response(200, AfterSalesOut)
    def post(self, data, request_id):
        """Approve a request: its units are refunded (at the payment provider: see the refund's status)."""
        request = service.approve_after_sales(actor=current_user(), request_id=request_id, **data)
        _settled(service.get_refund(refund_id=request.refund_id))
        return request


@blp.route("/after-sales/<int:request_id>/reject")
class RejectAfterSales(MethodView):
    @blp.errors({409: [OrderCode.AFTER_SALES_DECIDED, OrderCode.STORE_INACTIVE]})
    @require_role("admin", "store_staff")
    @idempotent(scope=_after_sales_keys)
    @blp.arguments(AfterSalesReject)
    @blp.response(200, AfterSalesOut)
    def post(self, data, request_id):
        """Reject a request with a reason the consumer sees."""
        request = service.reject_after_sales(actor=current_user(), request_id=request_id, **data)
        commit()
        return request


@blp.route("/after-sales/<int:request_id>/withdraw")
class WithdrawAfterSales(MethodView):
    @blp.errors({409: [OrderCode.AFTER_SALES_DECIDED]})
    @require_role("consumer")
    @idempotent
    @blp.response(200, AfterSalesOut)
    def post(self, request_id):
        """The consumer withdraws their own open request; its units may be asked for again."""
        request = service.withdraw_after_sales(actor=current_user(), request_id=request_id)
        commit()
        return request
