"""Fixtures of the contract tests: a small seeded world with a user of every role, on SQLite or PostgreSQL.

The world has two co-ops. "Own" objects belong to the first co-op (`coop`), "other" objects to the
second (`other_coop`); the "linked" household was registered by the second co-op and only linked by the
first, so the first may read it but not change it; "own_shared" is the first co-op's own benefit link
to that household, which it may end. Objects nobody owns (a location, a user, a pairing, a region) are
"own" for every caller.

It also has two stores: "own" is the store of the `store_staff` user, "other" another one. Each was
stocked by a received transfer from a hub warehouse, has an open shift, a counter sale and a transfer
still on its way. "Own" orders are the `consumer`'s at the own store (or its own delivery orders, which
only it and admins see); "other" orders are another consumer's delivery orders, or sales of the other
store ("other_store" where a route names both). Everything is made through the services, with payments
going through the sandbox's signed webhook path, so the rows are the ones production would write.
"""
from __future__ import annotations

import copy
import itertools
import re
import shutil
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from catalog import inventory
from catalog.models import InventoryUpload, Location
from orders.checkout import service as checkout
from orders.counter import service as counter
from orders.ledger import accounts, chain, remittances
from orders.ledger.models import LedgerTransaction
from orders.ledger.payouts import service as payouts
from orders.ledger.payouts.models import PayoutBatch
from orders.models import Order, Payment, StockTransfer
from orders.outbox import sale_date_of
from orders.payments import service as payments
from orders.refunds import service as refunds
from orders.stores import service as stores
from shop.db import db, utcnow
from shop.regions.models import Pairing
from suppliers.models import BenefitLink, SupplierHousehold
from tests.catalog.factories import LocationFactory, ProductFactory, linked_households, make_lot
from tests.conftest import close_checked, make_app
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.suppliers.factories import BenefitLinkFactory, HouseholdFactory, SupplierFactory, make_bank_account

ROLES = ("anonymous", "consumer", "store_staff", "coop", "admin", "auditor")
ERROR_CODES = re.compile(r"^Error codes: (.*)\.$")  # an error response's description (`error_description`)


def documented_codes(operation: dict) -> dict[int, set[str]]:
    """The error codes an operation of the OpenAPI document names, per status."""
    found = {}
    for status, response in operation.get("responses", {}).items():
        match = ERROR_CODES.match(response.get("description", "")) if status != "default" else None
        if match:
            found[int(status)] = set(re.findall(r"`(\w+)`", match.group(1)))
    return found


@dataclass
class World:
    """The seeded objects' keys and every role's Authorization headers."""

    app: object = None
    headers: dict[str, dict] = field(default_factory=dict)
    ids: dict[str, dict[str, object]] = field(default_factory=dict)
    facts: dict[str, dict[str, object]] = field(default_factory=dict)
    reset: object = None

    def of(self, role: str) -> dict:
        """The Authorization headers of `role` (none for anonymous)."""
        return dict(self.headers[role])


def _upload(supplier_id: int, tag: str) -> InventoryUpload:
    """A finished inventory upload of `supplier_id` (its file's bytes dropped, as the import drops them)."""
    upload = InventoryUpload(supplier_id=supplier_id, filename=f"{tag}.csv", content=None,
                             sha256=f"{tag:0>64}"[:64], dedupe_key=None, status="failed")
    db.session.add(upload)
    return upload


def _token(client, user) -> dict:
    """Bearer headers for `user`, obtained through the public sign-in route."""
    response = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


ADDRESS = {"district_code": "440606", "detail": "大良街道测试路 1 号", "recipient": "测试顾客", "phone": "13800000000"}
_stores = itertools.count(1)


def _store(district_code: str):
    """A store opened through the store service on a new store location in `district_code`."""
    code = f"CT-ST-{next(_stores):04d}"
    inventory.create_location(code=code, name=f"测试门店{code}", kind="store", region_code=district_code)
    return stores.create_store(name=f"测试门店{code}", district_code=district_code, location_code=code)


def _stock(admin, staff, store, *, hub: str, sku: str, received: int, on_the_way: int) -> int:
    """Send the store `received` units (received in full by `staff`) and `on_the_way` more; the second transfer's id."""
    code = db.session.get(Location, store.location_id).code
    first = stores.create_transfer(actor=admin, from_location=hub, to_location=code,
                                   lines=[{"sku": sku, "quantity": received}])
    stores.receive_transfer(actor=staff, transfer_id=first.id,
                            lines=[{"lot_id": line.lot_id, "received": line.sent} for line in first.lines])
    return stores.create_transfer(actor=admin, from_location=hub, to_location=code,
                                  lines=[{"sku": sku, "quantity": on_the_way}]).id


