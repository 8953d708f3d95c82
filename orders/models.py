"""Stores, shifts, transfers, adjustments, orders with their lines and lot allocations, payments,
webhook events, refunds, after-sales requests, counter-sale conflicts and the money-event outbox."""
from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    exists,
    literal_column,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from catalog.models import Lot, Product
from shop import crypto
from shop.db import CommitOrdered, UTCDateTime, db, utcnow
from shop.fields import name_key
from shop.public import households_reached

CHANNELS = ("delivery", "pickup", "counter")
ORDER_STATUSES = ("pending_payment", "paid", "shipped", "delivered", "fulfilled", "cancelled", "expired",
                  "refunded")
ALLOCATION_STATES = ("reserved", "allocated", "released")
PAYMENT_METHODS = ("stripe", "cash", "card")
ADJUSTMENT_REASONS = ("stocktake", "spoiled", "damaged", "found")  # what a clerk or an admin records
MAX_TRANSFER_LOTS = 1000  # the lots one transfer may send: its receipt names each of them in one request
LOST_IN_TRANSIT = "lost_in_transit"  # units a transfer's receipt says did not arrive, written off by the receipt
OUTBOX_KINDS = ("line_paid", "line_refunded", "refund_remainder", "payment_unallocated", "payment_returned",
                "processor_fee")


def _in(column: str, values: tuple[str, ...]) -> str:
    """SQL for `column IN (values)`."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Store(db.Model):
    """A 大凉山 experience store in a donor district, selling from its own stock location."""

    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))  # what a consumer picks a pickup store by, as typed
    name_key: Mapped[str] = mapped_column(Text, unique=True)  # `name_key(name)`: no two read alike; `_key_name`
    district_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), unique=True)
    bank_account_enc: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    revealed = False  # output masks the bank account

    @validates("name")
    def _key_name(self, _key: str, name: str) -> str:
        """Keep the name's identity with every name set."""
        self.name_key = name_key(name)
        return name

    @property
    def bank_account(self) -> str | None:
        """The decrypted commission payout account."""
        return crypto.decrypt(self.bank_account_enc, field="stores.bank_account") if self.bank_account_enc else None

    @bank_account.setter
    def bank_account(self, value: str | None) -> None:
        self.bank_account_enc = crypto.encrypt(value, field="stores.bank_account") if value else None


class StoreClosure(db.Model):
    """A period a store was closed (deactivated): from `closed_at` until `reopened_at` (null while it stays closed);
    its till's queued offline sales stamped inside any such period are conflicts (`orders.counter`)."""

    __tablename__ = "store_closures"

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # null: closed before closures were kept
    reopened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopened_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        CheckConstraint("reopened_at IS NULL OR reopened_at >= closed_at", name="reopened_at"),
        Index("uq_store_closures_open", "store_id", unique=True, postgresql_where=text("reopened_at IS NULL"),
              sqlite_where=text("reopened_at IS NULL")),
    )


class StoreAccountChange(CommitOrdered, db.Model):
    """A store's payout account changed: who, when, why, old and new (masked only)."""

    __tablename__ = "store_account_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    old_masked: Mapped[str | None] = mapped_column(String(40))
    new_masked: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Shift(db.Model):
    """A clerk's cash shift at a store: opened with a float, closed with the counted cash."""

    __tablename__ = "shifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    opened_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    float_fen: Mapped[int] = mapped_column(BigInteger)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counted_cash_fen: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("float_fen >= 0", name="float_fen"),
        CheckConstraint("counted_cash_fen IS NULL OR counted_cash_fen >= 0", name="counted_cash_fen"),
    )


class StockTransfer(db.Model):
    """Stock sent from a warehouse to a store: dispatched, then received (with any discrepancy), or cancelled by an
    admin before it is received (its units back on the source's lots)."""

    __tablename__ = "stock_transfers"

    id: Mapped[int] = mapped_column(primary_key=True)
    from_location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    to_location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="dispatched")
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    received_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    receipt_note: Mapped[str | None] = mapped_column(String(200))  # what happened to the units that did not arrive
    cancelled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(String(200))

    lines: Mapped[list[TransferLine]] = relationship(order_by="TransferLine.id", lazy="selectin")

    __table_args__ = (CheckConstraint("status IN ('dispatched', 'received', 'cancelled')", name="status"),)


