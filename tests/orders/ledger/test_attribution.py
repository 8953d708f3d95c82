"""Attribution end to end: outbox events become ledger postings exactly as DESIGN.md's rules give them
(figures below computed by hand), once per event, and the lot's attributed total follows."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from catalog.models import Location, Lot, LotContribution
from orders import outbox
from orders.ledger.attribution import apply_events
from orders.ledger.models import LedgerAccount, LedgerTransaction, Posting
from orders.ledger.verify import verify_ledger
from orders.models import OrderLine, OutboxEvent, Payment
from shop.db import db, utcnow
from suppliers.models import BenefitLink
from tests.catalog.factories import ProductFactory, make_lot
from tests.catalog.test_concurrency import race
from tests.orders.factories import ShiftFactory, StoreFactory, flushed
from tests.orders.payments.conftest import user_with_token
from tests.orders.refunds.conftest import paid_order
from tests.parallel import second_while_first_uncommitted
from tests.suppliers.factories import BenefitLinkFactory, HouseholdFactory, SupplierFactory


def balances() -> dict[str, int]:
    """Account code → balance (sum of its postings), accounts with postings only."""
    rows = db.session.execute(select(LedgerAccount.code, func.sum(Posting.amount_fen))
                              .join(Posting, Posting.account_id == LedgerAccount.id).group_by(LedgerAccount.code))
    return {code: int(total) for code, total in rows if total}


def by_account(transaction: LedgerTransaction) -> Counter:
    """A transaction's postings summed per account code."""
    db.session.expire_all()
    rows = db.session.execute(select(LedgerAccount.code, Posting.amount_fen)
                              .join(Posting, Posting.account_id == LedgerAccount.id)
                              .where(Posting.transaction_id == transaction.id))
    total: Counter = Counter()
    for code, amount in rows:
        total[code] += amount
    return total


def make_world(*, today: date, prefix: str = "") -> dict:
    """A 昭觉 co-op's product (¥12.50; fee 5%, store 8%, premium 10%, dividend 3%) at a store: lot 1 (2 units,
    three households 1:1:1) harvested before lot 2 (5 units, no households); dividend holders h4 (2 shares,
    valid), h5 (expired yesterday), h6 (1 share, valid from today); registry codes start with `prefix`. Committed."""
    supplier = SupplierFactory()
    store = StoreFactory()
    product = ProductFactory(supplier=supplier, price_fen=1250, platform_fee_bp=500, store_commission_bp=800,
                             household_premium_bp=1000, dividend_bp=300)
    location = db.session.get(Location, store.location_id)
    lot1 = make_lot(product, location, quantity=2, harvested_on=date(2026, 9, 1))
    lot2 = make_lot(product, location, quantity=5, harvested_on=date(2026, 9, 2))
    # ties of the premium go by (county, registry code): h3 (513431, K2), then h1 (513431, K3), then h2 (513432, K1)
    h1 = HouseholdFactory(supplier=supplier, code=f"{prefix}K3", county_code="513431")
    h2 = HouseholdFactory(supplier=supplier, code=f"{prefix}K1", county_code="513432")
    h3 = HouseholdFactory(supplier=supplier, code=f"{prefix}K2", county_code="513431")
    for household in (h1, h2, h3):
        db.session.add(LotContribution(lot_id=lot1.id, household_id=household.id, quantity=1, village="测试村"))
    h4, h5, h6 = (HouseholdFactory(supplier=supplier) for _ in range(3))
    BenefitLinkFactory(household=h4, supplier_id=supplier.id, kind="dividend", shares=2, valid_from=date(2026, 1, 1))
    BenefitLinkFactory(household=h5, supplier_id=supplier.id, kind="dividend", shares=5, valid_from=date(2026, 1, 1),
                       valid_until=today - timedelta(days=1))
    BenefitLinkFactory(household=h6, supplier_id=supplier.id, kind="dividend", shares=1, valid_from=today)
    db.session.commit()
    return {"supplier": supplier, "store": store, "product": product, "lot1": lot1, "lot2": lot2,
            "h": {1: h1, 2: h2, 3: h3, 4: h4, 5: h5, 6: h6}}


