"""Stripe behind the provider interface: CNY PaymentIntents and refunds through the official library.

Every request carries an idempotency key (the caller's `provider_key` of the order or refund, or one of the
intent's own id), so a
retried call never creates a second intent or refunds twice; metadata carries only the order id (an intent) or
that key (a refund, so its events are matched to our pending refund). A request takes at most
NETWORK_RETRIES + 1 tries of REQUEST_TIMEOUT_SECONDS each: well within a web worker's timeout (README: gunicorn
`--timeout 60`), so a slow Stripe gets an answer from us, never a killed worker.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import stripe

from orders.payments.provider import AmountTooSmall, Intent, KeyRefused, ProviderRefund, RefundRefused

PAYMENT_METHOD_TYPES = ("card", "alipay", "wechat_pay")
NETWORK_RETRIES = 1
STRIPE_AMOUNT_TOO_SMALL = "amount_too_small"  # Stripe's error code (not ours) for an amount below its minimum charge
REQUEST_TIMEOUT_SECONDS = 8  # each try: two tries and the library's retry pause stay under 20 s


@contextmanager
def _key_checked() -> Iterator[None]:
    """Stripe's refusal of the key (401 `AuthenticationError`, 403 `PermissionError`: a restricted key without the
    permission) as `KeyRefused`, named by its class only, with no cause chained to it (Stripe's message quotes part of
    the key, and a logged traceback would print it): every call to Stripe goes through it."""
    try:
        yield
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise KeyRefused(exc.__class__.__name__) from None


class StripeProvider:
    """PaymentIntents and refunds on Stripe (amounts in fen, currency cny)."""

    name = "stripe"

    def __init__(self, client: stripe.StripeClient):
        self.client = client

    @classmethod
    def from_config(cls, config: Mapping) -> StripeProvider:
        """A provider with `STRIPE_API_KEY` (and `STRIPE_HTTP_CLIENT`, a `stripe.HTTPClient`, if one is set)."""
        http_client = config.get("STRIPE_HTTP_CLIENT") or stripe.new_default_http_client(
            timeout=REQUEST_TIMEOUT_SECONDS)
        return cls(stripe.StripeClient(config["STRIPE_API_KEY"], http_client=http_client,
                                       max_network_retries=NETWORK_RETRIES))

    def create_intent(self, *, order_id: int, amount_fen: int, idempotency_key: str) -> Intent:
        """Create the order's PaymentIntent, idempotently under the caller's key; metadata: the order id only.
        `AmountTooSmall` when Stripe refuses the amount as below its minimum charge (`amount_too_small`: the minimum
        follows the account's settlement currency, so only Stripe knows it); `KeyRefused`: `_key_checked`."""
        try:
            with _key_checked():
                intent = self.client.v1.payment_intents.create(
                    params={"amount": amount_fen, "currency": "cny",
                            "payment_method_types": list(PAYMENT_METHOD_TYPES),
                            "payment_method_options": {"wechat_pay": {"client": "web"}},
                            "metadata": {"order_id": str(order_id)}},
                    options={"idempotency_key": idempotency_key})
        except stripe.InvalidRequestError as exc:
            if exc.code == STRIPE_AMOUNT_TOO_SMALL:
                raise AmountTooSmall(amount_fen) from exc
            raise
        return Intent(id=intent.id, client_secret=intent.client_secret, amount_fen=intent.amount)

    def refund(self, *, intent_id: str, amount_fen: int, idempotency_key: str) -> ProviderRefund:
        """Refund `amount_fen` of a succeeded PaymentIntent under the caller's idempotency key (also its metadata's
        `refund_key`); the refund and its status, `RefundRefused` if Stripe answered that it will not, or `KeyRefused`
        if it refused the key (`_key_checked`)."""
        try:
            with _key_checked():
                refund = self.client.v1.refunds.create(
                    params={"payment_intent": intent_id, "amount": amount_fen,
                            "metadata": {"refund_key": idempotency_key}},
                    options={"idempotency_key": idempotency_key})
        except (stripe.InvalidRequestError, stripe.CardError) as exc:
            raise RefundRefused(exc.code or "refused") from exc
        return ProviderRefund(id=refund.id, status=refund.status)

    def retrieve_refund(self, *, refund_id: str) -> ProviderRefund:
        """The refund as Stripe has it now (`KeyRefused`: `_key_checked`)."""
        with _key_checked():
            refund = self.client.v1.refunds.retrieve(refund_id)
        return ProviderRefund(id=refund.id, status=refund.status)

    def cancel_intent(self, *, intent_id: str) -> None:
        """Cancel the PaymentIntent (key `<intent>-cancel`); one Stripe will not cancel (already paid or being
        paid) raises `stripe.InvalidRequestError` (`KeyRefused`: `_key_checked`)."""
        with _key_checked():
            self.client.v1.payment_intents.cancel(intent_id, options={"idempotency_key": f"{intent_id}-cancel"})

    def retrieve_balance_transaction(self, *, balance_transaction_id: str) -> dict:
        """The balance transaction as Stripe has it: id, fee, currency and exchange rate (`KeyRefused`:
        `_key_checked`)."""
        with _key_checked():
            txn = self.client.v1.balance_transactions.retrieve(balance_transaction_id).to_dict()
        return {key: txn.get(key) for key in ("id", "fee", "currency", "exchange_rate")}

    def list_refunds(self, *, intent_id: str) -> list[dict]:
        """The PaymentIntent's refunds, newest first, as a Charge listed them before API version 2022-11-15
        (`KeyRefused`: `_key_checked`)."""
        with _key_checked():
            page = self.client.v1.refunds.list(params={"payment_intent": intent_id, "limit": 100})
            return [{"id": refund.id, "amount": refund.amount, "created": refund.created, "status": refund.status,
                     "metadata": refund.metadata.to_dict() if refund.metadata else {}}
                    for refund in page.auto_paging_iter()]