class TransferLine(db.Model):
    """Units of one lot sent in a transfer, and how many arrived."""

    __tablename__ = "transfer_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("stock_transfers.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    sent: Mapped[int] = mapped_column(Integer)
    received: Mapped[int | None] = mapped_column(Integer)

    lot: Mapped[Lot] = relationship(lazy="selectin", viewonly=True)  # its lot and trace codes, to count it by
    product: Mapped[Product] = relationship(lazy="selectin", viewonly=True)

    __table_args__ = (
        UniqueConstraint("transfer_id", "lot_id", name="uq_transfer_lines_lot"),
        CheckConstraint("sent > 0", name="sent"),
        CheckConstraint("received IS NULL OR (received >= 0 AND received <= sent)", name="received"),
    )


class StockAdjustment(CommitOrdered, db.Model):
    """An audited change of one lot's on-hand stock at a location: a count, a write-off or a find; or the units of a
    transfer (`transfer_id`) that did not arrive at its destination, written off by its receipt."""

    __tablename__ = "stock_adjustments"

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(200))
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("stock_transfers.id"))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    __table_args__ = (
        CheckConstraint(_in("reason", (*ADJUSTMENT_REASONS, LOST_IN_TRANSIT)), name="reason"),
        CheckConstraint("delta <> 0", name="delta"),
    )


class Order(db.Model):
    """An order: online (delivery or pickup, paid through a provider) or a counter sale (paid at once)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), default="pending_payment")
    consumer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    donor_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    address_enc: Mapped[str | None] = mapped_column(Text)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sale_date: Mapped[date | None] = mapped_column(Date)
    pickup_code: Mapped[str | None] = mapped_column(String(6))
    carrier: Mapped[str | None] = mapped_column(String(40))
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    shift_id: Mapped[int | None] = mapped_column(ForeignKey("shifts.id"), index=True)
    payment_method: Mapped[str] = mapped_column(String(8), default="stripe")
    tendered_fen: Mapped[int | None] = mapped_column(BigInteger)
    client_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))  # a counter sale's, from its till
    idempotency_hash: Mapped[str | None] = mapped_column(String(64))  # the fingerprint of the request that made it
    late_entry: Mapped[bool] = mapped_column(default=False)
    receipt_prints: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # at the till (`print_receipt`)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # pushed by the ledger from the order's household postings (net of refunds); NULL until attributed
    impact_households: Mapped[int | None] = mapped_column(Integer)
    impact_fen: Mapped[int | None] = mapped_column(BigInteger)
    impact_counties: Mapped[list | None] = mapped_column(JSON)

    lines: Mapped[list[OrderLine]] = relationship(order_by="OrderLine.id", lazy="selectin",
                                                  back_populates="order")

    __table_args__ = (
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
        CheckConstraint(_in("payment_method", PAYMENT_METHODS), name="payment_method"),
        CheckConstraint("total_fen >= 0", name="total_fen"),
        CheckConstraint("(channel = 'delivery') = (address_enc IS NOT NULL)", name="delivery_address"),
        CheckConstraint("channel = 'delivery' OR store_id IS NOT NULL", name="store"),
        Index("ix_orders_status_expires_at", "status", "expires_at"),
        Index("ix_orders_store_pickup_code", "store_id", "pickup_code"),
        Index("uq_orders_waiting_pickup_code", "store_id", "pickup_code", unique=True,
              postgresql_where=text("status = 'paid' AND pickup_code IS NOT NULL"),
              sqlite_where=text("status = 'paid' AND pickup_code IS NOT NULL")),
        UniqueConstraint("store_id", "idempotency_key", name="uq_orders_store_key"),
    )

    @hybrid_property
    def has_units_sold(self) -> bool:
        """Whether a unit of the order is still sold: not every unit was taken back by a refund, even one still
        pending at the payment provider (so nothing is left to hand over or ship)."""
        return any(line.refunded_quantity < line.quantity for line in self.lines)

    @has_units_sold.inplace.expression
    @classmethod
    def _has_units_sold_expression(cls):
        """`has_units_sold` as a filter of orders."""
        return exists().where(OrderLine.order_id == cls.id, OrderLine.refunded_quantity < OrderLine.quantity)

    @hybrid_property
    def awaiting_pickup(self) -> bool:
        """Whether the order can still be collected with its pickup code: a paid pickup order not yet handed over
        with a unit still sold (a refunded, expired or collected one cannot)."""
        return self.channel == "pickup" and self.status == "paid" and bool(self.pickup_code) and self.has_units_sold

    @awaiting_pickup.inplace.expression
    @classmethod
    def _awaiting_pickup_expression(cls):
        """`awaiting_pickup` as a filter of orders."""
        return and_(cls.channel == "pickup", cls.status == "paid", cls.pickup_code.is_not(None), cls.has_units_sold)

    @property
    def still_sold_fen(self) -> int:
        """The value of the units still sold (`OrderLine.units_still_sold`): what a pickup hands over."""
        return sum(line.units_still_sold * line.unit_price_fen for line in self.lines)

    @property
    def impact(self) -> dict | None:
        """The public impact line (DESIGN "Public outputs"), None until attributed: households reached, amount
        attributed and counties (0 and 0 when none was reached); for 1 or 2 households only `fewer_than`: no count, no
        amount and no counties (two of them would say there were two households)."""
        if self.impact_households is None:
            return None
        reached = households_reached(self.impact_households, self.impact_fen)
        if reached["households"] is None:
            return reached
        return reached | {"counties": list(self.impact_counties or [])}

    @property
    def address(self) -> dict | None:
        """The decrypted delivery address (district code, detail, recipient, phone)."""
        return json.loads(crypto.decrypt(self.address_enc, field="orders.address")) if self.address_enc else None

    @address.setter
    def address(self, value: dict | None) -> None:
        self.address_enc = (crypto.encrypt(json.dumps(value, ensure_ascii=False), field="orders.address")
                            if value else None)


class OrderLine(db.Model):
    """A product line with the price and agreement rates snapshotted at checkout."""

    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    sku: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    county_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
    platform_fee_bp: Mapped[int] = mapped_column(Integer)
    store_commission_bp: Mapped[int] = mapped_column(Integer)
    household_premium_bp: Mapped[int] = mapped_column(Integer)
    dividend_bp: Mapped[int] = mapped_column(Integer)
    scanned_lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"))
    refunded_quantity: Mapped[int] = mapped_column(Integer, default=0)

    order: Mapped[Order] = relationship(back_populates="lines")
    allocations: Mapped[list[Allocation]] = relationship(order_by="Allocation.id", lazy="selectin")

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("unit_price_fen >= 0", name="unit_price_fen"),
        CheckConstraint("refunded_quantity >= 0 AND refunded_quantity <= quantity", name="refunded_quantity"),
    )

    @property
    def amount_fen(self) -> int:
        """The line's value: quantity × unit price."""
        return self.quantity * self.unit_price_fen

    @property
    def units_still_sold(self) -> int:
        """Units sold and not refunded: what is still the customer's (to hand over, or to refund)."""
        return self.quantity - self.refunded_quantity