def _apply(event_id: int) -> int | None:
    """Post one outbox event's ledger transaction as the outbox's delivery does; its id, None if already posted."""
    return apply_events([db.session.get(OutboxEvent, event_id)]).get(event_id)


def household(world, n: int) -> str:
    """The account of household `n` at the world's supplier."""
    return f"household:{world['h'][n].id}@supplier:{world['supplier'].id}"


def place_pickup(client, world, quantity: int) -> tuple[Payment, dict]:
    """A new consumer's unpaid pickup order of `quantity` units of the world's product: its payment row and the
    consumer's headers."""
    _, headers = user_with_token()
    db.session.commit()
    body = {"channel": "pickup", "store_id": world["store"].id,
            "lines": [{"sku": world["product"].sku, "quantity": quantity}]}
    response = client.post("/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": "pickup-1"})
    assert response.status_code == 201, response.json
    return db.session.scalar(select(Payment).where(Payment.order_id == response.json["id"])), headers


def pay_pickup(client, world, quantity: int) -> int:
    """A consumer's pickup order of `quantity` units, paid through the sandbox; the order id."""
    payment, headers = place_pickup(client, world, quantity)
    order_id = payment.order_id
    confirmed = client.post(f"/api/v1/payments/sandbox/{payment.intent_id}/confirm", json={"outcome": "succeeded"},
                            headers=headers)
    assert confirmed.status_code == 200, confirmed.json
    return order_id


def test_a_paid_pickup_order_is_attributed_as_the_rules_say_and_the_ledger_verifies(client):
    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)
    supplier, store = world["supplier"], world["store"]

    order_id = pay_pickup(client, world, 3)

    (transaction,) = db.session.scalars(select(LedgerTransaction)).all()
    assert (transaction.kind, transaction.order_id, transaction.sale_date) == ("line_paid", order_id, today)
    # allocation 1: lot 1, 2 units, A = 2500: fee 125, store 200, premium 250 → 83/83/83 + 1 to h3,
    #   dividend 75 over h4:h6 = 2:1 → 50/25, supplier 1850
    # allocation 2: lot 2, 1 unit, A = 1250: fee 62, store 100, premium 125 → the supplier (no households),
    #   dividend 37 → 24.67/12.33 → 25/12, supplier 926
    assert by_account(transaction) == {
        "payments:sandbox": -3750, "platform": 187, f"store:{store.id}": 300,
        f"supplier:{supplier.id}": 1850 + 926 + 125,
        household(world, 1): 83, household(world, 2): 83, household(world, 3): 84,
        household(world, 4): 75, household(world, 6): 37}
    premium = {p.household_id: p.amount_fen for p in transaction.postings if p.component == "premium"
               and p.household_id}
    assert premium == {world["h"][1].id: 83, world["h"][2].id: 83, world["h"][3].id: 84}
    assert db.session.get(Lot, world["lot1"].id).attributed_fen == 250 + 75
    assert db.session.get(Lot, world["lot2"].id).attributed_fen == 37
    assert verify_ledger()["ok"] is True
    assert transaction.seq is not None and transaction.hash


