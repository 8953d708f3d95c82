"""An auditor's recompute: many random orders bought online (paid through the sandbox) or at the counter (cash or card,
some scanning a lot) and refunded (by units, resellable or not, and by amount at the provider) through the real
services; every party's balance is then recomputed from DESIGN.md's words alone - FIFO lots (a scanned one first),
the split of each allocation, largest remainder, refunds off the last allocations, the remainder to the platform -
and must match the ledger to the fen, as the pairing report's rows must."""
from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction

import pytest
from sqlalchemy import func, select

from catalog.models import Location, LotContribution
from catalog.models import Lot as CatalogLot
from orders import outbox
from orders.ledger.models import LedgerAccount, LedgerTransaction, Posting
from orders.ledger.verify import verify_ledger
from orders.models import OrderLine, Payment
from orders.refunds import service as refunds
from shop.clock import SHANGHAI, shanghai_midnight
from shop.db import db, utcnow
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.orders.counter.conftest import clerk
from tests.orders.factories import ShiftFactory, StoreFactory
from tests.orders.payments.conftest import ADDRESS, user_with_token
from tests.suppliers.factories import BenefitLinkFactory, HouseholdFactory, SupplierFactory

ORDERS = 50


@dataclass
class Lot:
    """A lot as the auditor knows it: its product, location, harvest date, units on the shelf, and households."""

    id: int
    product: int
    location: int
    harvested_on: date
    on_shelf: int
    contributions: dict[int, int]


@dataclass
class Line:
    """An order line as the auditor knows it: price, rates, who it pays, and its allocations [lot, units left]."""

    id: int
    order: int
    price: int
    rates: tuple[int, int, int, int]
    supplier: int
    store: int | None
    donor: str
    county: str
    allocations: list[list[int]] = field(default_factory=list)

    def still_sold(self) -> int:
        """Units of the line not refunded."""
        return sum(left for _, left in self.allocations)


def shares_of(pool: int, weights: dict[int, int], key: dict[int, tuple[str, str]]) -> dict[int, int]:
    """DESIGN.md's largest remainder: floors of the exact shares, the rest one fen each to the largest fractions,
    ties by (county code, registry code)."""
    total = sum(weights.values())
    exact = {hid: Fraction(pool * w, total) for hid, w in weights.items()}
    got = {hid: int(share) for hid, share in exact.items()}
    order = sorted(exact, key=lambda hid: (-(exact[hid] - got[hid]), key[hid]))
    for hid in order[:pool - sum(got.values())]:
        got[hid] += 1
    return got


