"""The pairing report's rollups: after sales, refunds (also of a sale last month) and a pairing's validity
changing, the report read from them equals the independent computation from the postings over any period;
the refresh recomputes only the sale dates touched, is on the beat schedule and safe to run twice at once
(SQLite and PostgreSQL);
the report says how fresh its figures are."""
from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from orders import outbox
from orders.ledger.reports import pairing_report
from orders.ledger.rollups import (
    PairingRollupHousehold,
    PairingRollupState,
    read_state,
    refresh_pairing_rollups,
    refresh_rollups,
)
from orders.ledger.verify import verify_ledger
from orders.models import Order, OrderLine, Refund
from orders.refunds.service import settle_refund
from shop.clock import SHANGHAI
from shop.db import db, utcnow
from shop.regions.models import Pairing
from tests.orders.ledger.test_attribution import make_world, pay_pickup, place_pickup
from tests.orders.ledger.test_reports import admin_headers, independent_report
from tests.orders.payments.conftest import deliver, intent_event
from tests.orders.refunds.conftest import StubProvider


def figures(report: dict) -> dict:
    """(donor, county, paired) → figures of a report's rows."""
    return {(row["donor_code"], row["county_code"], row["paired"]):
            {name: row[name] for name in ("orders", "units", "sales_fen", "households_reached", "attributed_fen")}
            for row in report["rows"]}


def pay_pickup_on(client, world, quantity: int, paid_at: datetime) -> int:
    """A pickup order of `quantity` units placed just before `paid_at` and paid by a signed webhook event created at
    `paid_at` (its sale date: never before its order was placed)."""
    payment, _ = place_pickup(client, world, quantity)
    db.session.execute(update(Order).where(Order.id == payment.order_id)
                       .values(created_at=paid_at - timedelta(minutes=1)))
    db.session.commit()
    created = int(paid_at.timestamp())
    assert deliver(client, intent_event("payment_intent.succeeded", payment, created=created)).status_code == 200
    return payment.order_id


def refund_one(client, order_id: int, key: str) -> None:
    """Refund one unit of the order's line through the API (the ledger reverses it at once: eager tasks)."""
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order_id))
    response = client.post(f"/api/v1/orders/{order_id}/refunds", headers={**admin_headers(), "Idempotency-Key": key},
                           json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "坏了"})
    assert response.status_code == 201, response.json


def assert_exact(*periods) -> None:
    """The report read from the rollups equals the independent computation over each (from, to) period."""
    for from_date, to_date in periods:
        got = figures(pairing_report(from_date=from_date, to_date=to_date))
        assert got == independent_report(from_date, to_date), (from_date, to_date)


@pytest.fixture
def sold(racing_app):
    """Sales today (3 units) and 40 days ago (3 units, a month earlier), the old one with a unit refunded; the
    rollups refreshed by their task. The dates, the old order and the client."""
    client = racing_app.test_client()
    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)
    pay_pickup(client, world, 3)
    old_moment = utcnow() - timedelta(days=40)
    old_order = pay_pickup_on(client, world, 3, old_moment)
    refund_one(client, old_order, "r-old-1")
    refresh_pairing_rollups.apply(throw=True)
    return {"today": today, "old": outbox.sale_date_of(old_moment), "old_order": old_order, "client": client,
            "world": world}


def test_rollups_equal_the_postings_over_whole_months_partial_months_and_single_days(sold):
    today, old = sold["today"], sold["old"]

    assert {row["sale_date"] for row in rollup_rows()} == {today, old}
    assert_exact((None, None), (old, None), (None, today), (old, old + timedelta(days=1)),
                 (old.replace(day=1), today.replace(day=1)), (old + timedelta(days=1), today + timedelta(days=1)),
                 (old - timedelta(days=70), today + timedelta(days=70)), (today, today + timedelta(days=1)),
                 (date(9999, 12, 2), None), (date(1, 1, 1), date(9999, 12, 31)))
    report = pairing_report(from_date=old, to_date=old + timedelta(days=1))
    assert report["totals"]["units"] == 2  # 3 sold, 1 refunded
    assert verify_ledger()["ok"] is True


def rollup_rows() -> list[dict]:
    """The household rollup's rows, as the refresh wrote them."""
    return [{"sale_date": row.sale_date, "household_id": row.household_id, "net_fen": row.net_fen}
            for row in db.session.scalars(select(PairingRollupHousehold))]


def test_a_refund_today_of_last_months_sale_recomputes_that_sale_date_only(sold):
    client, old = sold["client"], sold["old"]
    before = pairing_report(from_date=old, to_date=old + timedelta(days=1))

    refund_one(client, sold["old_order"], "r-old-2")
    done = refresh_pairing_rollups.apply(throw=True).get()

    assert done["sale_dates"] == 1  # the refund's transaction is today's, its sale date last month's
    after = pairing_report(from_date=old, to_date=old + timedelta(days=1))
    assert after["totals"]["units"] == before["totals"]["units"] - 1
    assert after["totals"]["attributed_fen"] < before["totals"]["attributed_fen"]
    assert_exact((None, None), (old, old + timedelta(days=1)), (old.replace(day=1), sold["today"].replace(day=1)))
    assert refresh_pairing_rollups.apply(throw=True).get()["sale_dates"] == 0  # nothing new: nothing recomputed
    assert verify_ledger()["ok"] is True


