"""Products with certificates and agreement rates, their change history, locations, lots and stock."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from shop.db import CommitOrdered, UTCDateTime, db, utcnow
from shop.fields import code_skeleton, name_key, name_search_key
from shop.regions.models import Region

UNITS = ("kg", "box", "bag", "piece")


STATUSES = ("draft", "active", "archived")
LISTED = "status <> 'archived'"  # the products on their supplier's list, whose names never read alike
LOCATION_KINDS = ("warehouse", "store")
RATE_FIELDS = ("platform_fee_bp", "store_commission_bp", "household_premium_bp", "dividend_bp")
HISTORY_FIELDS = ("price_fen", *RATE_FIELDS)  # a sale's terms, kept in the history (a past sale's price and rates)
MEASURE_FIELDS = ("unit", "net_weight_g")  # what a quantity counts: fixed once the product has a lot
TEXT_FIELDS = ("unit",)  # history fields with text values


def _rate_check(name: str) -> CheckConstraint:
    """A CHECK keeping one rate within 0–10000 basis points."""
    return CheckConstraint(f"{name} BETWEEN 0 AND 10000", name=name)


class Product(db.Model):
    """A product of one supplier from one recipient county, with its price, rates and certificate."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    name_folded: Mapped[str] = mapped_column(Text)  # `name_search_key(name)`, kept by `_fold_name`
    # `name_key(name)`, kept by `_fold_name`: no two of a supplier's products not archived read alike
    name_key: Mapped[str] = mapped_column(Text)
    name_pinyin: Mapped[str] = mapped_column(String(400))
    name_initials: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32))
    unit: Mapped[str] = mapped_column(String(8))
    net_weight_g: Mapped[int] = mapped_column(Integer)
    price_fen: Mapped[int] = mapped_column(BigInteger)
    county_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), default="draft")
    images: Mapped[list] = mapped_column(JSON, default=list)
    platform_fee_bp: Mapped[int] = mapped_column(Integer, default=0)
    store_commission_bp: Mapped[int] = mapped_column(Integer, default=0)
    household_premium_bp: Mapped[int] = mapped_column(Integer, default=0)
    dividend_bp: Mapped[int] = mapped_column(Integer, default=0)
    certificate_number: Mapped[str | None] = mapped_column(String(64))
    certificate_issuer: Mapped[str | None] = mapped_column(String(100))
    certificate_valid_from: Mapped[date | None] = mapped_column(Date)
    certificate_valid_until: Mapped[date | None] = mapped_column(Date)
    certificate_lapsed_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    county: Mapped[Region] = relationship(lazy="joined", innerjoin=True)

    __table_args__ = (
        CheckConstraint("price_fen >= 0", name="price_fen"),
        CheckConstraint("net_weight_g > 0", name="net_weight_g"),
        CheckConstraint("unit IN ('kg', 'box', 'bag', 'piece')", name="unit"),
        CheckConstraint("status IN ('draft', 'active', 'archived')", name="status"),
        *(_rate_check(name) for name in RATE_FIELDS),
        CheckConstraint(f"{' + '.join(RATE_FIELDS)} <= 10000", name="rates_total"),
        CheckConstraint("certificate_valid_until IS NULL OR certificate_valid_from IS NULL "
                        "OR certificate_valid_until >= certificate_valid_from", name="certificate_period"),
        Index("ix_products_county_status_id", "county_code", "status", "id"),
        Index("ix_products_status_id", "status", "id"),
        Index("ix_products_category_status_id", "category", "status", "id"),
        Index("ix_products_price_fen", "price_fen"),
        Index("ix_products_certificate_valid_until", "certificate_valid_until"),
        Index("uq_products_supplier_name_key", "supplier_id", "name_key", unique=True,
              postgresql_where=text(LISTED), sqlite_where=text(LISTED)),
        # `q` search: a trigram GIN index on PostgreSQL (migration 0013), a plain index on SQLite
        Index("ix_products_name_search", "name_folded", "name_pinyin", "name_initials", postgresql_using="gin",
              postgresql_ops={column: "gin_trgm_ops" for column in ("name_folded", "name_pinyin", "name_initials")},
              postgresql_with={"fastupdate": "off"}),
    )

    @validates("name")
    def _fold_name(self, _key: str, name: str) -> str:
        """Keep the name's search key and its identity with every name set."""
        self.name_folded, self.name_key = name_search_key(name), name_key(name)
        return name