def _order(buyer, *, sku: str, paid: bool = True, quantity: int = 1, **where) -> Order:
    """An order of `buyer` placed through checkout, with its PaymentIntent, paid through the sandbox if `paid`."""
    order = checkout.place_order(actor=buyer, lines=[{"sku": sku, "quantity": quantity}], **where)
    db.session.commit()  # the reservation is durable before the provider is called
    payment = checkout.start_payment(order=order.order)
    db.session.commit()
    if paid:
        payments.sandbox_confirm(actor=buyer, intent_id=payment.intent_id, outcome="succeeded")
        db.session.commit()  # eager tasks apply the event once this commits
    db.session.expire_all()
    order = db.session.get(Order, order.id)
    assert order.status == ("paid" if paid else "pending_payment"), order.status
    return order


def _collected(buyer, staff, admin, *, sku: str, store=None, hub_id: int) -> Order:
    """A paid order of `buyer` that reached its customer: picked up at `store`, or shipped and delivered."""
    if store is not None:
        order = _order(buyer, sku=sku, channel="pickup", store_id=store.id)
        counter.hand_over(actor=staff, store_id=store.id, pickup_code=order.pickup_code)
    else:
        order = _order(buyer, sku=sku, channel="delivery", warehouse_id=hub_id, address=dict(ADDRESS))
        checkout.ship_order(actor=admin, order_id=order.id, carrier="顺丰", tracking_number="SF0000000001")
        checkout.deliver_order(actor=admin, order_id=order.id)
    db.session.commit()
    return order


def _sale(clerk, store, shift, *, sku: str, quantity: int = 3) -> Order:
    """A cash sale at the counter of `store` in `shift`."""
    sale = counter.sell(actor=clerk, store_id=store.id, shift_id=shift.id, lines=[{"sku": sku, "quantity": quantity}],
                        payment={"method": "cash", "tendered_fen": 10_000})
    db.session.commit()
    return db.session.get(Order, sale.id)


def _ask_after_sales(buyer, order: Order):
    """An open after-sales request of `buyer` for one unit of `order`."""
    request = refunds.request_after_sales(actor=buyer, order_id=order.id, reason="包装破损",
                                          lines=[refunds.RefundRequest(line_id=order.lines[0].id, quantity=1)],
                                          photo_url=None)
    db.session.commit()
    return request


def _refunded(admin, order: Order) -> int:
    """The id of an admin's refund of one unit of `order`, settled at the payment provider."""
    refund = refunds.create_refund(actor=admin, order_id=order.id, reason="顾客退货",
                                   lines=[refunds.RefundRequest(line_id=order.lines[0].id, quantity=1,
                                                                resellable=True)])
    db.session.commit()
    refunds.settle_refund(refund_id=refund.id)
    db.session.commit()
    return refund.id


