"""Request and response schemas of stores, shifts, stock transfers and stock adjustments.

Inputs reject unknown fields and bound every value; a store's payout account is shown only to admins
and auditors, and then only its last 4 digits.
"""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from catalog.schemas import CODE_ERROR, CODE_PATTERN, LOCATION_CODE_MAX, SKU_ERROR, SKU_PATTERN
from orders.models import ADJUSTMENT_REASONS, MAX_TRANSFER_LOTS
from shop.fields import (
    MAX_QUANTITY,
    AmountFen,
    Bool,
    BoundedInt,
    Choice,
    Computed,
    Date,
    Id,
    Identifier,
    MaskedText,
    Name,
    Note,
    Quantity,
    Reason,
)
from shop.pagination import DatedPageQuery, PageQuery
from shop.regions.schemas import RegionCode
from suppliers.identifiers import mask_bank_account


def LocationCode(**kwargs) -> Identifier:  # noqa: N802 - a field factory reads like a field class
    """A location code, upper-cased and normalised."""
    return Identifier(max_length=LOCATION_CODE_MAX, pattern=CODE_PATTERN, pattern_error=CODE_ERROR, **kwargs)


def BankAccount(**kwargs) -> Identifier:  # noqa: N802
    """A bank account number: width-folded, invisible characters, spaces and dashes removed (digits checked later)."""
    return Identifier(max_length=40, case="upper", drop_separators=True, **kwargs)


def _masked_account(store) -> str | None:
    """The payout account's last 4 digits, for callers allowed to see that a store has one."""
    account = store.bank_account if getattr(store, "show_account", False) else None
    return mask_bank_account(account) if account else None


# --- stores -------------------------------------------------------------------------------------------

class StoreCreate(Schema):
    """An admin opens a store in a donor district on an unused store location."""

    name = Name(required=True, max_length=100)
    district_code = RegionCode(required=True)
    location_code = LocationCode(required=True, metadata={
        "description": "An unused store location in the store's own district (422 `location_outside_district`)."})
    bank_account = BankAccount(load_default=None, metadata={
        "description": "The store's payout account (spaces and dashes dropped; 422 `invalid_bank_account`), stored "
                       "encrypted and shown only as its last 4 digits; optional."})


class StoreUpdate(Schema):
    """An admin renames or (de)activates a store, or changes its payout account (with a reason)."""

    name = Name(max_length=100)
    active = Bool()
    bank_account = BankAccount(allow_none=True)
    reason = Reason()


class StoreOut(Schema):
    """A store; `bank_account` is masked, and null for callers who may not see it."""

    id = fields.Integer()
    name = fields.String()
    district_code = fields.String()
    location_id = fields.Integer()
    active = fields.Boolean()
    bank_account = Computed(_masked_account, fields.String(allow_none=True))


class StoreQuery(PageQuery):
    """Store list filters."""

    district_code = RegionCode(load_default=None)


class StoreAccountChangeOut(Schema):
    """A store's payout account change (masked values only: the last 4 digits and a keyed fingerprint of the whole
    number, `****0128 #3f9a1c2e`, so accounts ending alike are told apart)."""

    id = fields.Integer()
    store_id = fields.Integer()
    user_id = fields.Integer()
    old_masked = fields.String(allow_none=True)
    new_masked = fields.String(allow_none=True)
    reason = MaskedText()
    created_at = fields.DateTime()


# --- shifts -------------------------------------------------------------------------------------------

class ShiftOpen(Schema):
    """Open a cash shift with the float in the drawer."""

    float_fen = AmountFen(required=True)


class ShiftClose(Schema):
    """Close a cash shift with the cash counted in the drawer."""

    counted_cash_fen = AmountFen(required=True)