class Auditor:
    """The world as the auditor sees it and its own account of who should hold what."""

    def __init__(self, rng: random.Random, today: date):
        self.rng, self.today = rng, today
        self.lots: dict[int, Lot] = {}
        self.key: dict[int, tuple[str, str]] = {}
        self.dividends: dict[int, dict[int, int]] = {}  # supplier -> household -> shares valid today
        self.lines: dict[int, Line] = {}
        self.remainders = 0
        self.remainder_orders: set[int] = set()
        self.counter_sales: set[int] = set()

    def take(self, product: int, location: int, quantity: int, scanned: int | None = None) -> list[list[int]]:
        """FIFO by (harvest date, lot id) at the location, as reserved; a lot scanned at the counter first."""
        taken = []
        for lot in sorted((lot for lot in self.lots.values() if lot.product == product and lot.location == location),
                          key=lambda lot: (lot.id != scanned, lot.harvested_on, lot.id)):
            k = min(lot.on_shelf, quantity)
            if k:
                lot.on_shelf -= k
                quantity -= k
                taken.append([lot.id, k])
        assert quantity == 0
        return taken

    def refund(self, line: Line, quantity: int, resellable: bool) -> None:
        """Units off the line's allocations from the last; back on the shelf if resellable."""
        for allocation in reversed(line.allocations):
            k = min(allocation[1], quantity)
            allocation[1] -= k
            quantity -= k
            if resellable:
                self.lots[allocation[0]].on_shelf += k

    def expected(self, lines: list[Line] | None = None) -> Counter:
        """Every party's balance by DESIGN.md (of `lines`, default all): the split of what each allocation still
        has sold."""
        books: Counter = Counter()
        for line in self.lines.values() if lines is None else lines:
            fee_bp, store_bp, premium_bp, dividend_bp = line.rates
            for lot_id, left in line.allocations:
                amount = left * line.price
                fee, premium, dividend = (amount * fee_bp // 10000, amount * premium_bp // 10000,
                                          amount * dividend_bp // 10000)
                store = amount * store_bp // 10000 if line.store else 0
                supplier = amount - fee - store - premium - dividend
                books["platform"] += fee
                if line.store:
                    books[f"store:{line.store}"] += store
                for pool, weights in ((premium, self.lots[lot_id].contributions),
                                      (dividend, self.dividends.get(line.supplier, {}))):
                    if weights:
                        for hid, fen in shares_of(pool, weights, self.key).items():
                            books[f"household:{hid}@supplier:{line.supplier}"] += fen
                    else:
                        supplier += pool
                books[f"supplier:{line.supplier}"] += supplier
        if lines is None:
            books["platform"] -= self.remainders
        return +books

    def report_rows(self) -> dict[tuple[str, str], dict]:
        """The pairing report's figures per (donor, county) by DESIGN.md: orders still with sold units, units and
        sales net of refunds, households with a non-zero attribution and what they were attributed."""
        rows = {}
        for key in {(line.donor, line.county) for line in self.lines.values()}:
            lines = [line for line in self.lines.values() if (line.donor, line.county) == key]
            households = {code: fen for code, fen in self.expected(lines).items() if code.startswith("household:")}
            reached = {code.split(":")[1].split("@")[0] for code in households}
            row = {"orders": len({line.order for line in lines if line.still_sold()}),
                   "units": sum(line.still_sold() for line in lines),
                   "sales_fen": sum(line.still_sold() * line.price for line in lines),
                   "households_reached": len(reached), "attributed_fen": sum(households.values())}
            if row["units"] or row["attributed_fen"]:
                rows[key] = row
        return rows


def build_world(auditor: Auditor) -> dict:
    """Two co-ops with households in two counties, dividend links (valid, expired, future, two of one household),
    four products with odd prices and rates, each in several lots at a warehouse and a store (some lots with no
    households); the store's open shift and a clerk. Committed."""
    rng, today = auditor.rng, auditor.today
    warehouse, store = LocationFactory(), StoreFactory()
    store_location = db.session.get(Location, store.location_id)
    products = []
    for _ in range(2):
        supplier = SupplierFactory()
        households = [HouseholdFactory(supplier=supplier, county_code=rng.choice(["513431", "513432"]),
                                       code=f"A{rng.randrange(10**6):06d}") for _ in range(6)]
        for household in households:
            auditor.key[household.id] = (household.county_code, household.code)
        valid = auditor.dividends.setdefault(supplier.id, {})
        for household, valid_from, valid_until in (
                (households[0], date(2026, 1, 1), None), (households[1], today, today),
                (households[1], date(2026, 1, 1), None), (households[2], today + timedelta(days=1), None),
                (households[3], date(2026, 1, 1), today - timedelta(days=1)), (households[4], date(2026, 1, 1), today)):
            shares = rng.randint(1, 7)
            BenefitLinkFactory(household=household, supplier_id=supplier.id, kind="dividend", shares=shares,
                               valid_from=valid_from, valid_until=valid_until)
            if valid_from <= today and (valid_until is None or today <= valid_until):
                valid[household.id] = valid.get(household.id, 0) + shares
        for _ in range(2):
            fee, commission, premium = rng.randint(0, 900), rng.randint(0, 1100), rng.randint(0, 1700)
            product = ProductFactory(supplier=supplier, price_fen=rng.choice([1, 7, 99, 1001, 1237, 4999, 12345]),
                                     platform_fee_bp=fee, store_commission_bp=commission, household_premium_bp=premium,
                                     dividend_bp=rng.choice([0, rng.randint(1, 900)]))
            products.append(product)
            for location in (warehouse, store_location):
                for n in range(3):
                    lot = make_lot(product, location, quantity=40, harvested_on=date(2026, 9, 1 + rng.randint(0, 3)))
                    contributors = rng.sample(households, rng.choice([0, 1, 2, 3, 5])) if n else households[:3]
                    contributions = {h.id: rng.randint(1, 13) for h in contributors}
                    for hid, quantity in contributions.items():
                        db.session.add(LotContribution(lot_id=lot.id, household_id=hid, quantity=quantity,
                                                       village="测试村"))
                    auditor.lots[lot.id] = Lot(lot.id, product.id, location.id, lot.harvested_on, 40, contributions)
    db.session.commit()
    return {"warehouse": warehouse, "store": store, "products": products, "shift": ShiftFactory(store=store),
            "clerk": clerk(store)}


def buy(client, auditor: Auditor, world: dict, headers: dict) -> int:
    """A random order (1-4 lines; delivery or pickup) placed and paid through the sandbox; the order id."""
    rng = auditor.rng
    pickup = rng.random() < 0.5
    chosen = rng.sample(world["products"], rng.randint(1, 4))
    lines = [(product, rng.randint(1, 5)) for product in chosen]
    body = {"lines": [{"sku": product.sku, "quantity": qty} for product, qty in lines]}
    body.update({"channel": "pickup", "store_id": world["store"].id} if pickup else
                {"channel": "delivery", "warehouse_id": world["warehouse"].id, "address": dict(ADDRESS)})
    placed = client.post("/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": f"o{rng.random()}"})
    assert placed.status_code == 201, placed.json
    order_id = placed.json["id"]
    intent = db.session.scalar(select(Payment.intent_id).where(Payment.order_id == order_id))
    paid = client.post(f"/api/v1/payments/sandbox/{intent}/confirm", json={"outcome": "succeeded"}, headers=headers)
    assert paid.status_code == 200, paid.json
    location = world["store"].location_id if pickup else world["warehouse"].id
    rows = db.session.scalars(select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.id)).all()
    for row, (product, qty) in zip(rows, lines, strict=True):
        line = Line(row.id, order_id, product.price_fen, (product.platform_fee_bp, product.store_commission_bp,
                                                product.household_premium_bp, product.dividend_bp),
                    product.supplier_id, world["store"].id if pickup else None,
                    world["store"].district_code if pickup else ADDRESS["district_code"], product.county_code)
        line.allocations = auditor.take(product.id, location, qty)
        auditor.lines[row.id] = line
    return order_id