def test_a_refund_the_provider_fails_leaves_its_units_sold_in_the_report(sold, monkeypatch):
    client, old = sold["client"], sold["old"]
    provider = StubProvider()
    monkeypatch.setattr("orders.refunds.service.get_provider", lambda: provider)
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == sold["old_order"]))
    provider.status = "pending"  # the provider takes the refund, and fails it later (e.g. the card was closed)
    pending = client.post(f"/api/v1/orders/{sold['old_order']}/refunds",
                          headers={**admin_headers(), "Idempotency-Key": "r-old-pending"},
                          json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "坏了"})
    assert pending.status_code == 202, pending.json
    provider.status = "succeeded"
    that_day = datetime(old.year, old.month, old.day, 12, tzinfo=SHANGHAI)
    pay_pickup_on(client, sold["world"], 1, that_day)  # another sale of that day, its payment event late
    refresh_pairing_rollups.apply(throw=True)  # recomputes the day while the refund is pending

    provider.statuses["re_stub_1"] = "failed"
    assert settle_refund(refund_id=pending.json["id"]).status == "failed"
    db.session.commit()
    refresh_pairing_rollups.apply(throw=True)

    assert db.session.scalar(select(Refund.status).where(Refund.id == pending.json["id"])) == "failed"
    report = pairing_report(from_date=old, to_date=old + timedelta(days=1))
    assert report["totals"]["units"] == 3  # 3 + 1 sold, 1 refunded; the failed refund gave no money back
    assert_exact((None, None), (old, old + timedelta(days=1)))
    assert verify_ledger()["ok"] is True


def test_a_pairing_that_stops_being_valid_moves_its_sales_to_unpaired_rows(sold):
    today, old = sold["today"], sold["old"]
    world = sold["world"]
    world["store"].district_code = "440604"  # 禅城, paired with 昭觉 (the world's county)
    db.session.commit()
    pay_pickup(sold["client"], world, 1)
    refresh_rollups()
    db.session.commit()
    assert ("440604", "513431", True) in figures(pairing_report())

    pairing = db.session.scalar(select(Pairing).where(Pairing.donor_code == "440604",
                                                      Pairing.recipient_code == "513431"))
    pairing.valid_until = today - timedelta(days=1)
    db.session.commit()
    done = refresh_rollups()
    db.session.commit()

    assert done["sale_dates"] == "all"
    got = figures(pairing_report())
    assert ("440604", "513431", True) not in got and got[("440604", "513431", False)]["units"] == 1
    assert_exact((None, None), (old, today + timedelta(days=1)))
    assert verify_ledger()["ok"] is True


def test_the_report_says_how_fresh_it_is_and_a_worker_backed_report_waits_for_the_task(app):
    client = app.test_client()
    world = make_world(today=outbox.sale_date_of(utcnow()))
    pay_pickup(client, world, 2)
    headers = admin_headers("auditor")

    first = client.get("/api/v1/reports/pairings", headers=headers).json  # embedded: refreshed when stale

    assert first["totals"]["units"] == 2
    fresh_as_of = datetime.fromisoformat(first["fresh_as_of"])
    assert fresh_as_of <= datetime.fromisoformat(first["computed_at"]) <= utcnow()
    with db.engine.connect() as connection:  # the request's refresh is committed
        assert connection.scalar(select(PairingRollupState.fresh_as_of)).isoformat() == first["fresh_as_of"]
    pay_pickup(client, world, 1)
    app.config["CELERY"]["task_always_eager"] = False  # as with a broker: the report reads what the task wrote
    stale = client.get("/api/v1/reports/pairings", headers=headers).json
    assert stale["totals"]["units"] == 2 and datetime.fromisoformat(stale["fresh_as_of"]) == fresh_as_of

    result = app.test_cli_runner().invoke(args=["refresh-rollups"])

    assert result.exit_code == 0 and "1 sale dates recomputed" in result.output, result.output
    fresh = client.get("/api/v1/reports/pairings", headers=headers).json
    assert fresh["totals"]["units"] == 3 and datetime.fromisoformat(fresh["fresh_as_of"]) > fresh_as_of


def test_the_refresh_is_on_the_beat_schedule_every_minute(app):
    assert app.extensions["celery"].conf.beat_schedule["ledger.refresh_pairing_rollups"] == {
        "task": "ledger.refresh_pairing_rollups", "schedule": 60.0}


def test_two_refreshes_at_once_run_one_after_the_other_and_the_second_finds_nothing(racing_app):
    client = racing_app.test_client()
    world = make_world(today=outbox.sale_date_of(utcnow()))
    pay_pickup(client, world, 3)
    refresh_rollups()
    db.session.commit()
    pay_pickup_on(client, world, 2, utcnow() - timedelta(days=3))
    first_done, results = threading.Event(), {}

    def refresh(name: str, hold: float) -> None:
        """Refresh in its own transaction; `hold` seconds before committing (the watermark row still locked)."""
        with racing_app.app_context():
            if name == "second":
                assert first_done.wait(timeout=20)
            started = time.monotonic()
            results[name] = refresh_rollups()
            first_done.set()
            time.sleep(hold)
            db.session.commit()
            results[f"{name}_seconds"] = time.monotonic() - started
            db.session.remove()

    threads = [threading.Thread(target=refresh, args=args) for args in (("first", 0.5), ("second", 0))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert results["first"]["sale_dates"] == 1 and results["second"]["sale_dates"] == 0
    assert results["second_seconds"] >= 0.3  # it waited for the first's commit (held 0.5 s)
    db.session.expire_all()
    assert read_state().ledger_seq == results["first"]["ledger_seq"] == results["second"]["ledger_seq"]
    assert_exact((None, None))
    assert verify_ledger()["ok"] is True