def _seed_orders(world: World, client, users: dict, *, sku: str, hub, own_store, other_store) -> None:
    """The stores' world: stores, stock, shifts, orders of every channel and state, a refund, after-sales
    requests, a refund, an adjustment and a sale conflict at each store (see the module docstring)."""
    admin, staff = users["admin"], users["store_staff"]
    consumer, other_consumer = users["consumer"], users["other_consumer"]
    transfers = {kind: _stock(admin, staff if kind == "own" else UserFactory(role="store_staff", store_id=store.id),
                              store, hub=hub.code, sku=sku, received=20, on_the_way=2)
                 for kind, store in (("own", own_store), ("other", other_store))}
    shifts = {"own": stores.start_shift(actor=staff, store_id=own_store.id, float_fen=20000),
              "other": stores.start_shift(actor=admin, store_id=other_store.id, float_fen=20000)}
    db.session.commit()
    delivery = {"channel": "delivery", "warehouse_id": hub.id, "address": dict(ADDRESS)}
    waiting = _order(consumer, sku=sku, channel="pickup", store_id=own_store.id)
    others = _order(other_consumer, sku=sku, **delivery)
    own_delivery = _order(consumer, sku=sku, **delivery)
    pending = {"own": _order(consumer, sku=sku, paid=False, channel="pickup", store_id=own_store.id),
               "other": _order(other_consumer, sku=sku, paid=False, **delivery)}
    collected = {"own": _collected(consumer, staff, admin, sku=sku, store=own_store, hub_id=hub.id),
                 "other": _collected(other_consumer, staff, admin, sku=sku, hub_id=hub.id)}
    asked = {"own": _collected(consumer, staff, admin, sku=sku, store=own_store, hub_id=hub.id),
             "other": collected["other"]}
    requests = {kind: _ask_after_sales(buyer, asked[kind]).id
                for kind, buyer in (("own", consumer), ("other", other_consumer))}
    sales = {"own": _sale(staff, own_store, shifts["own"], sku=sku),
             "other": _sale(admin, other_store, shifts["other"], sku=sku)}
    sold = sales["own"].lines[0]
    refunds.create_refund(actor=staff, order_id=sales["own"].id, reason="顾客退货",
                          lines=[refunds.RefundRequest(line_id=sold.id, quantity=1, resellable=True)])
    adjustments = {kind: stores.adjust_stock(actor=admin, location_id=store.location_id, delta=-1, reason="damaged",
                                             lot_id=sales[kind].lines[0].allocations[0].lot_id).id
                   for kind, store in (("own", own_store), ("other", other_store))}
    refunded = {kind: _refunded(admin, _collected(buyer, staff, admin, sku=sku, store=store, hub_id=hub.id))
                for kind, buyer, store in (("own", consumer, own_store), ("other", other_consumer, None))}
    db.session.commit()
    offline = {"lines": [{"sku": sku, "quantity": 1, "unit_price_fen": 1}], "shift_id": shifts["own"].id,
               "payment": {"method": "card"}, "client_created_at": (utcnow() - timedelta(days=5)).isoformat()}
    conflicts = {}
    for kind, store, role in (("own", own_store, "store_staff"), ("other", other_store, "admin")):
        response = client.post(f"/api/v1/stores/{store.id}/counter-sales", headers=world.of(role),
                               json={**offline, "shift_id": shifts[kind].id})
        assert response.status_code == 409, response.get_json()  # too old: kept as a sale conflict
        conflicts[kind] = {"store_id": store.id, "conflict_id": response.get_json()["error"]["details"]["conflict_id"]}
    world.ids.update({
        "store_id": {"own": own_store.id, "other": other_store.id},
        "store_location_id": {"own": own_store.location_id, "other": other_store.location_id},
        "shift_id": {kind: shift.id for kind, shift in shifts.items()},
        "transfer_id": transfers,
        "order_id": {"own": waiting.id, "other": others.id, "other_store": sales["other"].id},
        "pending_order_id": {kind: order.id for kind, order in pending.items()},
        "payment_intent_id": {kind: db.session.scalar(select(Payment.intent_id).where(Payment.order_id == order.id))
                              for kind, order in pending.items()},
        "delivery_order_id": {"own": own_delivery.id, "other": others.id},
        "collected_order_id": {kind: order.id for kind, order in collected.items()},
        "request_id": requests,
        "refund_id": refunded,
        "adjustment_id": adjustments,
        "sale_order_id": {kind: order.id for kind, order in sales.items()},
        "sale_conflict": conflicts,  # a route naming two objects: each parameter's id
        "conflict_id": {kind: ids["conflict_id"] for kind, ids in conflicts.items()},
    })
    world.facts.update({
        "pickup_code": {"own": waiting.pickup_code, "other": waiting.pickup_code},
        "collected_line_id": {kind: order.lines[0].id for kind, order in collected.items()},
        "sale_line_id": {kind: order.lines[0].id for kind, order in sales.items()},
        "transfer_lines": {kind: [{"lot_id": line.lot_id, "received": line.sent}
                                  for line in db.session.get(StockTransfer, transfer_id).lines]
                           for kind, transfer_id in transfers.items()},
    })


def _seed_payouts(world: World, admin, suppliers: dict) -> None:
    """A household payout batch of each co-op ("own", "other"), built by its task, with one pending line: a payee
    household of that co-op with a bank account and a balance there."""
    batches, lines = {}, {}
    for kind, supplier in suppliers.items():
        payee = HouseholdFactory(supplier=supplier, bank_account=make_bank_account())
        chain.post(kind="line_paid", postings=[(accounts.payments("sandbox"), -500, "payment"),
                                               (accounts.household(payee.id, supplier.id), 500, "premium")])
        batch_id = payouts.request_batch(actor=admin, party="household", supplier_id=supplier.id,
                                         until=sale_date_of(utcnow()) + timedelta(days=1)).id
        db.session.commit()  # the embedded default builds it eagerly
        batches[kind], lines[kind] = batch_id, db.session.get(PayoutBatch, batch_id).lines[0].id
    world.ids["batch_id"] = batches
    world.facts["payout_line_id"] = lines