class Allocation(db.Model):
    """Units of an order line held in one lot at one location: reserved, then allocated (sold) or released.

    `refunded` counts the units of an allocated portion given back; refunds take them off the line's
    allocations in reverse allocation order (DESIGN.md).
    """

    __tablename__ = "allocations"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"), index=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(10), default="reserved")
    refunded: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        CheckConstraint(_in("state", ALLOCATION_STATES), name="state"),
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("refunded >= 0 AND refunded <= quantity", name="refunded"),
    )


class OrderTransition(db.Model):
    """One change of an order's status: who, when, from, to."""

    __tablename__ = "order_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    order: Mapped[Order] = relationship(lazy="raise")  # set on a new order's first record, before its id exists


class Payment(db.Model):
    """An order's payment with a provider: the PaymentIntent id, amount and what the provider said."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    client_secret: Mapped[str | None] = mapped_column(String(255))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="cny")
    status: Mapped[str] = mapped_column(String(16), default="created")
    last_error: Mapped[str | None] = mapped_column(String(200))
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the buyer's bank disputes the payment (Stripe's latest word on it): for an admin to answer at Stripe
    dispute_id: Mapped[str | None] = mapped_column(String(255))
    dispute_status: Mapped[str | None] = mapped_column(String(32))
    dispute_reason: Mapped[str | None] = mapped_column(String(64))
    dispute_amount_fen: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_fen"),
        CheckConstraint("status IN ('created', 'failed', 'succeeded', 'returned', 'canceled')", name="status"),
    )


class PaymentEvent(db.Model):
    """A provider's webhook event, stored once by its id and processed idempotently by a task."""

    __tablename__ = "payment_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'deferred', 'processed', 'ignored', 'failed')", name="status"),
        Index("ix_payment_events_status_received_at", "status", "received_at"),
    )


# A payment event no drain has tried yet. The values are written into the SQL, not bound, so that a query naming
# this condition matches the partial index below also under a generic (prepared) plan.
NEW_PAYMENT_EVENT = and_(PaymentEvent.status == literal_column("'pending'"),
                         PaymentEvent.attempts == literal_column("0"))
