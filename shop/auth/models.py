"""Users: credentials, role and scope (plain store/supplier ids)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import CommitOrdered, UTCDateTime, db, utcnow
from shop.fields import mask_personal_numbers

ROLES = ("consumer", "store_staff", "coop", "admin", "auditor")
# a username an admin gives (a consumer's is their phone number): no look-alike of another in a foreign script, its
# letters and digits parted by single separators (no leading, trailing or repeated one)
USERNAME_PATTERN = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$"
USERNAME_RULE = ("Only letters a-z and digits, parted by single . _ or - (none leading or trailing; no look-alikes "
                 "from other scripts).")
USER_CHANGES = ("created", "disabled", "enabled", "password_reset", "password_changed", "role_changed",
                "scope_changed", "signed_out")


class User(db.Model):
    """A person who signs in; `store_id` / `supplier_id` bind staff and co-op users to their scope."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    store_id: Mapped[int | None] = mapped_column(Integer, index=True)
    supplier_id: Mapped[int | None] = mapped_column(Integer, index=True)
    active: Mapped[bool] = mapped_column(default=True)
    token_version: Mapped[int] = mapped_column(default=0)
    # a page sign-out moves it: every browser session signed in before stops working (its cookie may have been copied)
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("role IN ('consumer', 'store_staff', 'coop', 'admin', 'auditor')", name="role"),
        CheckConstraint("(role = 'store_staff') = (store_id IS NOT NULL)", name="store_scope"),
        CheckConstraint("(role = 'coop') = (supplier_id IS NOT NULL)", name="supplier_scope"),
    )

    def acts_for_supplier(self, supplier_id: int | None) -> bool:
        """The supplier scope of every domain: a co-op user acts for its own supplier's rows only, any other role
        for every supplier's (which roles may call at all is each view's `require_role`)."""
        return self.supplier_id is None or self.supplier_id == supplier_id

    @property
    def masked_username(self) -> str:
        """The username as lists and audits show it: a personal number in it (a consumer's phone) masked."""
        return mask_personal_numbers(self.username)


class UserChange(CommitOrdered, db.Model):
    """A user was created or changed (never the password itself): which user, what, by whom (null: the command
    line), when; a role or scope change keeps the old and the new. Rows are only ever added."""

    __tablename__ = "user_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    old_role: Mapped[str | None] = mapped_column(String(16))
    new_role: Mapped[str | None] = mapped_column(String(16))
    old_store_id: Mapped[int | None] = mapped_column(Integer)
    new_store_id: Mapped[int | None] = mapped_column(Integer)
    old_supplier_id: Mapped[int | None] = mapped_column(Integer)
    new_supplier_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")
    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id], lazy="joined")

    __table_args__ = (
        CheckConstraint("action IN (" + ", ".join(f"'{action}'" for action in USER_CHANGES) + ")", name="action"),
    )

    @property
    def username(self) -> str:
        """The changed user's name, a personal number in it (a consumer's phone) masked."""
        return self.user.masked_username

    @property
    def actor_username(self) -> str | None:
        """The name of who made the change (masked likewise), or None for the command line."""
        return self.actor.masked_username if self.actor is not None else None
