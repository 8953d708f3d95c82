"""Request and response schemas of refunds and after-sales requests (unknown fields rejected, all bounded)."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from orders.refunds.service import RefundRequest, refund_event_ids
from shop.auth.schemas import StaffFields
from shop.fields import Bool, Computed, Id, MaskedText, Quantity, Reason, Text, WebLink

MAX_LINES = 100


def _distinct_lines(data: dict) -> None:
    """Each order line appears once in a request."""
    ids = [line.line_id for line in data["lines"]]
    if len(ids) != len(set(ids)):
        raise ValidationError("Name each line once.", field_name="lines")


class RefundLineIn(Schema):
    """Units of one order line to refund; `resellable` puts them back on the shelf."""

    line_id = Id(required=True)
    quantity = Quantity(required=True)
    resellable = Bool(load_default=False)

    @post_load
    def _request(self, data, **kwargs) -> RefundRequest:
        """The service's request object."""
        return RefundRequest(**data)


class RefundCreate(Schema):
    """Staff or an admin refund units of a paid order, per line."""

    lines = fields.List(fields.Nested(RefundLineIn), required=True, validate=validate.Length(min=1, max=MAX_LINES))
    reason = Reason(required=True)

    @validates_schema
    def _once(self, data, **kwargs):
        """Each line once."""
        _distinct_lines(data)


class RefundLineOut(Schema):
    """Units of a line a refund gave back."""

    order_line_id = fields.Integer()
    quantity = fields.Integer()
    amount_fen = fields.Integer()
    resellable = fields.Boolean()


class RefundOut(StaffFields):
    """A refund with its lines and the outbox events the ledger reverses from (a consumer's view: without who made
    it, its shift and its events)."""

    STAFF_ONLY = ("shift_id", "created_by", "outbox_event_ids")

    id = fields.Integer()
    order_id = fields.Integer()
    amount_fen = fields.Integer()
    method = fields.String()
    source = fields.String()
    reason = MaskedText()
    status = fields.String(metadata={"description": "pending (asked at the payment provider, answer awaited: "
                                                    "retried with the same key), succeeded, or failed"})
    provider_status = fields.String(allow_none=True, metadata={"description": "what the provider last said"})
    provider_refund_id = fields.String(allow_none=True)
    shift_id = fields.Integer(allow_none=True)
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    lines = fields.List(fields.Nested(RefundLineOut))
    outbox_event_ids = Computed(lambda refund: refund.outbox_event_ids if hasattr(refund, "outbox_event_ids")
                                else refund_event_ids(refund), fields.List(fields.Integer()))


class AfterSalesLineIn(Schema):
    """Units of one order line the consumer wants refunded."""

    line_id = Id(required=True)
    quantity = Quantity(required=True)

    @post_load
    def _request(self, data, **kwargs) -> RefundRequest:
        """The service's request object."""
        return RefundRequest(**data)


class AfterSalesCreate(Schema):
    """A consumer's after-sales request: lines, a reason and an optional photo link."""

    lines = fields.List(fields.Nested(AfterSalesLineIn), required=True,
                        validate=validate.Length(min=1, max=MAX_LINES))
    reason = Text(required=True, max_length=500, multiline=True)
    photo = WebLink(max_length=500, load_default=None, data_key="photo", attribute="photo_url")

    @validates_schema
    def _once(self, data, **kwargs):
        """Each line once."""
        _distinct_lines(data)


class AfterSalesApprove(Schema):
    """Approve a request; `resellable` puts the returned units back on the shelf."""

    resellable = Bool(load_default=False)


class AfterSalesReject(Schema):
    """Reject a request with the reason the consumer will read."""

    reason = Text(required=True, max_length=500, multiline=True)


class AfterSalesLineOut(Schema):
    """Units of a line asked for."""

    line_id = fields.Integer()
    quantity = fields.Integer()


class AfterSalesOut(Schema):
    """An after-sales request and its outcome."""

    id = fields.Integer()
    order_id = fields.Integer()
    lines = fields.List(fields.Nested(AfterSalesLineOut))
    reason = MaskedText()
    photo = fields.String(attribute="photo_url", allow_none=True)
    status = fields.String()
    decision_reason = MaskedText(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    refund_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
