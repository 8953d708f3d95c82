"""How many SQL statements a checkout costs on PostgreSQL: the budget the `checkout` benchmark was tuned to.
A change that makes the create, the sandbox confirm or the worker's processing of the payment read more
than this fails here, before it shows up as lost throughput."""
from __future__ import annotations

from sqlalchemy import select

from orders.models import Allocation, Order, OrderLine, OrderTransition, OutboxEvent, Payment, PaymentEvent
from shop.db import db
from tests.orders.checkout.conftest import delivery_body, make_world
from tests.orders.payments.conftest import user_with_token
from tests.statements import orm_executions, statements

CREATE_BUDGET = 11  # the token's user, the buyer locked and their unpaid orders counted, products with their
# district's check, stock (lock at the warehouses, update), 4 inserts, payment
CONFIRM_BUDGET = 3  # the token's user, payment and order, the event's insert (with a broker the answer is what the
# confirm found)
EVENT_BUDGET = 5  # the event claimed with its order id, the order locked with its lines and allocations, the event
# re-read with its payment and deferred ones, stock, and in one statement the allocation, order, payment and event
# written, the transition and outbox row inserted and the suppliers' sale dates held (against a dividend link's check)
DRAIN_END = 1  # the drain's last look for a new event, which finds none
CREATE_ORM_BUDGET = 8  # of those, through the ORM's execution layer: the token's user, stock (lock, update), 4 inserts,
# payment; the buyer's lock, their unpaid orders and the products are Core reads on the session's connection
CONFIRM_ORM_BUDGET = 1  # the token's user; the payment and order, and the event's insert, are Core


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
    assert len(worker) <= EVENT_BUDGET + DRAIN_END, worker
    db.session.expire_all()  # what the one statement wrote, read back: every row the event changed
    paid = db.session.get(Order, order["id"])
    assert paid.status == "paid" and paid.paid_at is not None and paid.sale_date is not None
    assert paid.updated_at > paid.created_at
    assert db.session.execute(select(Payment.status, Payment.succeeded_at == paid.paid_at)
                              .where(Payment.order_id == paid.id)).one() == ("succeeded", True)
    assert set(db.session.scalars(select(Allocation.state).join(OrderLine)
                                  .where(OrderLine.order_id == paid.id))) == {"allocated"}
    assert db.session.execute(select(PaymentEvent.status, PaymentEvent.processed_at.is_not(None))).all() \
        == [("processed", True)]
    assert db.session.execute(select(OrderTransition.from_status, OrderTransition.reason)
                              .where(OrderTransition.order_id == paid.id, OrderTransition.to_status == "paid")).all() \
        == [("pending_payment", f"payment {intent_id}")]
    (line_paid,) = db.session.scalars(select(OutboxEvent).where(OutboxEvent.order_id == paid.id)).all()
    assert (line_paid.kind, line_paid.amount_fen, line_paid.sale_date) == ("line_paid", paid.total_fen, paid.sale_date)
    assert line_paid.payload["allocations"][0]["quantity"] == 1 and line_paid.delivered_at is None
    assert len(deliveries) == 1


def test_a_checkout_runs_its_hot_reads_outside_the_orm_execution_layer(pg_app, monkeypatch):
    """The ORM's execution layer (compile state, events, autoflush) cost a read of columns some 0.1 ms of CPU, as
    much as the rest of it: the create's and the confirm's reads of columns (and the event's insert) skip it."""
    pg_app.config["CELERY"]["task_always_eager"] = False
    client = pg_app.test_client()
    sku = make_world(stock=10)["a"].sku
    _, headers = user_with_token()
    db.session.commit()
    from orders.payments import tasks

    monkeypatch.setattr(tasks.drain_payment_events, "apply_async", lambda *_, **__: None)
    with orm_executions() as create:
        order = client.post("/api/v1/orders", json=delivery_body((sku, 1)), headers=headers)
    intent_id = order.json["payment"]["client_secret"].split("_secret_")[0]
    with orm_executions() as confirm:
        answer = client.post(f"/api/v1/payments/sandbox/{intent_id}/confirm", json={"outcome": "succeeded"},
                             headers=headers)

    assert order.status_code == 201 and answer.status_code == 200
    assert answer.json == {"order_id": order.json["id"], "status": "pending_payment", "payment_status": "created"}
    assert len(create) <= CREATE_ORM_BUDGET, create
    assert len(confirm) <= CONFIRM_ORM_BUDGET, confirm