def sell_at_counter(client, auditor: Auditor, world: dict) -> int:
    """A random counter sale (cash or card; some lines scanning a lot's trace code); the order id."""
    rng, store = auditor.rng, world["store"]
    lines, body_lines = [], []
    for product in rng.sample(world["products"], rng.randint(1, 3)):
        quantity = rng.randint(1, 4)
        on_shelf = [lot for lot in auditor.lots.values()
                    if lot.product == product.id and lot.location == store.location_id and lot.on_shelf]
        scanned = rng.choice(on_shelf + [None])
        body_lines.append({"trace_code": db.session.get(CatalogLot, scanned.id).trace_code, "quantity": quantity}
                          if scanned else {"sku": product.sku, "quantity": quantity})
        lines.append((product, quantity, scanned.id if scanned else None))
    total = sum(product.price_fen * quantity for product, quantity, _ in lines)
    payment = rng.choice([{"method": "card"}, {"method": "cash", "tendered_fen": total + rng.randint(0, 9999)}])
    sold = client.post(f"/api/v1/stores/{store.id}/counter-sales", json={
        "lines": body_lines, "payment": payment, "shift_id": world["shift"].id},
        headers={**world["clerk"], "Idempotency-Key": f"c{rng.random()}"})
    assert sold.status_code == 201, sold.json
    order_id = sold.json["id"]
    rows = db.session.scalars(select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.id)).all()
    for row, (product, quantity, scanned) in zip(rows, lines, strict=True):
        line = Line(row.id, order_id, product.price_fen, (product.platform_fee_bp, product.store_commission_bp,
                                                          product.household_premium_bp, product.dividend_bp),
                    product.supplier_id, store.id, store.district_code, product.county_code)
        line.allocations = auditor.take(product.id, store.location_id, quantity, scanned)
        auditor.lines[row.id] = line
    auditor.counter_sales.add(order_id)
    return order_id


def refund_units(client, admin: dict, auditor: Auditor, order_id: int) -> None:
    """Refund random units of random lines of the order (resellable or not) through the API."""
    rng = auditor.rng
    lines = [line for line in auditor.lines.values() if line.still_sold() and line.order == order_id]
    wanted = [(line, rng.randint(1, line.still_sold()), rng.random() < 0.5)
              for line in rng.sample(lines, rng.randint(1, len(lines)))]
    body = {"lines": [{"line_id": line.id, "quantity": q, "resellable": r} for line, q, r in wanted],
            "reason": "顾客退货"}
    response = client.post(f"/api/v1/orders/{order_id}/refunds", json=body,
                           headers={**admin, "Idempotency-Key": f"r{rng.random()}"})
    assert response.status_code == 201, response.json
    for line, quantity, resellable in wanted:
        auditor.refund(line, quantity, resellable)