def test_a_refund_posts_the_exact_difference(client, login):
    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)
    supplier, store = world["supplier"], world["store"]
    order_id = pay_pickup(client, world, 3)
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order_id))

    response = client.post(f"/api/v1/orders/{order_id}/refunds", headers={**login("admin"), "Idempotency-Key": "r1"},
                           json={"lines": [{"line_id": line_id, "quantity": 2}], "reason": "坏了"})

    assert response.status_code == 201, response.json
    refund = db.session.scalar(select(LedgerTransaction).where(LedgerTransaction.kind == "line_refunded"))
    # lot 2's unit (1250) comes off first, then one of lot 1's two: 2500 → 1250, whose split is
    # fee 62, store 100, premium 125 → 41/41/41 + 1 each to h3, h1; dividend 37 → 25/12; supplier 926
    assert by_account(refund) == {
        "payments:sandbox": 2500, "platform": -(63 + 62), f"store:{store.id}": -(100 + 100),
        f"supplier:{supplier.id}": -(924 + 926 + 125),
        household(world, 1): -(83 - 42), household(world, 2): -(83 - 41), household(world, 3): -(84 - 42),
        household(world, 4): -(50 - 25 + 25), household(world, 6): -(25 - 12 + 12)}
    assert balances() == {"payments:sandbox": -1250, "platform": 62, f"store:{store.id}": 100,
                          f"supplier:{supplier.id}": 926, household(world, 1): 42, household(world, 2): 41,
                          household(world, 3): 42, household(world, 4): 25, household(world, 6): 12}
    assert db.session.get(Lot, world["lot1"].id).attributed_fen == 125 + 37
    assert db.session.get(Lot, world["lot2"].id).attributed_fen == 0
    assert verify_ledger()["ok"] is True

    again = client.post(f"/api/v1/orders/{order_id}/refunds", headers={**login("admin"), "Idempotency-Key": "r2"},
                        json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "全退"})

    assert again.status_code == 201, again.json
    assert balances() == {}
    assert db.session.get(Lot, world["lot1"].id).attributed_fen == 0


def _counter_and_delivery(channel: str, payment_method: str) -> tuple:
    """A paid order of 2 units of a product at a store (or its warehouse), with its line_paid event (committed)."""
    store = StoreFactory()
    shift = ShiftFactory(store=store)
    product = ProductFactory(price_fen=1000)
    make_lot(product, db.session.get(Location, store.location_id), quantity=5)
    order = paid_order(location_id=store.location_id, channel=channel, store=store if channel != "delivery" else None,
                       shift=shift if channel == "counter" else None, payment_method=payment_method,
                       lines=[(product, 2)], status="paid")
    line = db.session.scalar(select(OrderLine).where(OrderLine.order_id == order.id))
    outbox.record_line_paid(order=order, line=line, occurred_at=order.paid_at)
    db.session.commit()
    return store, product, order


@pytest.mark.parametrize("channel,payment_method,source,commission", [
    ("counter", "cash", "store_cash", 160), ("counter", "card", "payments:terminal", 160),
    ("pickup", "stripe", "payments:sandbox", 160), ("delivery", "stripe", "payments:sandbox", 0)])
def test_o2o_sales_pay_the_store_commission_and_delivery_does_not(app, channel, payment_method, source, commission):
    store, product, order = _counter_and_delivery(channel, payment_method)

    totals = balances()

    source = f"store_cash:{store.id}" if source == "store_cash" else source
    # 2000 fen: fee 100, store 160 (O2O) or 0, premium 200 and dividend 60 to the supplier (nobody holds them)
    assert totals == {source: -2000, "platform": 100, **({f"store:{store.id}": 160} if commission else {}),
                      f"supplier:{product.supplier_id}": 2000 - 100 - commission}


def test_the_same_event_applied_five_times_posts_once(app):
    _, _, order = _counter_and_delivery("counter", "cash")
    event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.order_id == order.id))
    before = balances()

    results = [apply_events([event]).get(event.id) for _ in range(5)]
    db.session.commit()

    assert results == [None] * 5  # delivery after commit had already applied it
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 1
    assert balances() == before
    assert outbox.deliver_all([event.id]) == 0


def test_five_concurrent_applications_of_one_event_post_once(racing_app):
    store = StoreFactory()
    product = ProductFactory(price_fen=1000)
    make_lot(product, db.session.get(Location, store.location_id), quantity=5)
    order = paid_order(location_id=store.location_id, channel="counter", store=store, payment_method="cash",
                       lines=[(product, 2)], status="paid")
    line = db.session.scalar(select(OrderLine).where(OrderLine.order_id == order.id))
    racing_app.extensions["outbox_consumers"] = {}  # no delivery after this commit: the racers apply it
    event_id = flushed(outbox.record_line_paid(order=order, line=line, occurred_at=order.paid_at)).id
    db.session.commit()
    posted = []

    outcomes = race(racing_app, 5, lambda i: posted.append(_apply(event_id)))

    assert outcomes == Counter({"ok": 5})
    assert sum(transaction is not None for transaction in posted) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 1
    assert balances()[f"store_cash:{store.id}"] == -2000
    assert verify_ledger()["ok"] is True


