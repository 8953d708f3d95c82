"""How many SQL statements a checkout costs on PostgreSQL: the budget the `checkout` benchmark was tuned to.
A change that makes the create, the sandbox confirm or the worker's processing of the payment read more
than this fails here, before it shows up as lost throughput."""
from __future__ import annotations

from sqlalchemy import select

from orders.models import Order
from shop.db import db
from tests.orders.checkout.conftest import delivery_body, make_world
from tests.orders.payments.conftest import user_with_token
from tests.statements import statements

CREATE_BUDGET = 11  # the token's user, the buyer locked and their unpaid orders counted, products with their
# district's check, stock (lock at the warehouses, update), 4 inserts, payment
CONFIRM_BUDGET = 3  # the token's user, payment and order, the event's insert (with a broker the answer is what the
# confirm found)
EVENT_BUDGET = 11  # the event claimed with its order id, the order locked with its lines and allocations, the event
# re-read with its payment and deferred ones, stock, allocation, order, transition, the suppliers' sale dates held
# (against a dividend link's check), payment, outbox row, event
DRAIN_END = 1  # the drain's last look for a new event, which finds none


def test_a_paid_checkout_stays_within_its_statement_budget(pg_app, monkeypatch):
    pg_app.config["CELERY"]["task_always_eager"] = False  # as with a broker; the tasks' delays are caught below
    client = pg_app.test_client()
    world = make_world(stock=10)
    _, headers = user_with_token()
    db.session.commit()
    sku = world["a"].sku
    assert client.post("/api/v1/orders", json=delivery_body((sku, 1)), headers=headers).status_code == 201  # warm

    from orders import tasks as outbox_tasks
    from orders.payments import tasks

    queued, deliveries = [], []
    monkeypatch.setattr(tasks.drain_payment_events, "apply_async", lambda *_, **__: queued.append("drain"))  # run below
    monkeypatch.setattr(outbox_tasks.drain_outbox, "apply_async", lambda *_, **__: deliveries.append("drain"))  # ledger
    with statements() as create:
        order = client.post("/api/v1/orders", json=delivery_body((sku, 1)), headers=headers).json
    intent_id = order["payment"]["client_secret"].split("_secret_")[0]
    with statements() as confirm:
        answer = client.post(f"/api/v1/payments/sandbox/{intent_id}/confirm", json={"outcome": "succeeded"},
                             headers=headers)

    assert answer.status_code == 200 and len(queued) == 1
    assert answer.json == {"order_id": order["id"], "status": "pending_payment", "payment_status": "created"}
    assert len(create) <= CREATE_BUDGET, create
    assert len(confirm) <= CONFIRM_BUDGET, confirm
    with statements() as worker:
        assert tasks.drain_payment_events() == 1
    assert db.session.scalar(select(Order.status).where(Order.id == order["id"])) == "paid"
    assert len(worker) <= EVENT_BUDGET + DRAIN_END, worker
    assert len(deliveries) == 1
