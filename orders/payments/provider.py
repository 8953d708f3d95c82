"""The one small interface every payment provider implements, and the configured provider.

Stripe is the provider we build; the sandbox stands in for it when no `STRIPE_API_KEY` is set
(embedded default, demo, benchmarks, end-to-end tests) and produces the same shapes and the
same signed webhook events, so the rest of the code cannot tell them apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from flask import current_app

MAX_PAYMENT_FEN = 99_999_999  # the most one PaymentIntent carries: Stripe's limit, 8 digits in the smallest unit


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent: its provider id, the client secret the buyer's page confirms it with, the amount."""

    id: str
    client_secret: str
    amount_fen: int


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP = 2**33  # year 2242: anything later is not a Stripe timestamp


def is_timestamp(value: object) -> bool:
    """Whether `value` is a Unix timestamp Stripe could send."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < MAX_TIMESTAMP


def from_timestamp(value: object) -> datetime | None:
    """A Stripe Unix timestamp as an aware UTC datetime, None if `value` is not one."""
    return datetime.fromtimestamp(value, UTC) if is_timestamp(value) else None


def not_before(moment: datetime, *floors: datetime | None) -> datetime:
    """When money the provider dated (a payment, a refund) counts: its date, but never before any of `floors` (its
    order's creation, the payment a refund gives back), so a clock or a replayed event never dates it before the sale
    it concerns, perhaps into a month already disclosed."""
    return max([moment, *(floor for floor in floors if floor is not None)])


def provider_key(stem: str, created_at: datetime) -> str:
    """The idempotency key of one of our objects at the provider: `<stem>@<its creation time in microseconds since
    1970 UTC>` (e.g. `order-5-intent@1764298262123456`), so another database's object of the same id (a re-created
    staging or a test database on the same Stripe account) never shares it, while a restore of this one does."""
    return f"{stem}@{(created_at - EPOCH) // timedelta(microseconds=1)}"


@dataclass(frozen=True)
class ProviderRefund:
    """A refund as the provider last described it: its id and status (`pending`, `requires_action`, `succeeded`,
    `failed` or `canceled`; only `succeeded` is money given back)."""

    id: str
    status: str


class AmountTooSmall(Exception):
    """The provider answered that a payment of this amount is below the least it charges: no intent was made."""


class RefundRefused(Exception):
    """The provider answered and refused a refund (e.g. more than is left of the payment): nothing was refunded."""


class KeyRefused(Exception):
    """The provider refused the shop's API key (one it does not know, or a restricted key without the permission the
    request needs; its message, which quotes part of the key, is not kept, nor chained): nothing was done, so the
    request may be asked again unchanged, but only an operator fixing the key makes it succeed. Its text: the
    provider's error class. Every provider call may raise it."""


def api_key_mode() -> str:
    """The mode of the configured Stripe API key as its prefix says (`live`, `test`, else `unknown`): what a log may
    name of a refused key, never the key."""
    key = current_app.config.get("STRIPE_API_KEY") or ""
    return next((mode for mode in ("live", "test") if key.startswith((f"sk_{mode}_", f"rk_{mode}_"))), "unknown")


class PaymentProvider(Protocol):
    """What the orders domain needs from a payment provider."""

    name: str

    def create_intent(self, *, order_id: int, amount_fen: int, idempotency_key: str) -> Intent:
        """Create (idempotently, under the order's `provider_key`) a CNY PaymentIntent for the order; no personal
        data (`AmountTooSmall` if the provider answered that the amount is below its minimum charge; `KeyRefused` as
        `refund`)."""

    def refund(self, *, intent_id: str, amount_fen: int, idempotency_key: str) -> ProviderRefund:
        """Refund part or all of a succeeded PaymentIntent; the provider's refund (`RefundRefused` if it answered
        no; `KeyRefused` if it refused the shop's key; any other error leaves the outcome unknown: ask again with the
        same key)."""

    def retrieve_refund(self, *, refund_id: str) -> ProviderRefund:
        """A refund the provider made, as it stands now (one still pending is asked about again later; `KeyRefused`
        as `refund`)."""

    def retrieve_balance_transaction(self, *, balance_transaction_id: str) -> dict:
        """A charge's balance transaction: its id, `fee` (what the provider kept, in the balance's smallest unit),
        `currency` and `exchange_rate` (from the charge's currency to the balance's, if it was converted;
        `KeyRefused` as `refund`)."""

    def list_refunds(self, *, intent_id: str) -> list[dict]:
        """The refunds of a PaymentIntent (id, amount, created, status, metadata.refund_key), newest first
        (`KeyRefused` as `refund`)."""

    def cancel_intent(self, *, intent_id: str) -> None:
        """Cancel a PaymentIntent no one has paid, so it can no longer be paid (one already paid is left as it
        is: its payment is then returned when its event comes; `KeyRefused` as `refund`)."""


def get_provider() -> PaymentProvider:
    """The provider the configuration names (`PAYMENTS`: stripe or sandbox)."""
    if current_app.config["PAYMENTS"] == "stripe":
        from orders.payments.stripe_provider import StripeProvider

        return StripeProvider.from_config(current_app.config)
    from orders.payments.sandbox import SandboxProvider

    return SandboxProvider.from_config(current_app.config)