@pytest.mark.postgres
def test_workers_attributing_in_parallel_share_new_accounts_and_lots_and_keep_the_chain(pg_app):
    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)
    store = world["store"]
    pg_app.extensions["outbox_consumers"] = {}  # the racers apply the events
    event_ids = []
    for _ in range(6):
        order = paid_order(location_id=store.location_id, channel="counter", store=store, payment_method="cash",
                           lines=[(world["product"], 1)], status="paid")
        line = db.session.scalar(select(OrderLine).where(OrderLine.order_id == order.id))
        event_ids.append(flushed(outbox.record_line_paid(order=order, line=line, occurred_at=order.paid_at)).id)
    db.session.commit()
    barrier, errors = threading.Barrier(6), []

    def run(event_id):
        with pg_app.app_context():
            barrier.wait()
            try:
                _apply(event_id)
                db.session.commit()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(event_id,)) for event_id in event_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 6
    assert verify_ledger() == {**verify_ledger(), "ok": True, "transactions": 6}
    # lot 1 (2 units) sold twice at 1250, lot 2 four times: household postings per lot pushed exactly
    lot1, lot2 = (db.session.get(Lot, world[name].id) for name in ("lot1", "lot2"))
    assert (lot1.attributed_fen, lot2.attributed_fen) == (2 * (125 + 37), 4 * 37)
    assert balances()[f"store_cash:{store.id}"] == -6 * 1250


def test_dividends_go_to_holders_valid_on_the_sale_date_only(app):
    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)
    h = world["h"]
    BenefitLinkFactory(household=h[5], supplier_id=world["supplier"].id, kind="dividend", shares=3,
                       valid_from=today + timedelta(days=1))  # starts tomorrow: not on the sale date
    BenefitLinkFactory(household=h[4], supplier_id=world["supplier"].id, kind="dividend", shares=1,
                       valid_from=date(2026, 1, 1), valid_until=today)  # ends today, inclusive: h4 now 3 shares
    _counter_and_delivery_for(world)

    totals = balances()

    # 1 unit from lot 1 (A = 1250): dividend 37 over h4:h6 = 3:1 → 27.75/9.25 → 28/9
    assert totals[household(world, 4)] == 28 and totals[household(world, 6)] == 9
    assert household(world, 5) not in totals


def _counter_and_delivery_for(world) -> None:
    """A cash counter sale of one unit of the world's product (lot 1 first), with its event (committed)."""
    store = world["store"]
    shift = ShiftFactory(store=store)
    order = paid_order(location_id=store.location_id, channel="counter", store=store, shift=shift,
                       payment_method="cash", lines=[(world["product"], 1)], status="paid")
    line = db.session.scalar(select(OrderLine).where(OrderLine.order_id == order.id))
    outbox.record_line_paid(order=order, line=line, occurred_at=order.paid_at)
    db.session.commit()


def test_an_amount_refund_below_a_unit_leaves_the_remainder_to_the_platform(app):
    from orders.refunds.service import record_provider_refund

    store, product, order = _counter_and_delivery("pickup", "stripe")

    record_provider_refund(order_id=order.id, provider_refund_id="re_dash_1", amount_fen=1500, occurred_at=utcnow())
    db.session.commit()

    remainder = db.session.scalar(select(LedgerTransaction).where(LedgerTransaction.kind == "refund_remainder"))
    assert by_account(remainder) == {"platform": -500, "payments:sandbox": 500}
    # one of the two units refunded (its 1000 fen back), 500 more borne by the platform: the rest holds one unit's split
    assert balances() == {"payments:sandbox": -2000 + 1000 + 500, "platform": 50 - 500, f"store:{store.id}": 80,
                          f"supplier:{product.supplier_id}": 1000 - 50 - 80}
    assert verify_ledger()["ok"] is True


