"""Routes: the Stripe webhook and the sandbox's confirm route (which feeds the webhook's own handler)."""
from __future__ import annotations

from flask import request
from flask.views import MethodView

from orders.errors import OrderCode
from orders.payments import service
from orders.payments.schemas import PaymentStateOut, ReceivedOut, SandboxConfirmIn
from shop.auth.security import current_user, require_role
from shop.blueprint import Blueprint
from shop.db import commit

blp = Blueprint("payments", __name__, url_prefix="/api/v1", description="Payments: the Stripe webhook")
# registered only where sandbox payments may be confirmed (`service.sandbox_enabled`): elsewhere the route, and its
# entry in the OpenAPI document, do not exist
sandbox_blp = Blueprint("sandbox_payments", __name__, url_prefix="/api/v1",
                        description="Sandbox payments: pay or fail an order without Stripe (not in production)",
                        not_found={"payment_intent_id": OrderCode.PAYMENT_NOT_FOUND})


@blp.route("/payments/stripe/webhook")
class StripeWebhook(MethodView):
    @blp.response(200, ReceivedOut)
    @blp.errors({400: [OrderCode.INVALID_SIGNATURE, OrderCode.INVALID_EVENT]})
    @blp.doc(security=[], parameters=[{"in": "header", "name": "Stripe-Signature", "required": True,
                                       "schema": {"type": "string"}}])
    def post(self):
        """Receive a Stripe event: verified, stored once by its id, processed after the acknowledgement (nothing is
        stored on `invalid_signature`)."""
        service.receive_event(payload=request.get_data(), signature=request.headers.get("Stripe-Signature"))
        commit()
        return {"received": True}


@sandbox_blp.route("/payments/sandbox/<string(maxlength=255):payment_intent_id>/confirm")
class SandboxConfirm(MethodView):
    @require_role("consumer", "admin")
    @sandbox_blp.arguments(SandboxConfirmIn)
    @sandbox_blp.response(200, PaymentStateOut)
    @sandbox_blp.errors({409: [OrderCode.PAYMENT_INTENT_CANCELED]})
    def post(self, data, payment_intent_id):
        """Sandbox only: pay or fail an order's PaymentIntent through a signed event to the webhook's handler
        (`payment_intent_canceled`: the order was cancelled, and its intent with it)."""
        found = service.sandbox_confirm(actor=current_user(), intent_id=payment_intent_id, **data)
        commit()
        return service.state_after_confirm(found)
