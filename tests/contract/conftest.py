"""Fixtures of the contract tests: a small seeded world with a user of every role, on SQLite or PostgreSQL.

The world has two co-ops. "Own" objects belong to the first co-op (`coop`), "other" objects to the
second (`other_coop`); the "linked" household was registered by the second co-op and only linked by the
first, so the first may read it but not change it; "own_shared" is the first co-op's own benefit link
to that household, which it may end. Objects nobody owns (a location, a user, a pairing, a region) are
"own" for every caller.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pytest
from sqlalchemy import select

from catalog.models import InventoryUpload
from shop.db import db
from shop.regions.models import Pairing
from suppliers.models import BenefitLink, SupplierHousehold
from tests.catalog.factories import LocationFactory, ProductFactory, linked_households, make_lot
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.suppliers.factories import BenefitLinkFactory, HouseholdFactory, SupplierFactory

ROLES = ("anonymous", "consumer", "store_staff", "coop", "admin", "auditor")


@dataclass
class World:
    """The seeded objects' keys and every role's Authorization headers."""

    app: object = None
    headers: dict[str, dict] = field(default_factory=dict)
    ids: dict[str, dict[str, object]] = field(default_factory=dict)

    def of(self, role: str) -> dict:
        """The Authorization headers of `role` (none for anonymous)."""
        return dict(self.headers[role])


def _upload(supplier_id: int, tag: str) -> InventoryUpload:
    """A finished inventory upload of `supplier_id`."""
    data = f"sku,lot_code\n{tag},1\n".encode()
    upload = InventoryUpload(supplier_id=supplier_id, filename=f"{tag}.csv", content=data,
                             sha256=f"{tag:0>64}"[:64], dedupe_key=None, status="failed")
    db.session.add(upload)
    return upload


def _token(client, user) -> dict:
    """Bearer headers for `user`, obtained through the public sign-in route."""
    response = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


def seed_world(app) -> World:
    """Seed the world inside `app`'s context (already entered) and sign every role in."""
    own, other = SupplierFactory(), SupplierFactory(county_code="513437")
    own_households = linked_households(own, 3)
    other_household = HouseholdFactory(supplier=other)
    linked_household = HouseholdFactory(supplier=other)
    shared_link = BenefitLinkFactory(household=linked_household, supplier_id=own.id, valid_from=date(2026, 1, 1))
    db.session.add(SupplierHousehold(supplier_id=own.id, household_id=linked_household.id))
    other_link = BenefitLinkFactory(household=other_household, supplier_id=other.id)
    own_product, other_product = ProductFactory(supplier=own), ProductFactory(supplier=other)
    location = LocationFactory()
    own_lot, other_lot = make_lot(own_product, location), make_lot(other_product, location)
    own_upload, other_upload = _upload(own.id, "own"), _upload(other.id, "other")
    users = {"consumer": UserFactory(role="consumer"), "store_staff": UserFactory(role="store_staff", store_id=1),
             "coop": UserFactory(role="coop", supplier_id=own.id),
             "other_coop": UserFactory(role="coop", supplier_id=other.id),
             "admin": UserFactory(role="admin"), "auditor": UserFactory(role="auditor")}
    db.session.flush()
    own_link_id = db.session.scalar(select(BenefitLink.id).where(BenefitLink.household_id == own_households[0].id))
    pairing_id = db.session.scalar(
        select(Pairing.id).where(Pairing.valid_until.is_(None)).order_by(Pairing.id).limit(1))
    world = World(app=app)
    world.ids = {
        "supplier_id": {"own": own.id, "other": other.id},
        "household_id": {"own": own_households[0].id, "linked": linked_household.id, "other": other_household.id},
        "household_code": {"own": own_households[0].code, "other": other_household.code},
        "link_id": {"own": own_link_id, "own_shared": shared_link.id, "other": other_link.id},
        "sku": {"own": own_product.sku, "other": other_product.sku},
        "lot_id": {"own": own_lot.id, "other": other_lot.id},
        "trace_code": {"own": own_lot.trace_code, "other": other_lot.trace_code},
        "upload_id": {"own": own_upload.id, "other": other_upload.id},
        "location_id": {"own": location.id},
        "user_id": {"own": users["consumer"].id},
        "pairing_id": {"own": pairing_id},
        "region_code": {"own": "513431"},
    }
    db.session.commit()
    client = app.test_client()
    world.headers = {role: _token(client, user) for role, user in users.items()}
    world.headers["anonymous"] = {}
    return world


@pytest.fixture
def world(app) -> World:
    """The seeded world on the embedded SQLite app."""
    return seed_world(app)


@pytest.fixture
def pg_world(pg_app) -> World:
    """The seeded world on PostgreSQL."""
    return seed_world(pg_app)