def test_an_unallocated_payment_and_its_return_pass_through_unallocated(app):
    store, _, order = _counter_and_delivery("delivery", "stripe")
    outbox.record_event(kind="payment_unallocated", order=order, occurred_at=utcnow(), amount_fen=777)
    outbox.record_event(kind="payment_returned", order=order, occurred_at=utcnow(), amount_fen=777)
    db.session.commit()

    unallocated, returned = db.session.scalars(select(LedgerTransaction).where(
        LedgerTransaction.kind.in_(("payment_unallocated", "payment_returned"))).order_by(LedgerTransaction.id))

    assert (unallocated.kind, by_account(unallocated)) == ("payment_unallocated",
                                                           {"payments:sandbox": -777, "unallocated": 777})
    assert (returned.kind, by_account(returned)) == ("payment_returned", {"payments:sandbox": 777, "unallocated": -777})
    assert "unallocated" not in balances()


def test_a_refund_delivered_before_its_sale_applies_the_sale_first(app, monkeypatch):
    from orders.refunds.service import RefundRequest, create_refund
    from tests.factories import UserFactory

    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)
    monkeypatch.setattr(outbox, "wake_drain", lambda: None)  # the broker lost both deliveries
    store = world["store"]
    order = paid_order(location_id=store.location_id, channel="counter", store=store,
                       shift=ShiftFactory(store=store), payment_method="cash", lines=[(world["product"], 2)],
                       status="paid")
    line = db.session.scalar(select(OrderLine).where(OrderLine.order_id == order.id))
    paid_event = outbox.record_line_paid(order=order, line=line, occurred_at=order.paid_at)
    db.session.commit()
    create_refund(actor=UserFactory(role="admin"), order_id=order.id, reason="退货",
                  lines=[RefundRequest(line_id=line.id, quantity=2)])
    db.session.commit()
    refund_event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.kind == "line_refunded"))

    outbox.deliver_all([refund_event.id])
    db.session.commit()

    kinds = db.session.scalars(select(LedgerTransaction.kind).order_by(LedgerTransaction.seq)).all()
    assert kinds == ["line_paid", "line_refunded"]
    assert balances() == {}
    assert db.session.get(Lot, world["lot1"].id).attributed_fen == 0
    assert outbox.deliver_all([paid_event.id]) == 1  # delivered now, applied already: nothing more posted
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 2


def test_a_dividend_link_cannot_change_the_shares_of_days_already_sold(client, login):
    """Ended before the sale, or started on its day, a link would make the refund reverse dividends its holders never
    got, or leave them ones they did: a full refund must still bring every account back to zero."""
    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)
    supplier = world["supplier"]
    order_id = pay_pickup(client, world, 3)
    coop = login("coop", supplier_id=supplier.id)
    link_id = db.session.scalar(select(BenefitLink.id).where(BenefitLink.household_id == world["h"][4].id))
    newcomer = HouseholdFactory(supplier=supplier)
    db.session.commit()

    ended = client.patch(f"/api/v1/benefit-links/{link_id}", headers=coop,
                         json={"valid_until": (today - timedelta(days=1)).isoformat()})
    started = client.post(f"/api/v1/suppliers/{supplier.id}/benefit-links", headers=coop,
                          json={"household_code": newcomer.code, "kind": "dividend", "shares": 100,
                                "valid_from": today.isoformat()})

    for response, field in ((ended, "valid_until"), (started, "valid_from")):
        assert response.status_code == 409 and response.json["error"]["code"] == "benefit_link_backdated"
        assert response.json["error"]["details"]["last_sale_date"] == today.isoformat() and field in \
            response.json["error"]["details"]
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order_id))
    refunded = client.post(f"/api/v1/orders/{order_id}/refunds", headers={**login("admin"), "Idempotency-Key": "r"},
                           json={"lines": [{"line_id": line_id, "quantity": 3}], "reason": "全退"})
    assert refunded.status_code == 201 and balances() == {}
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert client.patch(f"/api/v1/benefit-links/{link_id}", headers=coop, json={"valid_until": today.isoformat()}
                        ).status_code == 200
    assert client.post(f"/api/v1/suppliers/{supplier.id}/benefit-links", headers=coop,
                       json={"household_code": newcomer.code, "kind": "dividend", "shares": 100,
                             "valid_from": tomorrow}).status_code == 201


