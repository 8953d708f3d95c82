"""Suppliers, registered poor households, who works with whom, benefit links and reveal audits."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from shop import crypto
from shop.auth.models import User
from shop.db import CommitOrdered, UTCDateTime, db, utcnow
from shop.fields import name_key

SUPPLIER_KINDS = ("cooperative", "enterprise", "family_farm")
LINK_KINDS = ("purchase", "dividend", "employment")
AGREEMENT_RATES = ("platform_fee_bp", "store_commission_bp", "household_premium_bp", "dividend_bp")
DEFAULT_AGREEMENT = {"platform_fee_bp": 500, "store_commission_bp": 800, "household_premium_bp": 300,
                     "dividend_bp": 200}


class Revealed:
    """A household or supplier to be shown with full personal data, after an audited reveal.

    A wrapper rather than a flag on the row, so that the row in the session's identity map
    stays masked for everything else that shows it.
    """

    revealed = True

    def __init__(self, row: Household | Supplier):
        self._row = row

    def __getattr__(self, name: str):
        return getattr(self._row, name)


class Supplier(db.Model):
    """A co-operative, leading enterprise or family farm in a recipient county."""

    __tablename__ = "suppliers"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    name_key: Mapped[str] = mapped_column(Text, unique=True)  # `name_key(name)`: no two read alike; `_key_name`
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    county_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    contact: Mapped[str | None] = mapped_column(String(128))
    bank_account_enc: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the default agreement a co-op's new product starts with (set by admins only)
    platform_fee_bp: Mapped[int] = mapped_column(Integer, default=DEFAULT_AGREEMENT["platform_fee_bp"])
    store_commission_bp: Mapped[int] = mapped_column(Integer, default=DEFAULT_AGREEMENT["store_commission_bp"])
    household_premium_bp: Mapped[int] = mapped_column(Integer, default=DEFAULT_AGREEMENT["household_premium_bp"])
    dividend_bp: Mapped[int] = mapped_column(Integer, default=DEFAULT_AGREEMENT["dividend_bp"])

    revealed = False  # output masks personal data; see `Revealed`

    __table_args__ = (
        CheckConstraint("kind IN ('cooperative', 'enterprise', 'family_farm')", name="kind"),
        CheckConstraint("platform_fee_bp BETWEEN 0 AND 10000 AND store_commission_bp BETWEEN 0 AND 10000 "
                        "AND household_premium_bp BETWEEN 0 AND 10000 AND dividend_bp BETWEEN 0 AND 10000 "
                        "AND platform_fee_bp + store_commission_bp + household_premium_bp + dividend_bp <= 10000",
                        name="agreement"),
    )

    @validates("name")
    def _key_name(self, _key: str, name: str) -> str:
        """Keep the name's identity with every name set."""
        self.name_key = name_key(name)
        return name

    @property
    def agreement(self) -> dict[str, int]:
        """The supplier's default agreement rates in basis points."""
        return {rate: getattr(self, rate) for rate in AGREEMENT_RATES}

    @property
    def bank_account(self) -> str | None:
        """The decrypted payout account."""
        return crypto.decrypt(self.bank_account_enc, field="suppliers.bank_account") if self.bank_account_enc else None

    @bank_account.setter
    def bank_account(self, value: str | None) -> None:
        self.bank_account_enc = crypto.encrypt(value, field="suppliers.bank_account") if value else None


class Household(db.Model):
    """A registered poor household (建档立卡贫困户); its ID number and account are encrypted at rest."""

    __tablename__ = "households"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    county_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    head_name: Mapped[str] = mapped_column(String(64))
    id_number_enc: Mapped[str] = mapped_column(String(255))
    id_number_hash: Mapped[str] = mapped_column(String(64), unique=True)
    village: Mapped[str] = mapped_column(String(64))
    members: Mapped[int] = mapped_column(Integer)
    bank_account_enc: Mapped[str | None] = mapped_column(String(255))
    bank_account_hash: Mapped[str | None] = mapped_column(String(64), index=True)  # keyed, to find a shared account
    consent_on: Mapped[date] = mapped_column(Date)
    consent_basis: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    registered_by_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the demo, or made before 0060
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    revealed = False  # output masks personal data; see `Revealed`

    __table_args__ = (
        UniqueConstraint("county_code", "code", name="uq_households_county_code"),
        CheckConstraint("members >= 1", name="members"),
    )

    @property
    def id_number(self) -> str:
        """The decrypted resident ID number."""
        return crypto.decrypt(self.id_number_enc, field="households.id_number")

    @id_number.setter
    def id_number(self, value: str) -> None:
        self.id_number_enc = crypto.encrypt(value, field="households.id_number")
        self.id_number_hash = crypto.lookup_hash(value)

    @property
    def bank_account(self) -> str | None:
        """The decrypted payout account."""
        return crypto.decrypt(self.bank_account_enc, field="households.bank_account") if self.bank_account_enc else None

    @bank_account.setter
    def bank_account(self, value: str | None) -> None:
        self.bank_account_enc = crypto.encrypt(value, field="households.bank_account") if value else None
        self.bank_account_hash = crypto.lookup_hash(value) if value else None


class SupplierHousehold(db.Model):
    """A supplier works with a household: it registered it or linked it with its ID number.

    This relation, not the benefit links, decides which co-ops may see and edit a household,
    so ending every benefit link keeps the household (and its history) visible to the co-op.
    """

    __tablename__ = "supplier_households"

    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


