"""The payment drain: the events the webhook stored are processed oldest first, each in its own transaction; an
event that fails is rolled back alone and left to the sweeper with its attempt counted, and an event another
worker holds is skipped, not waited for."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text, update

from orders.models import OutboxEvent, PaymentEvent
from orders.payments import service, tasks
from shop.db import db
from shop.tasks import sweep
from tests.orders.payments.conftest import (
    deliver,
    intent_event,
    intent_of,
    order_status,
    place_order,
    stock,
    user_with_token,
)


def stored_unprocessed(app, monkeypatch, orders: int) -> list:
    """`orders` pending orders whose succeeded events the webhook stored while no drain ran: their payments."""
    monkeypatch.setattr(tasks.drain_payment_events, "delay", lambda: None)  # the drain's message is not sent
    world = stock(quantity=10)
    _, headers = user_with_token()
    db.session.commit()
    client = app.test_client()
    payments = [intent_of(place_order(client, headers, [(world["products"][0].sku, 1)])["id"])
                for _ in range(orders)]
    for payment in payments:
        assert deliver(client, intent_event("payment_intent.succeeded", payment)).status_code == 200
    monkeypatch.undo()
    return payments


def event_state(payment) -> tuple[str, int]:
    """The status and attempts of a payment's stored event."""
    db.session.expire_all()
    return tuple(db.session.execute(select(PaymentEvent.status, PaymentEvent.attempts)
                                    .where(PaymentEvent.intent_id == payment.intent_id)).one())


def test_the_drain_processes_every_new_event_oldest_first(app, monkeypatch):
    payments = stored_unprocessed(app, monkeypatch, 3)
    assert [order_status(p.order_id) for p in payments] == ["pending_payment"] * 3

    assert tasks.drain_payment_events() == 3

    assert [order_status(p.order_id) for p in payments] == ["paid"] * 3
    paid_in = db.session.scalars(select(OutboxEvent.order_id).order_by(OutboxEvent.id)).all()
    assert paid_in == [p.order_id for p in payments]  # one line each, paid in the events' order
    assert tasks.drain_payment_events() == 0


def test_a_failing_event_is_rolled_back_alone_and_left_to_the_sweeper(app, monkeypatch):
    first, second, third = stored_unprocessed(app, monkeypatch, 3)
    confirm = service.confirm_locked_payment

    def fails_for_the_second(*, order, **kwargs):  # a fault injected in the middle of the second event's work
        result = confirm(order=order, **kwargs)
        if order.id == second.order_id:
            raise RuntimeError("disk full")
        return result

    monkeypatch.setattr(service, "confirm_locked_payment", fails_for_the_second)
    assert tasks.drain_payment_events() == 3

    assert [order_status(p.order_id) for p in (first, second, third)] == ["paid", "pending_payment", "paid"]
    assert event_state(second) == ("pending", 1)
    assert db.session.scalars(select(OutboxEvent).where(OutboxEvent.order_id == second.order_id)).all() == []
    assert tasks.drain_payment_events() == 0  # a new run does not retry it: the sweeper does, after its grace

    monkeypatch.undo()
    db.session.execute(update(PaymentEvent).values(queued_at=datetime(2020, 1, 1, tzinfo=UTC)))
    db.session.commit()
    sweep()
    assert order_status(second.order_id) == "paid"
    assert event_state(second) == ("processed", 2)


@pytest.mark.postgres
def test_an_event_another_worker_holds_is_skipped_not_waited_for(pg_app, monkeypatch):
    held, other = stored_unprocessed(pg_app, monkeypatch, 2)
    held_event = db.session.scalar(select(PaymentEvent.id).where(PaymentEvent.intent_id == held.intent_id))
    with db.engine.connect() as other_worker:
        other_worker.execute(select(PaymentEvent.id).where(PaymentEvent.id == held_event).with_for_update())

        assert tasks.drain_payment_events() == 1

        other_worker.rollback()
    assert (order_status(held.order_id), order_status(other.order_id)) == ("pending_payment", "paid")
    assert event_state(held) == ("pending", 0)  # the worker holding it processes it; a later drain would too


def test_the_claim_of_a_new_event_reads_one_entry_of_its_partial_index(pg_app):
    """The claim's condition is written into its SQL, not bound, so that PostgreSQL matches it to the partial index
    of new events also once psycopg prepares the statement (a generic plan cannot see bound values): the claim
    stays one index entry however many processed events came before."""
    claim = service._NEXT_NEW_EVENT.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True})
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    db.session.execute(text("SET LOCAL enable_bitmapscan = off"))
    plan = "\n".join(db.session.scalars(text(f"EXPLAIN {claim}")))
    assert "ix_payment_events_new" in plan, plan
    generic = service._NEXT_NEW_EVENT.compile(dialect=db.engine.dialect)
    assert not set(generic.params) - {"param_1"}, generic.params  # only the LIMIT is a parameter