class ShiftOut(Schema):
    """A cash shift."""

    id = fields.Integer()
    store_id = fields.Integer()
    opened_by = fields.Integer()
    opened_at = fields.DateTime()
    float_fen = fields.Integer()
    closed_by = fields.Integer(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    counted_cash_fen = fields.Integer(allow_none=True)


class MethodTotalsOut(Schema):
    """One payment method's takings in a shift."""

    method = fields.String()
    sales_fen = fields.Integer()
    refunds_fen = fields.Integer()
    expected_fen = fields.Integer()
    counted_fen = fields.Integer(allow_none=True)
    difference_fen = fields.Integer(allow_none=True, metadata={
        "description": "Counted less expected, as the shift was closed (late entries are not in expected)."})
    late_entries_fen = fields.Integer(metadata={
        "description": "The takings of the shift's offline sales accepted after it closed (`late_entries`): made "
                       "during the shift, their cash was in the drawer counted."})
    unexplained_fen = fields.Integer(allow_none=True, metadata={
        "description": "The difference the late entries do not explain: difference_fen − late_entries_fen."})


class LateEntryOut(Schema):
    """An offline sale of this shift accepted after the shift closed."""

    order_id = fields.Integer()
    payment_method = fields.String()
    total_fen = fields.Integer()
    sold_at = fields.DateTime(allow_none=True)
    recorded_at = fields.DateTime()


class ShiftReportOut(Schema):
    """The shift report: per payment method expected, counted (cash only) and difference; late entries apart."""

    shift = fields.Nested(ShiftOut)
    open = Computed(lambda report: report.shift.closed_at is None, fields.Boolean())
    sales = fields.Integer()
    methods = fields.List(fields.Nested(MethodTotalsOut))
    late_entries = fields.List(fields.Nested(LateEntryOut))


class ShiftQuery(DatedPageQuery):
    """Shift list filters: open or closed, and the period the shifts opened in."""

    status = Choice(("open", "closed"), load_default=None, metadata={
        "description": "`open`: the shift still taking sales (a store has at most one); `closed`: those cashed up."})
    from_date = Date(data_key="from", load_default=None, metadata={
        "description": "The first day (Asia/Shanghai) of the period, inclusive: shifts opened on it or later."})
    to_date = Date(data_key="to", load_default=None, metadata={
        "description": "The day (Asia/Shanghai) the period ends before, exclusive: shifts opened before it."})


# --- transfers ----------------------------------------------------------------------------------------

class TransferLineIn(Schema):
    """Units of a product to send."""

    sku = Identifier(required=True, max_length=32, pattern=SKU_PATTERN, pattern_error=SKU_ERROR)
    quantity = Quantity(required=True)


class TransferCreate(Schema):
    """An admin dispatches stock from a warehouse to a store's location, or back from a store's location (open or
    closed) to a warehouse (location codes)."""

    from_location = LocationCode(required=True, metadata={
        "description": "A warehouse, or for a return a store's location (its leftover stock, also once closed)."})
    to_location = LocationCode(required=True, metadata={
        "description": "An active store's location, or for a return from a store a warehouse (received there by an "
                       "admin)."})
    lines = fields.List(fields.Nested(TransferLineIn), required=True, validate=validate.Length(min=1, max=100),
                        metadata={"description": f"Taking at most {MAX_TRANSFER_LOTS} lots in all, as many as a "
                                                 "receipt names (422 `transfer_too_many_lots`)."})


class ReceivedLineIn(Schema):
    """How many units of one lot sent arrived."""

    lot_id = Id(required=True)
    received = BoundedInt(required=True, minimum=0, maximum=MAX_QUANTITY)


class TransferReceive(Schema):
    """The receiving store confirms what arrived, per lot as sent; `note` says what happened to what did not
    (required then: units missing from a lot are written off at the store, a `lost_in_transit` adjustment with this
    note)."""

    lines = fields.List(fields.Nested(ReceivedLineIn), required=True,
                        validate=validate.Length(min=1, max=MAX_TRANSFER_LOTS))
    note = Note(load_default=None, metadata={
        "description": "What happened to the units that did not arrive: required when any lot's `received` is below "
                       "its `sent` (422 naming `note`); no ID or bank card number."})


class TransferCancel(Schema):
    """An admin cancels a transfer still on its way, saying why."""

    reason = Reason(required=True, metadata={"description": "Why the transfer is cancelled (kept on it); no ID or "
                                                            "bank card number."})


class TransferLineOut(Schema):
    """One lot of a transfer, named as the store counts it (SKU, product name, lot and trace codes): sent, received
    and the discrepancy (null until received)."""

    lot_id = fields.Integer()
    product_id = fields.Integer()
    sku = fields.String(attribute="product.sku")
    name = fields.String(attribute="product.name")
    lot_code = fields.String(attribute="lot.lot_code")
    trace_code = fields.String(attribute="lot.trace_code")
    sent = fields.Integer()
    received = fields.Integer(allow_none=True)
    discrepancy = Computed(lambda line: None if line.received is None else line.sent - line.received,
                           fields.Integer(allow_none=True))


class TransferOut(Schema):
    """A stock transfer with its lots."""

    id = fields.Integer()
    from_location_id = fields.Integer()
    to_location_id = fields.Integer()
    status = fields.String()
    created_by = fields.Integer()
    created_at = fields.DateTime()
    received_by = fields.Integer(allow_none=True)
    received_at = fields.DateTime(allow_none=True)
    receipt_note = MaskedText(allow_none=True)
    cancelled_by = fields.Integer(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)
    cancel_reason = MaskedText(allow_none=True)
    lines = fields.List(fields.Nested(TransferLineOut))


class TransferQuery(PageQuery):
    """Incoming transfer filters."""

    status = Choice(("dispatched", "received", "cancelled"), load_default=None)


# --- adjustments --------------------------------------------------------------------------------------

class AdjustmentCreate(Schema):
    """Count, write off or find units of a lot at a location."""

    location_id = Id(required=True)
    lot_id = Id(required=True)
    delta = BoundedInt(required=True, minimum=-MAX_QUANTITY, maximum=MAX_QUANTITY,
                       validate=validate.NoneOf((0,), error="Must not be 0."))
    reason = Choice(ADJUSTMENT_REASONS, required=True)
    note = Note(load_default=None, metadata={
        "description": "What was counted, spoiled, damaged or found, kept on the adjustment; no ID or bank card "
                       "number."})


class AdjustmentOut(Schema):
    """A stock adjustment: the audit of who changed which stock, when and why."""

    id = fields.Integer()
    location_id = fields.Integer()
    lot_id = fields.Integer()
    delta = fields.Integer()
    reason = fields.String(metadata={"description": (
        "stocktake, spoiled, damaged, found; or lost_in_transit: units a transfer's receipt says did not arrive")})
    note = MaskedText(allow_none=True)
    transfer_id = fields.Integer(allow_none=True, metadata={"description": "The transfer of a lost_in_transit"})
    created_by = fields.Integer()
    created_at = fields.DateTime()


class AdjustmentQuery(DatedPageQuery):
    """Stock adjustment filters: location, lot, the period."""

    location_id = Id(load_default=None, strict=False)
    lot_id = Id(load_default=None, strict=False)
