"""A real Celery worker killed with SIGKILL in the middle of attribution: the broker hands its unacknowledged
delivery back (short visibility timeout) to the restarted worker, and every paid line is attributed exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date

import pytest
import redis
from sqlalchemy import func, select

from catalog.models import Location, Lot, LotContribution
from orders import outbox
from orders.ledger.models import ChainHead, LedgerAccount, LedgerTransaction, Posting
from orders.ledger.verify import verify_ledger
from orders.models import OrderLine, OutboxEvent
from shop.db import db
from tests.catalog.factories import ProductFactory, make_lot
from tests.orders.factories import ShiftFactory, StoreFactory
from tests.orders.refunds.conftest import paid_order
from tests.suppliers.factories import BenefitLinkFactory, HouseholdFactory, SupplierFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ORDERS = 150
VISIBILITY_TIMEOUT = 2  # seconds before Redis hands an unacknowledged task to another worker
BATCH = 10  # events a drain delivers in one task (one transaction); it wakes the next run while more are left
WORKER = f"""
from orders import outbox
from shop.worker import celery
outbox.DELIVERY_BATCH = {BATCH}
celery.conf.broker_transport_options = {{"visibility_timeout": {VISIBILITY_TIMEOUT}, "unacked_restore_interval": 1,
                                        "unacked_restore_throttle": 1}}
celery.worker_main(["worker", "--pool=solo", "--concurrency=1", "--loglevel=WARNING", "--without-gossip",
                    "--without-mingle", "--without-heartbeat"])
"""


def start_worker(database_url: str, redis_url: str, log) -> subprocess.Popen:
    """A `celery worker` process on the test PostgreSQL and Redis, with the short visibility timeout."""
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    return subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=log, stderr=subprocess.STDOUT)


def counts() -> tuple[int, int]:
    """(ledger transactions, delivered outbox events), read afresh."""
    db.session.rollback()
    return (db.session.scalar(select(func.count()).select_from(LedgerTransaction)),
            db.session.scalar(select(func.count()).where(OutboxEvent.delivered_at.is_not(None))))


def wait_for(condition, seconds: float, what: str) -> None:
    """Poll `condition` until it holds, or fail naming `what`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_worker_killed_mid_attribution_leaves_every_line_attributed_once_after_a_restart(
        redis_app, _pg_migrated, redis_url, tmp_path):
    supplier = SupplierFactory()
    store = StoreFactory()
    shift = ShiftFactory(store=store)
    product = ProductFactory(supplier=supplier, price_fen=1990, platform_fee_bp=500, store_commission_bp=800,
                             household_premium_bp=1000, dividend_bp=300)
    location = db.session.get(Location, store.location_id)
    lots = [make_lot(product, location, quantity=ORDERS * n, harvested_on=date(2026, 9, n)) for n in (1, 2)]
    for lot in lots:
        for quantity in (1, 2, 4):
            db.session.add(LotContribution(lot_id=lot.id, household_id=HouseholdFactory(supplier=supplier).id,
                                           quantity=quantity, village="测试村"))
    for shares in (3, 5):
        BenefitLinkFactory(household=HouseholdFactory(supplier=supplier), supplier_id=supplier.id, kind="dividend",
                           shares=shares, valid_from=date(2026, 1, 1))
    db.session.commit()
    with open(tmp_path / "worker.log", "wb") as log:
        for n in range(ORDERS):  # the commits wake one drain, queued in Redis (no worker runs yet)
            order = paid_order(location_id=location.id, channel="counter", store=store, shift=shift,
                               payment_method="cash", lines=[(product, 1 + n % 3)], status="paid")
            line = db.session.scalar(select(OrderLine).where(OrderLine.order_id == order.id))
            outbox.record_line_paid(order=order, line=line, occurred_at=order.paid_at)
            db.session.commit()
        assert counts() == (0, 0)

        first = start_worker(_pg_migrated, redis_url, log)
        try:
            wait_for(lambda: counts()[0] >= ORDERS // 5, 120, "the first worker to attribute some lines")
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        finally:
            first.kill()
        assert counts()[0] < ORDERS, "the worker finished before it was killed"
        assert redis.Redis.from_url(redis_url).hlen("unacked") >= 1  # the delivery it held, never acknowledged

        second = start_worker(_pg_migrated, redis_url, log)
        try:
            wait_for(lambda: counts() == (ORDERS, ORDERS), 180, "the restarted worker to deliver every event")
            time.sleep(3 * VISIBILITY_TIMEOUT)  # any redelivery still pending lands now, and must change nothing
        finally:
            second.terminate()
            second.wait(timeout=30)

    assert counts() == (ORDERS, ORDERS)
    per_event = Counter(db.session.scalars(select(LedgerTransaction.outbox_event_id)))
    assert set(per_event.values()) == {1} and len(per_event) == ORDERS
    lines = dict(db.session.execute(select(OrderLine.id, OrderLine.quantity * OrderLine.unit_price_fen)).all())
    paid = dict(db.session.execute(select(Posting.order_line_id, -func.sum(Posting.amount_fen))
                                   .where(Posting.component == "payment").group_by(Posting.order_line_id)).all())
    assert paid == lines  # each line's money taken off the store's cash exactly once
    for lot in lots:  # the pushed trace totals were not doubled by the killed transaction
        household_fen = db.session.scalar(
            select(func.sum(Posting.amount_fen)).join(LedgerAccount, LedgerAccount.id == Posting.account_id)
            .where(Posting.lot_id == lot.id, LedgerAccount.kind == "household"))
        assert db.session.get(Lot, lot.id).attributed_fen == household_fen > 0
    assert verify_ledger() == {"ok": True, "transactions": ORDERS, "balanced": True, "chain_intact": True,
                               "first_bad_id": None,
                               "accounts_intact": True, "first_bad_account": None,
                               "anchor_intact": None, "head_seq": ORDERS,
                               "head_hash": db.session.scalar(select(ChainHead.last_hash))}