OVERLAP_CONSTRAINT = "ex_benefit_links_no_overlap"


class BenefitLink(db.Model):
    """How a household benefits from a supplier from `valid_from` to `valid_until` (both inclusive); who made it and
    when, who ended it and when."""

    __tablename__ = "benefit_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    shares: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the demo, or made before 0055
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    household: Mapped[Household] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("kind IN ('purchase', 'dividend', 'employment')", name="kind"),
        CheckConstraint("(kind = 'dividend') = (shares IS NOT NULL)", name="dividend_shares"),
        CheckConstraint("shares IS NULL OR shares > 0", name="shares_positive"),
        CheckConstraint("valid_until IS NULL OR valid_until >= valid_from", name="period"),
        Index("ix_benefit_links_supplier_kind", "supplier_id", "kind", "valid_from"),
        # purchase (and employment) links of one household with one supplier never overlap; dividends may
        ExcludeConstraint(
            (literal_column("supplier_id"), "="), (literal_column("household_id"), "="), (literal_column("kind"), "="),
            (func.daterange(literal_column("valid_from"), literal_column("valid_until"),
                           literal_column("'[]'")), "&&"),
            using="gist", where="kind <> 'dividend'", name=OVERLAP_CONSTRAINT,
        ).ddl_if(dialect="postgresql"),
    )

    @property
    def household_code(self) -> str:
        """The registry code of the linked household."""
        return self.household.code


class RevealAudit(CommitOrdered, db.Model):
    """An admin saw a household's, supplier's or store's full personal data: who, when, what, why."""

    __tablename__ = "reveal_audits"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)  # a store bank file's account
    fields: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    user: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("(CASE WHEN household_id IS NULL THEN 0 ELSE 1 END + CASE WHEN supplier_id IS NULL THEN 0 "
                        "ELSE 1 END + CASE WHEN store_id IS NULL THEN 0 ELSE 1 END) = 1", name="one_subject"),
    )

    @property
    def username(self) -> str:
        """The name of the admin who revealed the data (masked as every audit shows it)."""
        return self.user.masked_username

    @property
    def field_list(self) -> list[str]:
        """The fields that were revealed."""
        return self.fields.split(",")


class BankAccountChange(CommitOrdered, db.Model):
    """A household's or supplier's payout account changed: who, when, why, old and new (masked only)."""

    __tablename__ = "bank_account_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"), index=True)
    old_masked: Mapped[str | None] = mapped_column(String(40))
    new_masked: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    user: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("(household_id IS NULL) != (supplier_id IS NULL)", name="one_subject"),
    )

    @property
    def username(self) -> str:
        """The name of the user who changed the account (masked as every audit shows it)."""
        return self.user.masked_username


SUPPLIER_HISTORY_FIELDS = ("name", "kind", "contact", "active")


class SupplierChange(CommitOrdered, db.Model):
    """One change of a field of a supplier (its bank account apart: `BankAccountChange`): who, when, which field, old
    and new, why if said. A rate of its default agreement keeps its values in `old_value`/`new_value`, any other field
    as text in `old_text`/`new_text` (`true`/`false` for a flag, None for no contact). Rows are only ever added; the
    table keeps the name it had when only rates were recorded."""

    __tablename__ = "supplier_agreement_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    field: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[int | None] = mapped_column(Integer)
    new_value: Mapped[int | None] = mapped_column(Integer)
    old_text: Mapped[str | None] = mapped_column(String(200))
    new_text: Mapped[str | None] = mapped_column(String(200))
    changed_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(String(500))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("field IN (" + ", ".join(f"'{name}'" for name in (*AGREEMENT_RATES, *SUPPLIER_HISTORY_FIELDS))
                        + ")", name="field"),
        CheckConstraint("CASE WHEN field IN (" + ", ".join(f"'{rate}'" for rate in AGREEMENT_RATES) + ") THEN "
                        "old_value IS NOT NULL AND new_value IS NOT NULL AND old_text IS NULL AND new_text IS NULL "
                        "ELSE old_value IS NULL AND new_value IS NULL END", name="values"),
    )

    @property
    def old_shown(self) -> int | str | None:
        """The old value as the history shows it: a rate's number, any other field's text."""
        return self.old_value if self.field in AGREEMENT_RATES else self.old_text

    @property
    def new_shown(self) -> int | str | None:
        """The new value as the history shows it."""
        return self.new_value if self.field in AGREEMENT_RATES else self.new_text

    @property
    def username(self) -> str:
        """The name of the user who made the change (masked as every audit shows it)."""
        return self.user.masked_username


HOUSEHOLD_HISTORY_FIELDS = ("head_name", "village", "members", "consent_on", "consent_basis", "active")


class HouseholdChange(CommitOrdered, db.Model):
    """One change of a field of a household (its bank account apart: `BankAccountChange`): who, when, which field,
    old and new as text (a date in ISO form, `true`/`false`). Rows are only ever added."""

    __tablename__ = "household_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    field: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[str] = mapped_column(String(200))
    new_value: Mapped[str] = mapped_column(String(200))
    changed_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("field IN (" + ", ".join(f"'{name}'" for name in HOUSEHOLD_HISTORY_FIELDS) + ")",
                        name="field"),
    )

    @property
    def username(self) -> str:
        """The name of the user who made the change (masked as every audit shows it)."""
        return self.user.masked_username


class KeyFingerprint(db.Model):
    """The fingerprint of a key the stored data depends on (the look-up hash key), checked at serving time."""

    __tablename__ = "key_fingerprints"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