# the drain's claim of the oldest new event: one index entry, however many events were processed before
Index("ix_payment_events_new", PaymentEvent.id, postgresql_where=NEW_PAYMENT_EVENT, sqlite_where=NEW_PAYMENT_EVENT)


class Refund(db.Model):
    """Money given back for units of an order (or an unallocatable payment), with the provider's refund id."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))  # the payment a return gives back
    provider_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(12))
    # pending: units held and the provider asked (or to be asked again) under its `refund_key`; succeeded: the
    # money went back and the events were written; failed: the provider refused, the units were given back
    status: Mapped[str] = mapped_column(String(10), default="succeeded", server_default="succeeded")
    provider_status: Mapped[str | None] = mapped_column(String(24))  # what the provider last said of the refund
    held_events: Mapped[list | None] = mapped_column(JSON)  # a pending refund's `line_refunded` events, unwritten
    shift_id: Mapped[int | None] = mapped_column(ForeignKey("shifts.id"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    request_scope: Mapped[str | None] = mapped_column(String(64))  # whose key it is (`shop.idempotency`'s scope)
    request_key: Mapped[str | None] = mapped_column(String(255))  # the Idempotency-Key it was asked with
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when the sweeper last queued its settling
    # a return's attempt, which its idempotency key names: raised when the provider refused it for more than was left
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # attempts in a row that got no answer or a refused key: not asked again before `retry_at` (a back-off)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    lines: Mapped[list[RefundLine]] = relationship(order_by="RefundLine.id", lazy="selectin")

    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_fen"),
        CheckConstraint(_in("method", PAYMENT_METHODS), name="method"),
        CheckConstraint("source IN ('staff', 'after_sales', 'provider', 'unallocated')", name="source"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        Index("ix_refunds_pending", "id", postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
        Index("ix_refunds_request_key", "request_scope", "request_key"),
    )


class RefundLine(db.Model):
    """Units of one order line a refund gave back, and whether they went back on the shelf."""

    __tablename__ = "refund_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refunds.id"), index=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    resellable: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (CheckConstraint("quantity > 0", name="quantity"),)


class AfterSalesRequest(db.Model):
    """A consumer's request to refund delivered or collected units, approved (→ a refund) or rejected."""

    __tablename__ = "after_sales_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    lines: Mapped[list] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(500))
    photo_url: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(10), default="open")
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))
    # the order's last refund when the request was made (0: none): the refunds made since count toward it (both are
    # written under the order's lock, so ids tell their order; the hosts' clocks may not)
    refunds_before: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint("status IN ('open', 'approved', 'rejected', 'withdrawn')", name="status"),)


class SaleConflict(CommitOrdered, db.Model):
    """An offline counter sale the server refused, kept for the store manager (never dropped) until they resolve it:
    who, when, and what was done about it."""

    __tablename__ = "sale_conflicts"

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    shift_id: Mapped[int | None] = mapped_column(ForeignKey("shifts.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    sale: Mapped[dict] = mapped_column(JSON)
    client_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolution_note: Mapped[str | None] = mapped_column(String(500))  # what was done about the refused sale

    __table_args__ = (UniqueConstraint("store_id", "idempotency_key", name="uq_sale_conflicts_store_key"),)


class OutboxEvent(db.Model):
    """A money event written in the same transaction as the change it records; the ledger consumes it.

    Delivery is at least once (a task after commit, the sweeper for what was not delivered); the
    consumer applies each row at most once by its id.
    """

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    order_line_id: Mapped[int | None] = mapped_column(ForeignKey("order_lines.id"))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sale_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(_in("kind", OUTBOX_KINDS), name="kind"),
        Index("ix_outbox_events_delivered_at_id", "delivered_at", "id"),
        Index("ix_outbox_events_refunded_line", "order_line_id", postgresql_where=text("kind = 'line_refunded'"),
              sqlite_where=text("kind = 'line_refunded'")),
        Index("ix_outbox_events_refund_id", "refund_id", postgresql_where=text("refund_id IS NOT NULL"),
              sqlite_where=text("refund_id IS NOT NULL")),
    )


NOTIFICATION_STATUSES = ("pending", "sent", "failed")


class Notification(db.Model):
    """A notification about an order (`orders.notify`), kept until it is sent or given up."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    status: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: waiting for the next sweep
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(_in("status", NOTIFICATION_STATUSES), name="status"),
        Index("ix_notifications_status_queued_at", "status", "queued_at"),
    )
