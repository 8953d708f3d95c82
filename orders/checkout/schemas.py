"""Request and response schemas of online orders."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from orders.models import CHANNELS, ORDER_STATUSES
from shop.auth.schemas import StaffFields
from shop.fields import Choice, Computed, Date, Id, Identifier, MaskedText, MobileNumber, PersonName, Quantity, Text
from shop.pagination import PageQuery
from shop.regions.schemas import RegionCode

MAX_LINES = 50
SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{2,31}$"


class LineIn(Schema):
    """One product line of a new order."""

    sku = Identifier(required=True, max_length=32, pattern=SKU_PATTERN,
                     pattern_error="3–32 upper-case letters, digits and dashes.")
    quantity = Quantity(required=True)


class AddressIn(Schema):
    """A delivery address in a donor-city district (stored encrypted, never logged)."""

    district_code = RegionCode(required=True)
    detail = Text(required=True, max_length=200)
    recipient = PersonName(required=True, max_length=50)
    phone = MobileNumber(required=True)


class OrderCreate(Schema):
    """A new online order: delivery (address, optional warehouse) or pickup at a store."""

    channel = Choice(("delivery", "pickup"), required=True)
    store_id = Id()
    warehouse_id = Id()
    address = fields.Nested(AddressIn)
    lines = fields.List(fields.Nested(LineIn), required=True, validate=validate.Length(min=1, max=MAX_LINES))

    @validates_schema
    def _check_channel(self, data, **_kwargs):
        """Pickup names a store and nothing else; delivery an address (and maybe a warehouse); SKUs once."""
        errors: dict = {}
        if data.get("channel") == "pickup":
            if "store_id" not in data:
                errors["store_id"] = ["Required for pickup."]
            for name in ("address", "warehouse_id"):
                if name in data:
                    errors[name] = ["Only for delivery."]
        elif data.get("channel") == "delivery":
            if "address" not in data:
                errors["address"] = ["Required for delivery."]
            if "store_id" in data:
                errors["store_id"] = ["Only for pickup."]
        seen: dict[str, int] = {}
        for index, line in enumerate(data.get("lines") or []):
            if line["sku"] in seen:
                errors.setdefault("lines", {})[str(index)] = {
                    "sku": [f"Listed already in line {seen[line['sku']]}; give one line per SKU."]}
            seen.setdefault(line["sku"], index)
        if errors:
            raise ValidationError(errors)


class ShipIn(Schema):
    """The carrier and tracking number of a shipped delivery order."""

    carrier = Text(required=True, max_length=40)
    tracking_number = Identifier(required=True, max_length=64, drop_separators=True, pattern=r"^[A-Z0-9]{4,64}$",
                                 pattern_error="4–64 letters and digits (spaces and dashes are left out).")


class OrderQuery(PageQuery):
    """Filters of the order list (a consumer sees its own orders; staff name their store)."""

    store_id = Id(strict=False)
    status = Choice(ORDER_STATUSES)
    channel = Choice(CHANNELS)


class OrderLineOut(Schema):
    """A line with its snapshotted price and how many units were refunded."""

    id = fields.Integer()
    sku = fields.String()
    name = fields.String()
    quantity = fields.Integer()
    unit_price_fen = fields.Integer()
    amount_fen = fields.Integer()
    refunded_quantity = fields.Integer()


class TransitionOut(StaffFields):
    """One recorded status change (a consumer's view: without who made it)."""

    STAFF_ONLY = ("actor_id",)

    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    actor_id = fields.Integer(allow_none=True)
    reason = MaskedText(allow_none=True)
    at = fields.DateTime(attribute="created_at")


class StoreRef(Schema):
    """The pickup store."""

    id = fields.Integer()
    name = fields.String()


class AddressOut(Schema):
    """The delivery address, as the buyer gave it."""

    district_code = fields.String()
    detail = MaskedText()
    recipient = MaskedText()
    phone = fields.String()


class TrackingOut(Schema):
    """The carrier and its tracking number."""

    carrier = fields.String()
    tracking_number = fields.String()


class DisputeOut(Schema):
    """The buyer's bank disputes the payment: Stripe's dispute id, its latest status and reason, the amount."""

    id = fields.String()
    status = fields.String()
    reason = fields.String(allow_none=True)
    amount_fen = fields.Integer(allow_none=True)


class PaymentOut(Schema):
    """The payment provider (always Stripe: API.md), whether it is the sandbox standing in for Stripe (no key
    configured: pay with the sandbox confirm route, not Stripe.js), the payment's status and (its owner, while
    unpaid) the client secret."""

    provider = fields.String(metadata={"enum": ["stripe"]})
    sandbox = fields.Boolean()
    status = fields.String()
    client_secret = fields.String(allow_none=True)
    dispute = fields.Nested(DisputeOut, allow_none=True, metadata={"description": "admins only"})


class ImpactCountyOut(Schema):
    """A county the order's households live in."""

    code = fields.String()
    name = fields.String()


class ImpactOut(Schema):
    """The households an order reached, the amount attributed to them and their counties (0 and 0 when none);
    for 1 or 2 households `households` is null, `fewer_than` is 3 and there is no amount and no county."""

    households = fields.Integer(allow_none=True)
    attributed_fen = fields.Integer()
    fewer_than = fields.Integer()
    counties = fields.List(fields.Nested(ImpactCountyOut))


def _tracking(order) -> dict | None:
    """The carrier and tracking number once shipped."""
    return {"carrier": order.carrier, "tracking_number": order.tracking_number} if order.carrier else None


def _payment(view) -> dict | None:
    """The provider and payment status; the client secret only for the owner of an unpaid order; a dispute of it
    only for admins."""
    if view.payment is None:
        return None
    secret = view.payment.client_secret if view.viewer == "owner" and view.status == "pending_payment" else None
    payment = view.payment
    dispute = ({"id": payment.dispute_id, "status": payment.dispute_status, "reason": payment.dispute_reason,
                "amount_fen": payment.dispute_amount_fen} if view.viewer == "admin" and payment.dispute_id else None)
    return {"provider": "stripe", "sandbox": payment.provider == "sandbox", "status": payment.status,
            "client_secret": secret, "dispute": dispute}


class OrderOut(Schema):
    """An order as its owner, its store's staff or an admin sees it (`checkout.service.OrderView`): the pickup
    code (while the order can be collected) and payment secret only for the owner, the address for the owner and
    admins (who ship)."""

    id = fields.Integer()
    channel = fields.String()
    status = fields.String()
    total_fen = fields.Integer()
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    paid_at = fields.DateTime(allow_none=True)
    sale_date = Date(allow_none=True)
    store = fields.Nested(StoreRef, allow_none=True)
    pickup_code = Computed(lambda v: v.pickup_code if v.viewer == "owner" and v.awaiting_pickup else None,
                           fields.String(allow_none=True, metadata={"description": "while it can be collected"}))
    address = Computed(lambda v: v.address if v.viewer in ("owner", "admin") else None,
                       fields.Nested(AddressOut, allow_none=True))
    tracking = Computed(_tracking, fields.Nested(TrackingOut, allow_none=True))
    payment = Computed(_payment, fields.Nested(PaymentOut, allow_none=True))
    lines = fields.List(fields.Nested(OrderLineOut))
    transitions = fields.List(fields.Nested(TransitionOut), attribute="history")
    impact = fields.Nested(ImpactOut, allow_none=True, metadata={
        "description": "Null until attributed; 1 or 2 households `{households: null, fewer_than: 3}`; "
                       "none (refunded in full, or lots without households) `{households: 0, attributed_fen: 0}`"})
