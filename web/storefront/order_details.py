"""What the consumer's order page tells beside the order itself: its refunds and what was paid in the end, its
after-sales requests with the staff's answers and until when one may be made, and where a delivery ships (the phone
masked), read through the same services as the API's refund, after-sales and order routes."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from orders.checkout.service import OrderView
from orders.models import AfterSalesRequest, Refund
from orders.refunds import service as refunds
from shop.auth.models import User
from shop.errors import NotFound
from shop.regions.service import get_region
from web.filters import masked_phone

PAGE = 100
SOURCE_REASONS = {"provider": "在支付平台退款", "unallocated": "付款未能对应到库存，已全额退回"}
REFUND_STATUSES = {"pending": "退款处理中", "failed": "退款未成功，未退款"}
RETURN_PARTS = {"provider": "付款未能对应到库存，其中一部分已在支付平台退回",
                "rest": "付款未能对应到库存，其余部分已退回"}  # a return made in parts: the dashboard's first
RETURN_STATUSES = {"succeeded": "已全额退回", "pending": "正在全额退回（退款处理中）", "failed": "未能退回，请联系客服"}
AFTER_SALES_STATUSES = {"open": "待处理", "approved": "已同意", "rejected": "未通过", "withdrawn": "已撤回"}


@dataclass(frozen=True)
class ShownRefund:
    """A refund as the page lists it: when, how much, which units, why, and its status unless it succeeded."""

    refund: Refund
    units: list[str]
    reason: str
    status: str | None


@dataclass(frozen=True)
class ShownReturn:
    """A payment the order returned as the page tells it: all it brought in, and how its return stands (failed if
    any part failed, else in progress while any part is)."""

    amount_fen: int
    status: str


def _shown_returns(returns: list[Refund]) -> list[ShownReturn]:
    """The order's returned payments, each once however many parts returned it (one at the provider's dashboard
    first, then the shop's own return of the rest)."""
    parts: dict[int | None, list[Refund]] = {}
    for refund in returns:
        parts.setdefault(refund.payment_id, []).append(refund)
    shown = []
    for refunds_of_payment in parts.values():
        statuses = {refund.status for refund in refunds_of_payment}
        status = next(status for status in ("failed", "pending", "succeeded") if status in statuses)
        shown.append(ShownReturn(sum(refund.amount_fen for refund in refunds_of_payment), RETURN_STATUSES[status]))
    return shown


@dataclass(frozen=True)
class ShownAfterSales:
    """An after-sales request as the page lists it: the units asked for, its status and the refund it led to."""

    request: AfterSalesRequest
    units: list[str]
    status: str
    refund: ShownRefund | None


@dataclass(frozen=True)
class OrderDetails:
    """An order's refunds, after-sales requests, the fen refunded (succeeded refunds only), delivery address, until
    when its consumer may ask for after-sales (None while a request would be refused), and the payments it returned
    (made after it expired or was cancelled, or twice), each with what became of it."""

    refunds: list[ShownRefund]
    returns: list[ShownReturn]
    after_sales: list[ShownAfterSales]
    refunded_fen: int
    address: dict | None
    asking_until: datetime | None


def every(read: Callable[..., dict], **arguments) -> list:
    """Every item of a paged list, page after page."""
    items, cursor = [], None
    while True:
        page = read(limit=PAGE, cursor=cursor, **arguments)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _place(district_code: str) -> str:
    """A district's name after its city's (佛山市顺德区), or its code if it is unknown."""
    try:
        district = get_region(district_code)
        city = get_region(district.parent_code) if district.parent_code else None
    except NotFound:
        return district_code
    return f"{city.name if city else ''}{district.name}"


def _shown_address(address: dict | None) -> dict | None:
    """The delivery address as the page shows it: recipient, masked phone, district and detail."""
    if address is None:
        return None
    return {"recipient": address["recipient"], "phone": masked_phone(address["phone"]),
            "place": _place(address["district_code"]), "detail": address["detail"]}


def order_details(*, actor: User, view: OrderView) -> OrderDetails:
    """The refunds, after-sales requests and delivery address of an order `actor` may see."""
    names = {line.id: line.name for line in view.lines}
    made = every(refunds.list_refunds, actor=actor, order_id=view.id)
    asked = every(refunds.list_after_sales, actor=actor, order_id=view.id)
    request_of = {request.refund_id: request for request in asked if request.refund_id is not None}

    returned_in_parts = Counter(refund.payment_id for refund in made if refund.source == "unallocated")

    def reason(refund: Refund) -> str:
        """Why the money went back, in Chinese where the service's own words are English."""
        if refund.source == "after_sales" and refund.id in request_of:
            request = request_of[refund.id]
            return f"售后申请 #{request.id}：{request.reason}"
        if refund.source == "unallocated" and refund.reason == refunds.RETURNED_AT_PROVIDER:
            return RETURN_PARTS["provider"]
        if refund.source == "unallocated" and returned_in_parts[refund.payment_id] > 1:
            return RETURN_PARTS["rest"]
        return SOURCE_REASONS.get(refund.source, refund.reason)

    shown_refunds = [ShownRefund(refund, [f"{names[line.order_line_id]} × {line.quantity}" for line in refund.lines],
                                 reason(refund), REFUND_STATUSES.get(refund.status)) for refund in made]
    refund_of = {shown.refund.id: shown for shown in shown_refunds}
    shown_requests = [ShownAfterSales(request, [f"{names[line['line_id']]} × {line['quantity']}"
                                                for line in request.lines],
                                      AFTER_SALES_STATUSES[request.status], refund_of.get(request.refund_id))
                      for request in asked]
    returns = _shown_returns([refund for refund in made if refund.source == "unallocated"])
    refunded = sum(refund.amount_fen for refund in made if refund.status == "succeeded")
    owner = view.viewer == "owner"
    return OrderDetails(shown_refunds, returns, shown_requests, refunded,
                        _shown_address(view.address) if owner else None,
                        refunds.after_sales_until(actor=actor, order_id=view.id) if owner else None)