class ProductChange(CommitOrdered, db.Model):
    """One change of a product's price, a rate, its unit or net weight: who, when, which field, old and new value
    (in `old_text`/`new_text` for a text field)."""

    __tablename__ = "product_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    field: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[int | None] = mapped_column(BigInteger)  # None: the starting value, set on creation
    new_value: Mapped[int | None] = mapped_column(BigInteger)
    old_text: Mapped[str | None] = mapped_column(String(16))
    new_text: Mapped[str | None] = mapped_column(String(16))
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint("(new_value IS NULL) != (new_text IS NULL)", name="one_new_value"),)

    @property
    def old_shown(self) -> int | str | None:
        """The old value as the history shows it (None: the starting value)."""
        return self.old_text if self.field in TEXT_FIELDS else self.old_value

    @property
    def new_shown(self) -> int | str:
        """The new value as the history shows it."""
        return self.new_text if self.field in TEXT_FIELDS else self.new_value


class Location(db.Model):
    """A place that holds stock: a warehouse or a store's back room."""

    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    # the code as it reads (`code_skeleton`): look-alike codes (`FS_WH`, `FS.WH`, `FS-WH`) name one location
    skeleton: Mapped[str] = mapped_column(
        String(32), unique=True, default=lambda context: code_skeleton(context.get_current_parameters()["code"]))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))

    __table_args__ = (CheckConstraint("kind IN ('warehouse', 'store')", name="kind"),)


class Lot(db.Model):
    """A batch of one product delivered by households (or an enterprise), with its public trace code."""

    __tablename__ = "lots"

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    lot_code: Mapped[str] = mapped_column(String(64))
    # the code as it reads (`code_skeleton`): look-alike codes (`L-1`, `L_1`, `L.1`) name one of the supplier's lots
    skeleton: Mapped[str] = mapped_column(
        String(64), default=lambda context: code_skeleton(context.get_current_parameters()["lot_code"]))
    trace_code: Mapped[str] = mapped_column(String(16), unique=True)
    harvested_on: Mapped[date] = mapped_column(Date)
    packed_on: Mapped[date | None] = mapped_column(Date)
    village: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    attributed_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    product: Mapped[Product] = relationship()
    contributions: Mapped[list[LotContribution]] = relationship(back_populates="lot", order_by="LotContribution.id")
    stock_rows: Mapped[list[Stock]] = relationship(order_by="Stock.id", viewonly=True)

    __table_args__ = (
        UniqueConstraint("supplier_id", "lot_code", name="uq_lots_supplier_lot_code"),
        UniqueConstraint("supplier_id", "skeleton", name="uq_lots_supplier_skeleton"),
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("attributed_fen >= 0", name="attributed_fen"),
        CheckConstraint("packed_on IS NULL OR packed_on >= harvested_on", name="packed_after_harvest"),
    )


class LotContribution(db.Model):
    """How much one household delivered into a lot (its village kept for the public trace page)."""

    __tablename__ = "lot_contributions"

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    village: Mapped[str] = mapped_column(String(64))

    lot: Mapped[Lot] = relationship(back_populates="contributions")

    __table_args__ = (
        UniqueConstraint("lot_id", "household_id", name="uq_lot_contributions_household"),
        CheckConstraint("quantity > 0", name="quantity"),
    )


class Stock(db.Model):
    """Units of one lot at one location: on hand, and how many of those are reserved."""

    __tablename__ = "stock"

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)

    lot: Mapped[Lot] = relationship()

    __table_args__ = (
        UniqueConstraint("location_id", "lot_id", name="uq_stock_location_lot"),
        CheckConstraint("reserved >= 0", name="reserved"),
        CheckConstraint("reserved <= on_hand", name="reserved_within_on_hand"),
        Index("ix_stock_location_product", "location_id", "product_id"),
        Index("ix_stock_product_location", "product_id", "location_id"),
    )

    @property
    def available(self) -> int:
        """Units that may still be reserved or sold."""
        return self.on_hand - self.reserved


class InventoryUpload(db.Model):
    """A co-op's inventory file and the state of its import (the file's bytes only until the import finishes)."""

    __tablename__ = "inventory_uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    sha256: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    lots_created: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list] = mapped_column(JSON, default=list)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last (re-)queued; null: at created_at
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("supplier_id", "dedupe_key", name="uq_inventory_uploads_dedupe"),
        CheckConstraint("status IN ('pending', 'processing', 'succeeded', 'failed')", name="status"),
    )
