"""Users: credentials, role and scope (plain store/supplier ids)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import UTCDateTime, db, utcnow

ROLES = ("consumer", "store_staff", "coop", "admin", "auditor")


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