def refund_amount(auditor: Auditor, order_id: int) -> None:
    """A dashboard refund of a random amount: whole units walking the lines from the last, the rest the platform's."""
    order_lines = sorted((line for line in auditor.lines.values() if line.order == order_id), key=lambda line: line.id)
    sold = sum(line.still_sold() * line.price for line in order_lines)
    amount = auditor.rng.randint(1, sold)
    refunds.record_provider_refund(order_id=order_id, provider_refund_id=f"re_dash_{auditor.rng.random()}",
                                   amount_fen=amount, occurred_at=utcnow())
    db.session.commit()
    left = amount
    for line in reversed(order_lines):
        units = min(line.still_sold(), left // line.price)
        auditor.refund(line, units, False)
        left -= units * line.price
    auditor.remainders += left
    if left:
        auditor.remainder_orders.add(order_id)


def balances() -> Counter:
    """Account code → balance, as the ledger holds it."""
    rows = db.session.execute(select(LedgerAccount.code, func.sum(Posting.amount_fen))
                              .join(Posting, Posting.account_id == LedgerAccount.id).group_by(LedgerAccount.code))
    return Counter({code: int(total) for code, total in rows if total})


def wait_past_shanghai_midnight_if_near() -> None:
    """The whole run must fall on one sale date (the dividend links above are valid on "today" only): a run starting
    within three minutes of midnight in Asia/Shanghai first waits for it to pass."""
    now = datetime.now(SHANGHAI)
    left = (shanghai_midnight(now.date() + timedelta(days=1)) - now).total_seconds()
    if left < 180:
        time.sleep(left + 1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def books_app(request):
    """The app on SQLite and on PostgreSQL: the books must come out the same on both."""
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


def test_an_auditors_recompute_of_random_orders_and_refunds_matches_the_ledger_to_the_fen(books_app):
    client = books_app.test_client()
    wait_past_shanghai_midnight_if_near()
    today = outbox.sale_date_of(utcnow())
    auditor = Auditor(random.Random(20261129), today)
    world = build_world(auditor)
    _, admin = user_with_token("admin")
    _, consumer = user_with_token()
    db.session.commit()
    orders: list[int] = []
    for _ in range(ORDERS):  # refunds between purchases, so resold units come back into FIFO
        counter = auditor.rng.random() < 0.3
        orders.append(sell_at_counter(client, auditor, world) if counter else buy(client, auditor, world, consumer))
        sold = [order_id for order_id in orders
                if any(line.still_sold() for line in auditor.lines.values() if line.order == order_id)]
        roll = auditor.rng.random()
        whole = [order_id for order_id in sold if order_id not in auditor.remainder_orders]
        if roll < 0.4 and whole:  # an order a remainder was refunded from has less money left than its units' value
            refund_units(client, admin, auditor, auditor.rng.choice(whole))
        elif roll < 0.6 and (online := [order_id for order_id in sold if order_id not in auditor.counter_sales]):
            refund_amount(auditor, auditor.rng.choice(online))
    outbox.deliver_pending()
    db.session.commit()

    held = balances()
    parties = Counter({code: fen for code, fen in held.items() if not code.startswith(("payments:", "store_cash:"))})
    assert auditor.remainders and parties == auditor.expected()
    assert sum(held.values()) == 0
    unbalanced = db.session.execute(select(Posting.transaction_id).group_by(Posting.transaction_id)
                                    .having(func.sum(Posting.amount_fen) != 0)).all()
    assert unbalanced == [] and db.session.scalar(select(func.count()).select_from(LedgerTransaction)) > ORDERS
    assert verify_ledger()["ok"] is True
    report = client.get(f"/api/v1/reports/pairings?from={today}&to={today + timedelta(days=1)}", headers=admin)
    assert report.status_code == 200, report.json
    assert {(row["donor_code"], row["county_code"]): {name: row[name] for name in (
        "orders", "units", "sales_fen", "households_reached", "attributed_fen")} for row in report.json["rows"]} \
        == auditor.report_rows()
