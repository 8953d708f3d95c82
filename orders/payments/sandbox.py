"""The sandbox provider: Stripe-shaped PaymentIntents and refunds made locally, with no server to call.

Ids are derived from the idempotency key (of an intent or a refund) with an HMAC, so calling
twice gives the same object, as Stripe's idempotency keys do. Payments are confirmed through the
sandbox route, which signs a Stripe-format event and hands it to the webhook's own handler.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from orders.payments.provider import Intent, ProviderRefund

ID_LENGTH = 24


class SandboxProvider:
    """A stand-in for Stripe when no `STRIPE_API_KEY` is configured (embedded default, demo, benchmarks)."""

    name = "sandbox"

    def __init__(self, secret: str):
        self.secret = secret.encode()

    @classmethod
    def from_config(cls, config: Mapping) -> SandboxProvider:
        """A sandbox keyed by the webhook secret (ids are stable for one deployment)."""
        return cls(config["STRIPE_WEBHOOK_SECRET"])

    def _token(self, text: str) -> str:
        """A short stable hex token of `text` under the sandbox's key."""
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()[:ID_LENGTH]

    def create_intent(self, *, order_id: int, amount_fen: int, idempotency_key: str) -> Intent:
        """The order's PaymentIntent (`pi_…`, client secret `pi_…_secret_…`): the same one on every call with the
        same key."""
        intent_id = f"pi_{self._token(f'intent:{idempotency_key}')}"
        return Intent(id=intent_id, client_secret=f"{intent_id}_secret_{self._token(intent_id)}",
                      amount_fen=amount_fen)

    def refund(self, *, intent_id: str, amount_fen: int, idempotency_key: str) -> ProviderRefund:
        """A succeeded refund whose id (`re_…`) depends only on the idempotency key, as a retried Stripe call's
        would."""
        return ProviderRefund(id=f"re_{self._token(f'refund:{idempotency_key}')}", status="succeeded")

    def retrieve_refund(self, *, refund_id: str) -> ProviderRefund:
        """The sandbox's refunds succeed when made."""
        return ProviderRefund(id=refund_id, status="succeeded")

    def retrieve_balance_transaction(self, *, balance_transaction_id: str) -> dict:
        """The sandbox keeps no fee (and sends no charge events naming a balance transaction)."""
        return {"id": balance_transaction_id, "fee": 0, "currency": "cny", "exchange_rate": None}

    def list_refunds(self, *, intent_id: str) -> list[dict]:
        """None: the sandbox's refunds are all made by the shop, which records them itself."""
        return []

    def cancel_intent(self, *, intent_id: str) -> None:
        """Nothing to tell: the sandbox's confirm route refuses the intent of a cancelled order itself."""
