"""Request and response schemas of counter sales, sale conflicts, receipts and pickups."""
from __future__ import annotations

from datetime import UTC

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from orders.checkout.schemas import ImpactOut, OrderLineOut, OrderOut
from shop.fields import (
    AmountFen,
    AwareDateTime,
    Choice,
    Date,
    Id,
    Identifier,
    MaskedText,
    Note,
    PriceFen,
    Quantity,
    QueryBool,
)
from shop.pagination import PageQuery

SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{2,31}$"
TRACE_CODE_PATTERN = r"^[A-Z0-9]{1,16}$"
PICKUP_CODE_PATTERN = r"^[0-9]{6}$"
MAX_SALE_LINES = 100


class SaleLineIn(Schema):
    """One scanned or keyed item: a SKU or a lot's trace code, the units, and (offline) the price the till showed."""

    sku = Identifier(max_length=32, pattern=SKU_PATTERN, pattern_error="3–32 upper-case letters, digits and dashes.")
    trace_code = Identifier(max_length=16, pattern=TRACE_CODE_PATTERN, pattern_error="A lot's trace code.")
    quantity = Quantity(required=True)
    unit_price_fen = PriceFen()

    @validates_schema
    def _one_item(self, data, **_):
        """Exactly one of `sku` and `trace_code`."""
        if ("sku" in data) == ("trace_code" in data):
            raise ValidationError("Give either a sku or a trace_code.", field_name="sku")


class SalePaymentIn(Schema):
    """How the customer paid: cash (with what was tendered) or card."""

    method = Choice(("cash", "card"), required=True)
    tendered_fen = AmountFen()


class CounterSaleCreate(Schema):
    """A counter sale from the till; `client_created_at` marks a sale made offline and sent later."""

    lines = fields.List(fields.Nested(SaleLineIn), required=True,
                        validate=validate.Length(min=1, max=MAX_SALE_LINES))
    payment = fields.Nested(SalePaymentIn, required=True)
    shift_id = Id(required=True)
    client_created_at = AwareDateTime(load_default=None)

    @validates_schema
    def _offline_prices(self, data, **_):
        """An offline sale names the unit price the till showed on every line."""
        if data.get("client_created_at") is None:
            return
        missing = {str(i): {"unit_price_fen": ["Required for an offline sale."]}
                   for i, line in enumerate(data.get("lines", [])) if "unit_price_fen" not in line}
        if missing:
            raise ValidationError(missing, field_name="lines")

    @validates_schema
    def _storable_moment(self, data, **_):
        """A till timestamp must be expressible in UTC, as it is stored (even when refused as a conflict)."""
        moment = data.get("client_created_at")
        try:
            moment is None or moment.astimezone(UTC)
        except OverflowError as exc:
            raise ValidationError("Out of range once in UTC.", field_name="client_created_at") from exc


class ReceiptLineOut(Schema):
    """A receipt line with the trace codes of the lots its units came from."""

    sku = fields.String()
    name = fields.String()
    quantity = fields.Integer()
    unit_price_fen = fields.Integer()
    amount_fen = fields.Integer()
    refunded_quantity = fields.Integer()
    trace_codes = fields.List(fields.String())


class ReceiptStoreOut(Schema):
    """The store that sold (or handed over) the order."""

    id = fields.Integer()
    name = fields.String()


class ReceiptOut(Schema):
    """A printable receipt: store, time, lines with trace codes, total, paid, change, the money refunded since, and
    the order's public impact line (as on `GET /orders/<id>`; null until the ledger has attributed the sale)."""

    order_id = fields.Integer()
    store = fields.Nested(ReceiptStoreOut, allow_none=True)
    time = AwareDateTime()
    sale_date = Date()
    channel = fields.String()
    payment_method = fields.String()
    lines = fields.List(fields.Nested(ReceiptLineOut))
    total_fen = fields.Integer()
    paid_fen = fields.Integer()
    change_fen = fields.Integer()
    refunded_fen = fields.Integer()
    late_entry = fields.Boolean()
    prints = fields.Integer(metadata={"description": "Times the till printed this receipt."})
    reprint = fields.Boolean(metadata={"description": "Printed before: a print of this is a copy (重打印)."})
    impact = fields.Nested(ImpactOut, attribute="order.impact", allow_none=True)


class ReceiptPrintOut(ReceiptOut):
    """A receipt as printed now: its number among the prints (`prints`) and the time of this print."""

    printed_at = AwareDateTime()


class PickupLineOut(OrderLineOut):
    """A waiting order's line with the units to hand over: those still sold (a refunded unit is not handed over)."""

    to_hand_over = fields.Integer(attribute="units_still_sold")


class PickupOut(Schema):
    """A paid pickup order waiting at the store (no pickup code, no personal data): `total_fen` is the amount first
    paid, `to_hand_over_fen` the value of the units still sold, handed over (less any refunded before collection)."""

    id = fields.Integer()
    channel = fields.String()
    status = fields.String()
    total_fen = fields.Integer()
    to_hand_over_fen = fields.Integer(attribute="still_sold_fen")
    created_at = AwareDateTime()
    paid_at = AwareDateTime(allow_none=True)
    lines = fields.List(fields.Nested(PickupLineOut))


class CounterSaleOut(OrderOut):
    """A counter sale just made: the order as `GET /orders/<id>` shows it, its till fields, change and receipt."""

    shift_id = fields.Integer()
    payment_method = fields.String()
    tendered_fen = fields.Integer(allow_none=True)
    client_created_at = AwareDateTime(allow_none=True)
    late_entry = fields.Boolean()
    change_fen = fields.Integer()
    receipt = fields.Nested(ReceiptOut)


class SaleConflictOut(Schema):
    """An offline sale the server refused, kept for the store manager."""

    id = fields.Integer()
    store_id = fields.Integer()
    shift_id = fields.Integer(allow_none=True)
    idempotency_key = fields.String(allow_none=True)
    code = fields.String()
    message = fields.String()
    details = fields.Dict()
    sale = fields.Dict()
    client_created_at = AwareDateTime(allow_none=True)
    created_by = fields.Integer()
    created_at = AwareDateTime()
    resolved_at = AwareDateTime(allow_none=True)
    resolved_by = fields.Integer(allow_none=True)
    resolution_note = MaskedText(allow_none=True)


class SaleConflictQuery(PageQuery):
    """Sale conflict filters: `resolved=true` the resolved ones, `false` those still open."""

    resolved = QueryBool(load_default=None)


class SaleConflictResolve(Schema):
    """What was done about a refused sale (re-rung, refunded to the customer, written off …)."""

    note = Note(required=True)


class PickupCreate(Schema):
    """The 6-digit code the customer shows (full-width digits and spaces are normalised)."""

    pickup_code = Identifier(max_length=6, drop_separators=True, pattern=PICKUP_CODE_PATTERN,
                             pattern_error="Six digits.", required=True)