def _pay_online(pg_app, world) -> callable:
    """A pickup order of 3 units placed (committed); what pays it as the payment worker does, returning "paid"."""
    from tests.orders.checkout.conftest import confirm

    payment, _ = place_pickup(pg_app.test_client(), world, 3)
    order_id, intent_id = payment.order_id, payment.intent_id
    return lambda: confirm(order_id, amount_fen=3 * 1250, intent_id=intent_id)


def _sell_at_the_counter(pg_app, world) -> callable:
    """A clerk with an open shift at the world's store; what sells 3 units there, returning "paid"."""
    from orders.counter.service import sell
    from tests.factories import UserFactory

    store = world["store"]
    shift = ShiftFactory(store=store, opened_at=utcnow() - timedelta(hours=1))
    clerk = UserFactory(role="store_staff", store_id=store.id)
    db.session.commit()
    ids, sku = (clerk.id, store.id, shift.id), world["product"].sku

    def sale() -> str:
        from shop.auth.models import User

        sell(actor=db.session.get(User, ids[0]), store_id=ids[1], shift_id=ids[2],
             lines=[{"sku": sku, "quantity": 3}], payment={"method": "cash", "tendered_fen": 5000})
        return "paid"

    return sale


@pytest.mark.postgres
@pytest.mark.parametrize("first", ["payment", "link"])
@pytest.mark.parametrize("pay", [_pay_online, _sell_at_the_counter], ids=["online", "counter"])
def test_a_dividend_link_made_while_a_sale_of_its_day_is_paid_is_refused_or_takes_part_in_it(pg_app, first, pay):
    """The link's check of the supplier's last sale and a sale becoming paid are serialised per supplier: a link
    waiting for an uncommitted payment sees its sale and is refused; a payment waiting for an uncommitted link is
    attributed with the new holder. Either way a full refund brings every account back to zero."""
    from orders.models import Order
    from orders.refunds.service import RefundRequest, create_refund, settle_refund
    from suppliers.service import create_benefit_link
    from tests.factories import UserFactory

    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)
    newcomer = HouseholdFactory(supplier=world["supplier"])
    db.session.commit()
    supplier_id, code, newcomer_id = world["supplier"].id, newcomer.code, newcomer.id
    paying = pay(pg_app, world)

    def link() -> str:
        return create_benefit_link(supplier_id=supplier_id, supplier_scope=supplier_id, household_code=code,
                                   kind="dividend", shares=100, valid_from=today).kind

    second = second_while_first_uncommitted(pg_app, *((paying, link) if first == "payment" else (link, paying)))

    assert second == ("benefit_link_backdated" if first == "payment" else "paid")
    db.session.expire_all()
    linked = db.session.scalar(select(BenefitLink.id).where(BenefitLink.household_id == newcomer_id))
    assert (linked is not None) == (first == "link")
    (sale,) = db.session.scalars(select(LedgerTransaction).where(LedgerTransaction.kind == "line_paid")).all()
    holder = f"household:{newcomer_id}@supplier:{supplier_id}"
    assert (holder in by_account(sale)) == (linked is not None)
    order_id = db.session.scalar(select(Order.id))
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order_id))
    refund_id = create_refund(actor=UserFactory(role="admin"), order_id=order_id, reason="全退",
                              lines=[RefundRequest(line_id=line_id, quantity=3)]).id
    db.session.commit()
    settle_refund(refund_id=refund_id)  # an online payment's refund is asked of the provider after commit
    db.session.commit()
    db.session.expire_all()
    assert balances() == {}
    assert verify_ledger()["ok"] is True
