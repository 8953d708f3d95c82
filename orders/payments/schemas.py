"""Request and response schemas of the webhook acknowledgement and the sandbox confirm route."""
from __future__ import annotations

from marshmallow import Schema, fields

from shop.fields import Choice

OUTCOMES = ("succeeded", "failed")


class ReceivedOut(Schema):
    """The webhook's fast acknowledgement: the event is stored (or was already)."""

    received = fields.Boolean(required=True)


class SandboxConfirmIn(Schema):
    """How the sandbox payment ends: succeeded or failed."""

    outcome = Choice(OUTCOMES, required=True)


class PaymentStateOut(Schema):
    """The order's status after the sandbox event was handled, and its payment's."""

    order_id = fields.Integer(required=True)
    status = fields.String(required=True)
    payment_status = fields.String(allow_none=True)