def _seed_remittances(world: World, admin) -> None:
    """A remittance of each store ("own", "other") out of counter cash it holds."""
    found = {}
    for kind, store_id in world.ids["store_id"].items():
        chain.post(kind="line_paid", postings=[(accounts.store_cash(store_id), -500, "payment"),
                                               (accounts.platform(), 500, "platform_fee")])
        remittance = remittances.record_remittance(store_id=store_id, actor=admin, amount_fen=200,
                                                   received_on=sale_date_of(utcnow()), reference=f"DEP-{kind}")
        found[kind] = {"store_id": store_id, "remittance_id": remittance.id}
    db.session.commit()
    world.ids["remittance"] = found  # a route naming two objects: each parameter's id


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
    location, hub = LocationFactory(), LocationFactory()
    own_lot, other_lot = make_lot(own_product, location), make_lot(other_product, location)
    make_lot(own_product, hub, quantity=100)
    own_upload, other_upload = _upload(own.id, "own"), _upload(other.id, "other")
    admin = UserFactory(role="admin")
    world = World(app=app)
    own_store, other_store = _store("440606"), _store("440604")
    users = {"consumer": UserFactory(role="consumer"), "other_consumer": UserFactory(role="consumer"),
             "store_staff": UserFactory(role="store_staff", store_id=own_store.id),
             "coop": UserFactory(role="coop", supplier_id=own.id),
             "other_coop": UserFactory(role="coop", supplier_id=other.id),
             "admin": admin, "auditor": UserFactory(role="auditor")}
    db.session.flush()
    own_link_id = db.session.scalar(select(BenefitLink.id).where(BenefitLink.household_id == own_households[0].id))
    pairing_id = db.session.scalar(
        select(Pairing.id).where(Pairing.valid_until.is_(None)).order_by(Pairing.id).limit(1))
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
    _seed_orders(world, client, users, sku=own_product.sku, hub=hub, own_store=own_store, other_store=other_store)
    db.session.commit()
    _seed_payouts(world, admin, {"own": own, "other": other})
    _seed_remittances(world, admin)
    world.ids["ledger_transaction_id"] = {"own": db.session.scalar(select(func.min(LedgerTransaction.id)))}
    world.ids["verification_id"] = {"own": client.post("/api/v1/ledger/verifications",
                                                       headers=world.headers["auditor"]).json["id"]}
    return world


@pytest.fixture(scope="session")
def _world_template(sqlite_template, tmp_path_factory) -> tuple[Path, World]:
    """The world seeded once on a copy of the migrated SQLite file: that file, and the world's keys and
    headers (tokens are signed, so they hold for every copy of the file)."""
    folder = tmp_path_factory.mktemp("world")
    shutil.copy(sqlite_template, folder / "shop.db")
    app = make_app(folder)
    with app.app_context():
        seeded = seed_world(app)
        db.session.remove()
        db.engine.dispose()
    return folder / "shop.db", World(headers=seeded.headers, ids=seeded.ids, facts=seeded.facts)


@pytest.fixture
def world(_world_template, tmp_path, request) -> World:
    """The seeded world on the embedded SQLite app: a fresh copy of the world seeded once per session;
    `world.reset()` puts the untouched copy back (the same keys and headers hold)."""
    seeded_file, seeded = _world_template

    def reset() -> None:
        """Drop every connection and copy the seeded file over the changed one."""
        db.session.remove()
        db.engine.dispose()
        shutil.copy(seeded_file, tmp_path / "shop.db")

    shutil.copy(seeded_file, tmp_path / "shop.db")
    app = make_app(tmp_path)
    with app.app_context():
        yield World(app=app, headers=seeded.headers, ids=copy.deepcopy(seeded.ids),
                    facts=copy.deepcopy(seeded.facts), reset=reset)
        close_checked(request)


@pytest.fixture
def pg_world(pg_app) -> World:
    """The seeded world on PostgreSQL."""
    return seed_world(pg_app)
